"""The RedOne 2.0 data plumbing, free of torch: which tasks stay weak after stage 1, how much general data the
stage-2 SFT mixture gets, and per-task reward routing for the GRPO stages."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.rewards.toolkit import completion_text, per_row, take_rows

WEAK_SELECTIONS = ("fraction", "threshold", "gain")


@dataclass(frozen=True)
class WeakSelection:
    """How weak tasks are picked from per-task scores (the card's defaults: the bottom half by score)."""

    weak_selection: str = "fraction"
    weak_frac: float = 0.5
    weak_thresholds: Mapping[str, float] | None = None
    default_threshold: float = 0.5
    gain_delta: float | None = None

    def __post_init__(self) -> None:
        if self.weak_selection not in WEAK_SELECTIONS:
            raise ValueError(f"redone2: weak_selection={self.weak_selection!r}; one of {', '.join(WEAK_SELECTIONS)}.")
        if not 0.0 <= self.weak_frac <= 1.0:
            raise ValueError(f"redone2: weak_frac={self.weak_frac!r} must be in [0, 1].")


def select_weak_tasks(
    scores: Mapping[str, float], baseline: Mapping[str, float] | None = None, cfg: WeakSelection | None = None
) -> list[str]:
    """The weak tasks, sorted by name.

    - "fraction": the bottom round(weak_frac * K) tasks by score (ties broken by name).
    - "threshold": tasks whose score is below their threshold (`weak_thresholds`, else `default_threshold`).
    - "gain": with `gain_delta`, tasks whose gain over `baseline` is below it; without, the bottom weak_frac by gain.
    """
    cfg = cfg or WeakSelection()
    if cfg.weak_selection == "threshold":
        limits = dict(cfg.weak_thresholds or {})
        return sorted(t for t, s in scores.items() if s < limits.get(t, cfg.default_threshold))
    if cfg.weak_selection == "gain":
        if baseline is None:
            raise ValueError("redone2: weak_selection='gain' needs the base model's scores (base_model_name_or_path).")
        key = {t: s - baseline.get(t, 0.0) for t, s in scores.items()}
        if cfg.gain_delta is not None:
            return sorted(t for t, g in key.items() if g < cfg.gain_delta)
    else:
        key = dict(scores)
    n = round(cfg.weak_frac * len(key))
    return sorted(sorted(key, key=lambda t: (key[t], t))[:n])


def general_count(n_domain: int, ratio: float) -> int:
    """General rows so that they are a share `ratio` of the mixture: round(r * |S| / (1 - r))."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"redone2: general_mix_ratio={ratio!r} must be in [0, 1).")
    return round(ratio * n_domain / (1.0 - ratio))


def mix_general(domain_ds: Any, general_ds: Any, ratio: float, seed: int = 42) -> Any:
    """`domain_ds` plus general rows drawn (seeded, without replacement) at a share `ratio` of the result, shuffled,
    with a `source` column ("domain" | "general"). Columns the two lack in common are dropped."""
    from datasets import concatenate_datasets

    n = general_count(len(domain_ds), ratio)
    if n > len(general_ds):
        raise ValueError(
            f"redone2: {n} general rows needed for ratio {ratio} but the general data has {len(general_ds)}."
        )
    rng = random.Random(seed)
    common = [c for c in domain_ds.column_names if c in general_ds.column_names and c != "source"]
    domain = domain_ds.select_columns(common).add_column("source", ["domain"] * len(domain_ds))
    if n == 0:
        return domain.shuffle(seed=seed).flatten_indices()
    picked = sorted(rng.sample(range(len(general_ds)), n))
    general = general_ds.select(picked).select_columns(common).add_column("source", ["general"] * n)
    general = general.cast(domain.features)
    return concatenate_datasets([domain, general]).shuffle(seed=seed).flatten_indices()


def upsample_rows(tasks: Sequence[str], weak: Sequence[str], factor: float, seed: int = 42) -> list[int]:
    """Row indices with each weak task's rows repeated `factor` times in expectation: floor(factor) copies of every
    row plus a seeded share frac(factor) of them once more; other rows once. factor 1.0 keeps the order as is."""
    if factor < 1.0:
        raise ValueError(f"redone2: refine_weak_upsample={factor!r} must be >= 1.")
    weak_set = set(weak)
    if factor == 1.0 or not weak_set:
        return list(range(len(tasks)))
    whole, part = int(math.floor(factor)), factor - math.floor(factor)
    weak_rows = [i for i, t in enumerate(tasks) if t in weak_set]
    rng = random.Random(seed)
    extra = sorted(rng.sample(weak_rows, round(part * len(weak_rows))))
    rows = []
    for i, t in enumerate(tasks):
        rows.extend([i] * (whole if t in weak_set else 1))
    return rows + extra


RewardFunc = Callable[..., list[float | None]]


class RoutedReward:
    """A TRL reward function that scores each row with its task's reward (`task` column) and gives None, "missing"
    to TRL, to rows of tasks without one; row order is kept. Picklable when the per-task rewards are."""

    def __init__(self, reward_funcs_by_task: Mapping[str, RewardFunc], name: str = "redone_routed_reward") -> None:
        self.reward_funcs_by_task = dict(reward_funcs_by_task)
        self.__name__ = name

    def __call__(self, prompts: Sequence[Any] = (), completions: Sequence[Any] = (), **kwargs: Any) -> list:
        n = len(completions)
        out: list[float | None] = [None] * n
        tasks = per_row(kwargs.get("task"), n)  # no usable `task` column: no row can be routed
        for task, func in self.reward_funcs_by_task.items():
            rows = [i for i, t in enumerate(tasks) if t == task]
            if not rows:
                continue
            sub = {k: take_rows(v, rows, n) for k, v in kwargs.items()}
            scored = func(prompts=take_rows(prompts, rows, n), completions=take_rows(completions, rows, n), **sub)
            for i, value in zip(rows, scored, strict=True):
                out[i] = value
        # "Not applicable" is for a well-formed completion of another task; one that holds no text scores 0.0
        return [0.0 if v is None and completion_text(c) is None else v for v, c in zip(out, completions, strict=False)]


def route_rewards(reward_funcs_by_task: Mapping[str, RewardFunc], name: str = "redone_routed_reward") -> RoutedReward:
    """One reward function for a mixed-task batch: R_k on the rows whose task is k, None elsewhere."""
    return RoutedReward(dict(reward_funcs_by_task), name)
