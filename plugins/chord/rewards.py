"""`chord_answer`: 1 when a completion's final number equals the row's `answer` (the arith convention "The answer is
N."), else 0: the reward of CHORD's demonstration on builtin:arith."""

from __future__ import annotations

from trl_ext.data.arith import is_correct
from trl_ext.rewards import reward_function


@reward_function(name="chord_answer", columns=("answer",))
def chord_answer(completion: str, answer: str, **_row) -> float:
    return 1.0 if is_correct(completion, answer) else 0.0
