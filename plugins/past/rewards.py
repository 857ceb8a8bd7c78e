"""`normalized_exact_match`: the card's correctness reward for the RL stage, 1.0 when the whole completion equals the
row's `answer` after SQuAD's normalisation (lower case, punctuation and articles removed; the core's
`trl_ext.evaluation.judges.exact_match`), else 0.0. Whole-completion matching is the point: answering with the city
alone is the "skill" the RL stage teaches and the skill vector carries."""

from __future__ import annotations

from typing import Any

from trl_ext.evaluation.judges import exact_match
from trl_ext.rewards import reward_function


@reward_function(name="normalized_exact_match", columns=("answer",))
def normalized_exact_match(completion: str, answer: Any = None, **row: Any) -> float:
    return float(exact_match(row.get("prompt"), completion, answer))
