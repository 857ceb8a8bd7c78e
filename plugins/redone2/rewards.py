"""The rule rewards of `builtin:redone_sns`'s three toy SNS tasks (ours: the paper's reward designs are not public),
one per task, and `redone_sns_reward`, the three routed by the row's `task` column.

A row whose `answer` is no usable gold for its task (not text; a sentiment label outside `LABELS`; an empty sign-off)
scores None, "not applicable", and counts in `redone/gold_error_rate/<task>`; a completion that is not text scores 0.0.
"""

from __future__ import annotations

import re
from typing import Any

from trl_ext.rewards import RewardFunction, Scored

from .selection import RoutedReward, route_rewards

LABELS = ("positive", "negative", "neutral")
SIGN_OFF = "Cheers!"
MAX_REPLY_WORDS = 20
_TAG = re.compile(r"#\w+")
_LABEL = re.compile(r"\b(positive|negative|neutral)\b", re.IGNORECASE)


def hashtag_f1(completion: str, answer: str) -> float:
    """F1 between the hashtags in the completion and the gold ones (case-insensitive sets); both empty: 1."""
    got = {t.lower() for t in _TAG.findall(completion)}
    gold = {t.lower() for t in _TAG.findall(answer)}
    if not got and not gold:
        return 1.0
    hit = len(got & gold)
    if hit == 0:
        return 0.0
    precision, recall = hit / len(got), hit / len(gold)
    return 2 * precision * recall / (precision + recall)


def sentiment_match(completion: str, answer: str) -> float:
    """1 if the first sentiment label the completion names is the gold one, else 0."""
    found = _LABEL.search(completion)
    return float(found is not None and found.group(1).lower() == answer.strip().lower())


def tone_reply(completion: str, answer: str = SIGN_OFF, max_words: int = MAX_REPLY_WORDS) -> float:
    """0.5 for ending with the fixed sign-off (`answer`) + 0.5 for 1..max_words words; an empty reply scores 0."""
    text = completion.strip()
    if not text:
        return 0.0
    return 0.5 * float(text.endswith(answer.strip())) + 0.5 * float(len(text.split()) <= max_words)


TASK_SCORERS = {"hashtags": hashtag_f1, "sentiment": sentiment_match, "tone_reply": tone_reply}


def gold_ok(task: str, answer: Any) -> bool:
    """Whether a row's `answer` is usable gold for `task`: text for hashtags (no hashtag in it is the empty gold set),
    one of `LABELS` for sentiment, a non-empty sign-off for tone_reply."""
    if not isinstance(answer, str):
        return False
    if task == "sentiment":
        return answer.strip().lower() in LABELS
    if task == "tone_reply":
        return bool(answer.strip())
    return True


class TaskReward(RewardFunction):
    """One toy task's rule reward of a completion against the row's `answer`."""

    columns = ("answer",)

    def __init__(self, task: str) -> None:
        self.task = task
        self._built_name = f"redone_{task}"

    def score(self, completion: str, **row: Any) -> Scored:
        gold_error = f"redone/gold_error_rate/{self.task}"
        if not gold_ok(self.task, row["answer"]):  # no usable gold: not applicable to this row
            return Scored(None, {gold_error: 1.0})
        value = TASK_SCORERS[self.task](completion, row["answer"])
        return Scored(value, {f"redone/reward/{self.task}": value, gold_error: 0.0})


def make_sns_reward(**options: Any) -> RoutedReward:
    """`redone_sns_reward`: each row scored by its task's rule reward, None for rows of other tasks."""
    if options:
        raise ValueError(f"redone_sns_reward takes no options (got {sorted(options)}).")
    return route_rewards({task: TaskReward(task) for task in TASK_SCORERS}, name="redone_sns_reward")
