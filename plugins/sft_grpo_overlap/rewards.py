"""The card's verifier reward r = c · (w_c + w_s · s) on the core's reward toolkit, with the logs that show the
paper's mechanism: the reward on GRPO rows that were in the SFT set against fresh ones, and the fraction of groups
whose rewards do not vary (no advantage, no learning signal)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.rewards import RewardFunction, Scored, log_metric, reward_name

from .formal import compile_check as formal_compile_check
from .formal import semantic_check as formal_semantic_check

CompileCheck = Callable[[str], bool]
SemanticJudge = Callable[[Any, str], bool]


class VerifierReward(RewardFunction):
    """r = c(y) · (w_compile + w_semantic · s(x, y)) with c(y) = `compile_check(text)` and s = `semantic_judge(prompt,
    text)`, both in {0, 1}. The judge is called only where it can change the reward (w_semantic != 0 and c = 1).

    Logs (batch means): `grpo/compile_rate`, `grpo/semantic_rate` (when judged), `overlap/actual` (share of rows
    with `in_sft`), `grpo/reward_in_sft_rows` and `grpo/reward_fresh_rows` (when the batch has such rows) and
    `grpo/zero_variance_group_fraction` (groups: consecutive completions of one prompt, as GRPO lays them out),
    also split by `in_sft` as `grpo/zero_variance_group_fraction_in_sft` / `_fresh`.
    """

    name = "formal_verifier"

    def __init__(
        self,
        compile_check: CompileCheck,
        semantic_judge: SemanticJudge | None = None,
        w_compile: float = 1.0,
        w_semantic: float = 0.0,
    ) -> None:
        if not callable(compile_check):
            raise ValueError(f"make_verifier_reward: compile_check={compile_check!r} must be callable")
        for field, value in (("w_compile", w_compile), ("w_semantic", w_semantic)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"make_verifier_reward: {field}={value!r} must be a finite number")
        if w_semantic != 0 and semantic_judge is None:
            raise ValueError(
                f"make_verifier_reward: w_semantic={w_semantic} needs a semantic_judge(prompt, text) -> bool"
            )
        self.compile_check, self.semantic_judge = compile_check, semantic_judge
        self.w_compile, self.w_semantic = float(w_compile), float(w_semantic)

    def score(self, completion: str, **row: Any) -> Scored:
        c = bool(self.compile_check(completion))
        metrics = {"grpo/compile_rate": float(c)}
        s = False
        if c and self.w_semantic != 0 and self.semantic_judge is not None:
            s = bool(self.semantic_judge(row.get("prompt"), completion))
            metrics["grpo/semantic_rate"] = float(s)
        elif self.w_semantic != 0:
            metrics["grpo/semantic_rate"] = 0.0
        return Scored(float(c) * (self.w_compile + self.w_semantic * float(s)), metrics)

    def __call__(self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any):
        rewards = super().__call__(prompts, completions, completion_ids, **kwargs)
        for name, value in overlap_metrics(rewards, prompts, kwargs.get("in_sft")).items():
            log_metric(kwargs, name, value)
        return rewards


def _groups(prompts: Any, n: int) -> list[list[int]]:
    """Runs of consecutive rows with one prompt (GRPO puts a prompt's `num_generations` completions together)."""
    keys = [repr(p) for p in prompts] if isinstance(prompts, (list, tuple)) and len(prompts) == n else list(range(n))
    groups: list[list[int]] = []
    for i in range(n):
        if groups and keys[groups[-1][-1]] == keys[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def overlap_metrics(
    rewards: Sequence[float | None], prompts: Any = None, in_sft: Sequence[Any] | None = None
) -> dict[str, float]:
    """The batch's overlap figures (see `VerifierReward`): only those the batch has rows for."""
    n = len(rewards)
    if n == 0:
        return {}
    values = [math.nan if r is None else float(r) for r in rewards]
    groups = [g for g in _groups(prompts, n) if len(g) > 1]

    def zero_variance(group: list[int]) -> bool:
        finite = [values[i] for i in group if math.isfinite(values[i])]
        return len(finite) > 0 and max(finite) - min(finite) == 0.0

    out: dict[str, float] = {}
    if groups:
        out["grpo/zero_variance_group_fraction"] = sum(map(zero_variance, groups)) / len(groups)
    if in_sft is None or len(in_sft) != n:
        return out
    flags = [bool(f) for f in in_sft]
    out["overlap/actual"] = sum(flags) / n
    for label, want in (("in_sft", True), ("fresh", False)):
        mine = [values[i] for i in range(n) if flags[i] is want and math.isfinite(values[i])]
        if mine:
            out[f"grpo/reward_{label}_rows"] = sum(mine) / len(mine)
        kind = [g for g in groups if flags[g[0]] is want]
        if kind:
            out[f"grpo/zero_variance_group_fraction_{label}"] = sum(map(zero_variance, kind)) / len(kind)
    return out


def make_verifier_reward(
    compile_check: CompileCheck,
    semantic_judge: SemanticJudge | None = None,
    w_compile: float = 1.0,
    w_semantic: float = 0.0,
) -> VerifierReward:
    """The card's reward factory: r = c · (w_compile + w_semantic · s), compile only by default. Pass module-level
    functions (TRL may pickle rewards to other processes)."""
    return VerifierReward(compile_check, semantic_judge, w_compile, w_semantic)


def formal_verifier(w_compile: float = 1.0, w_semantic: float = 0.0) -> VerifierReward:
    """The registered `formal_verifier` reward: `make_verifier_reward` with builtin:formal_arith's checkers."""
    reward = make_verifier_reward(formal_compile_check, formal_semantic_check, w_compile, w_semantic)
    given, defaults = {"w_compile": w_compile, "w_semantic": w_semantic}, {"w_compile": 1.0, "w_semantic": 0.0}
    options = {key: value for key, value in given.items() if value != defaults[key]}
    reward._built_name = reward_name(reward.name, options)
    return reward
