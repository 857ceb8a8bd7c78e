"""`chord_answer`: 1 when a completion's final number equals the row's `answer` (the arith convention "The answer is
N."), else 0: the reward of CHORD's demonstration on builtin:arith. A row whose `answer` is no number (neither a
number nor its text: None, empty, a word) scores None, "not applicable" (ours); a completion that is not text scores
0.0."""

from __future__ import annotations

from typing import Any

from trl_ext.data.arith import gold_number, is_correct
from trl_ext.rewards import reward_function


@reward_function(name="chord_answer", columns=("answer",))
def chord_answer(completion: str, answer: Any = None, **_row) -> float | None:
    gold = gold_number(answer)
    if gold is None:
        return None  # no usable gold: not applicable to this row
    return 1.0 if is_correct(completion, gold) else 0.0
