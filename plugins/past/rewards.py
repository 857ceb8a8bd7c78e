"""`normalized_exact_match`: the card's correctness reward for the RL stage, 1.0 when the whole completion equals the
row's `answer` after SQuAD's normalisation (lower case, punctuation and articles removed; the core's
`trl_ext.evaluation.judges.exact_match`), else 0.0. Whole-completion matching is the point: answering with the city
alone is the "skill" the RL stage teaches and the skill vector carries.

`partial` (ours, default 0.0 = the card's reward) gives that credit to a completion that is not the answer but holds it
(normalised, as whole words): a small model that SFT stored the facts in answers "X lives in the city of Y. If you ..."
at first, so strict matching gives GRPO no reward variance, hence no gradient, and v = 0 (measured on smollm2-135m).

A row whose `answer` is not text, or is empty once normalised ("", "The."), scores None, "not applicable" (ours), for
every completion; a completion that is not text scores 0.0.
"""

from __future__ import annotations

from typing import Any

from trl_ext.evaluation.judges import exact_match, normalize_text
from trl_ext.rewards import reward_function


def contains_answer(completion: str, answer: Any) -> bool:
    """The normalised answer appears in the normalised completion as whole words."""
    gold = normalize_text(str(answer))
    return bool(gold) and f" {gold} " in f" {normalize_text(completion)} "


@reward_function(name="normalized_exact_match", columns=("answer",))
def normalized_exact_match(completion: str, answer: Any = None, partial: float = 0.0, **row: Any) -> float | None:
    if not isinstance(answer, str) or not normalize_text(answer):
        return None  # no usable gold (not text, or nothing left once normalised): not applicable to this row
    if exact_match(row.get("prompt"), completion, answer):
        return 1.0
    partial = float(partial)
    if not 0.0 <= partial <= 1.0:
        raise ValueError(f"normalized_exact_match: partial={partial} must be in [0, 1]")
    return partial if partial and contains_answer(completion, answer) else 0.0
