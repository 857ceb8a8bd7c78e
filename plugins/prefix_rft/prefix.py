"""Prefix-RFT's pure parts: the ratio band schedule, the prefix cut, the prefix plan of a generation batch, and the
official sub-group advantages. No trainer state: the trainer calls these and the tests check them by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

PLAIN = -1  # variant id of an on-policy (non-prefixed) rollout


def band_high(step: int, total: int, start: float, end: float, schedule: str = "cosine") -> float:
    """hi(t): the upper end of the prefix-ratio band at optimizer step t of a schedule of `total` steps."""
    frac = min(max(step, 0), total) / total
    if schedule == "const":
        return start
    if schedule == "linear":
        return start + (end - start) * frac
    if schedule == "cosine":
        return end + 0.5 * (1.0 + math.cos(math.pi * frac)) * (start - end)
    raise ValueError(f"unknown prefix schedule {schedule!r}")


def prefix_length(ratio: float, demo_len: int, min_len: int = 1, max_len: int | None = None) -> int:
    """l = max(min_len, floor(ratio |y*|)), at most |y*| - 1 (one demonstration token is always left out) and at most
    `max_len`; 0 when the demonstration has fewer than 2 tokens (the rollout stays plain)."""
    if demo_len < 2 or ratio <= 0:
        return 0
    length = min(max(min_len, int(math.floor(ratio * demo_len))), demo_len - 1)
    return max(0, min(length, max_len)) if max_len is not None else length


@dataclass(frozen=True)
class PrefixPlan:
    """The prefix layout of one generation batch (all processes' rows, in gathered order).

    variant[i]: PLAIN or the index of row i's prefix variant within its group; ratio[i]: its drawn rho (0 if plain).
    """

    variant: list[int]
    ratio: list[float]
    band_high: float


def draw_plan(
    rng: np.random.Generator,
    n_rows: int,
    group_size: int,
    num_prefixed: int,
    per_variant: int,
    low: float,
    high: float,
    beta_a: float,
    beta_b: float,
) -> PrefixPlan:
    """Groups are consecutive runs of `group_size` rows; in each, the last `num_prefixed` rows are prefixed, in
    variants of `per_variant` consecutive rows sharing one ratio rho = low + (high - low) u, u ~ Beta(a, b) (drawn
    group by group, variant by variant). Every process draws the same plan from the same generator state."""
    variant, ratio = [], []
    n_variants = num_prefixed // per_variant if per_variant else 0
    for _ in range(n_rows // group_size):
        draws = [low + (high - low) * float(rng.beta(beta_a, beta_b)) for _ in range(n_variants)]
        variant += [PLAIN] * (group_size - num_prefixed)
        ratio += [0.0] * (group_size - num_prefixed)
        for v, rho in enumerate(draws):
            variant += [v] * per_variant
            ratio += [rho] * per_variant
    return PrefixPlan(variant, ratio, high)


def official_advantages(
    rewards: torch.Tensor, variant: torch.Tensor, group_size: int, per_variant: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `compute_dr_grpo_prefix_outcome_advantage` for rewards (N,) and variant ids (N,) (PLAIN = -1):
    returns (continuation advantage, prefix-token advantage), each (N,).

    Within each group, rows of one variant (all PLAIN rows together) form a sub-group; A_j = r_j - mean of j's
    sub-group (a sub-group of one row has mean 0). A prefixed row's prefix tokens get (A_j - mean of the group's plain
    sub-group) / per_variant; plain rows' prefix advantage is 0 (they have no prefix tokens). NaN rewards (no reward
    function scored the row) are left out of every mean and get advantage 0, as in TRL."""
    cont = torch.zeros_like(rewards)
    pre = torch.zeros_like(rewards)
    for start in range(0, rewards.numel(), group_size):
        r = rewards[start : start + group_size]
        v = variant[start : start + group_size]
        means = {}
        for vid in v.unique().tolist():
            members = r[v == vid]
            valid = members[~torch.isnan(members)]
            means[vid] = torch.zeros((), dtype=r.dtype) if members.numel() == 1 or valid.numel() == 0 else valid.mean()
        plain_mean = means.get(PLAIN, torch.zeros((), dtype=r.dtype))
        for j in range(r.numel()):
            a = r[j] - means[int(v[j])]
            cont[start + j] = a
            if int(v[j]) != PLAIN:
                pre[start + j] = (a - plain_mean) / per_variant
    return torch.nan_to_num(cont, nan=0.0), torch.nan_to_num(pre, nan=0.0)


def kept_prefix_count(n: int, keep_quantile: float) -> int:
    """The official rule's count: of n prefix tokens sorted by entropy, the lowest int((1 - q) n) lose their
    advantage, so n - int((1 - q) n) keep it."""
    return n - int((1.0 - keep_quantile) * n)
