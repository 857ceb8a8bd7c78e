"""CLS-RL's rewards as TRL reward functions on trl_ext's reward toolkit.

- `cls_accuracy_reward` (CLS-RL): r_acc, the answer span equals the gold class (case-insensitive).
- `cls_format_reward` (CLS-RL): r_fmt, the completion is <think>…</think><answer>…</answer>.
- `cls_equality_reward` (No-Thinking-CLS-RL): r_eq, the whole completion equals the gold class.

CLS-RL's total r_acc + r_fmt is `--rewards cls_accuracy_reward,cls_format_reward` (TRL sums rewards with unit
weights by default). The gold is the `solution` column (the class name, optionally in answer tags).

A row whose gold cannot be used (a `solution` that is not text, an empty class, or a class outside the row's
`class_names` when it lists them) scores None, "not applicable" (ours: the official data has no such rows), and counts
in `cls/gold_error_rate`; a completion that is not text scores 0.0.

Metrics: `cls/think_answer_mismatch` (accuracy reward, when the dataset has `class_names`: the share of completions
whose reasoning last names another class than their answer, among those where that applies), `cls/answer_in_classes`
(the answer is one of the listed classes) and `cls/completion_tokens` (mean completion length, which collapses to
1-3 tokens under no_think). TRL itself logs `frac_reward_zero_std`, the share of groups whose rewards all agree.
"""

from __future__ import annotations

from typing import Any

from trl_ext.rewards import RewardFunction, RewardSetupError, Scored, log_metric

from . import scoring
from .config import ClsRLConfig


def _length(completion_ids: Any) -> float:
    return float(len(completion_ids)) if isinstance(completion_ids, (list, tuple)) else 0.0


def _listed(classes: Any) -> set[str]:
    """The row's class names, stripped and lower-cased (empty when the row lists none)."""
    if not isinstance(classes, (list, tuple)):
        return set()
    return {c.strip().lower() for c in classes if isinstance(c, str)}


class _ClsReward(RewardFunction):
    """A CLS-RL reward configured by the fields of `ClsRLConfig` (or a whole `config`)."""

    def __init__(self, config: ClsRLConfig | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise ValueError(f"give either config or its fields, not both (got {', '.join(sorted(fields))})")
        self.config = config if config is not None else ClsRLConfig(**fields)

    def _gold(self, row: dict[str, Any]) -> str | None:
        """The row's `solution` when it names a usable gold class, else None: not text, empty once unwrapped, or
        outside the row's `class_names` when the row lists any."""
        solution = row.get("solution")
        if not isinstance(solution, str):
            return None
        gold = scoring.unwrap_solution(solution, self.config.answer_tag).lower()
        if not gold:
            return None
        listed = _listed(row.get("class_names"))
        return None if listed and gold not in listed else solution

    @staticmethod
    def _metrics(row: dict[str, Any], gold_error: bool) -> dict[str, float]:
        return {"cls/completion_tokens": _length(row.get("completion_ids")), "cls/gold_error_rate": float(gold_error)}


class ClsAccuracyReward(_ClsReward):
    """r_acc = 1 iff the first <answer> span (else the completion), stripped, equals the gold ignoring case."""

    name = "cls_accuracy_reward"
    columns = ("solution",)

    def __init__(self, config: ClsRLConfig | None = None, **fields: Any) -> None:
        super().__init__(config, **fields)
        if self.config.use_symbolic_verify:
            import importlib.util

            if importlib.util.find_spec("math_verify") is None:
                raise RewardSetupError(
                    "cls_accuracy_reward: use_symbolic_verify=true needs math-verify: pip install 'trl-ext[math]'"
                )
        self._mismatches: list[float] = []

    def __call__(self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any):
        self._mismatches = []
        rewards = super().__call__(prompts, completions, completion_ids, **kwargs)
        if self._mismatches:  # a rate among the completions it applies to, not diluted by the others
            log_metric(kwargs, "cls/think_answer_mismatch", sum(self._mismatches) / len(self._mismatches))
        return rewards

    def score(self, completion: str, **row: Any) -> Scored:
        tag = self.config.answer_tag
        gold = self._gold(row)
        metrics = self._metrics(row, gold is None)
        if gold is None:
            return Scored(None, metrics)
        reward = 0.0
        if self.config.use_symbolic_verify and scoring.symbolic_match(completion, gold):
            reward = 1.0
        if reward == 0.0:
            reward = scoring.accuracy(completion, gold, tag)
        classes = row.get("class_names")
        if isinstance(classes, (list, tuple)):
            answer = scoring.extract_answer(completion, tag).lower()
            metrics["cls/answer_in_classes"] = float(answer in _listed(classes))
            mismatch = scoring.think_answer_mismatch(completion, classes, tag)
            if mismatch is not None:
                self._mismatches.append(mismatch)
        return Scored(reward, metrics)


class ClsFormatReward(_ClsReward):
    """r_fmt = 1 iff the completion fully matches <think>.*?</think>\\s*<answer>.*?</answer> (DOTALL)."""

    name = "cls_format_reward"

    def score(self, completion: str, **row: Any) -> float:
        return float(scoring.format_ok(completion, self.config.answer_tag))


class ClsEqualityReward(_ClsReward):
    """r_eq = 1 iff the completion equals the gold exactly (official); eq_normalize: after strip + casefold."""

    name = "cls_equality_reward"
    columns = ("solution",)

    def score(self, completion: str, **row: Any) -> Scored:
        gold = self._gold(row)
        metrics = self._metrics(row, gold is None)
        if gold is None:
            return Scored(None, metrics)
        reward = scoring.equality(completion, gold, self.config.answer_tag, self.config.eq_normalize)
        classes = row.get("class_names")
        if isinstance(classes, (list, tuple)):
            metrics["cls/answer_in_classes"] = float(completion.strip().lower() in _listed(classes))
        return Scored(reward, metrics)
