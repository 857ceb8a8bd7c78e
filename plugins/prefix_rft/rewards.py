"""`prefix_answer`: 1 when the completion's final answer ("The answer is N", else its last number) equals the row's
`answer` (digit strings compared as text, so leading zeros count), else 0."""

from __future__ import annotations

from trl_ext.data.arith import is_correct
from trl_ext.rewards import reward_function


@reward_function(name="prefix_answer", columns=("answer",))
def prefix_answer(completion: str, answer: str = "", **row) -> float:
    return 1.0 if is_correct(completion, str(answer)) else 0.0
