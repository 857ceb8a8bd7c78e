"""Q-Tuning's selection on one micro-batch, as pure functions of per-token statistics (card steps 1-6).

Inputs are dense [B, T-1] tensors over the shifted positions (position t predicts token t+1): the token NLL
(0 where the position is not a label), the token entropy, the label mask and the attention mask (shifted). Nothing
here reads a model, so the trainer, the tests and the demonstration call the same code.

Step by step (official code: Q-tuning/Q-tuning at dd6eba55, `plug=wisely`):
1. per sample, PPL = exp(mean NLL over its label tokens), Ent = mean entropy over its label tokens (or over every
   attended position with `entropy_mask`), float32, the mean NLL clamped at 50 before exp;
2. one quantile level a in [0, 0.49] by bisection: Q2 = PPL > q(PPL, 1-a) and Ent <= q(Ent, a); Q4 = PPL <= q(PPL, a)
   and Ent > q(Ent, 1-a) (numpy's linear quantiles), stop at |keep - r_s| < tol; the last masks are used;
3. top-up to K = max(1, round(r_s N)) by max(p^ - e^, e^ - p^) over the min-max normalised PPL and Ent; an added
   sample with p^ - e^ >= e^ - p^ counts as Q2 (its tokens can be pruned), else as Q4;
4. token score inside Q2 samples: P_t = exp(NLL_t) on attended positions (1 at an attended prompt position, 0 at a
   pad), s_t = (1 - lambda) P_t + lambda (P_{t-1} + P_{t+1});
5. token budget: `batch` removes T_all - round(T_all r_s r_tok) - (tokens of the dropped samples) label tokens of the
   Q2 samples together, the highest s_t first; `per_sample` keeps ceil(r_tok |T_n|) tokens of each Q2 sample;
   `drop="low"` removes the lowest s_t instead; nothing is removed when r_tok == 1;
6. denominator D: `official` = attended positions of the kept samples minus the removed tokens; `label` = the kept
   label tokens.
Ties (equal scores) go to the earlier sample / position: stable sorts, no random draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

NLL_CLAMP = 50.0  # exp(50) ~ 5e21 stays finite in float32


@dataclass
class Selection:
    """The decisions on one micro-batch of B samples over T-1 shifted positions."""

    ppl: torch.Tensor  # [B] float32
    ent: torch.Tensor  # [B] float32
    alpha: float  # the quantile level a of the bisection's last iteration
    q2: torch.Tensor  # [B] bool: Q2 from the bisection plus the topped-up Q2-like samples (tokens prunable)
    q4: torch.Tensor  # [B] bool: Q4 from the bisection plus the topped-up Q4-like samples (kept whole)
    topup: torch.Tensor  # [B] bool: samples added by the top-up
    keep_samples: torch.Tensor  # [B] bool: q2 | q4
    scores: torch.Tensor  # [B, T-1] float32 smoothed token scores s_t (0 outside attended positions)
    pruned: torch.Tensor  # [B, T-1] bool: label tokens removed from Q2 samples
    keep_tokens: torch.Tensor  # [B, T-1] bool: label tokens in the loss
    denominator: float  # D

    @property
    def kept_label_tokens(self) -> int:
        return int(self.keep_tokens.sum())


def sample_stats(
    nll: torch.Tensor, entropy: torch.Tensor, label_mask: torch.Tensor, entropy_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(PPL [B], Ent [B]) in float32: PPL_n = exp(min(mean NLL over the label tokens, 50)), Ent_n = mean entropy over
    `entropy_mask`; a sample without such positions gets mean 0 (the official count is clamped at 1)."""
    labels = label_mask.float()
    mean_nll = (nll.float() * labels).sum(1) / labels.sum(1).clamp(min=1)
    where = entropy_mask.float()
    ent = (entropy.float() * where).sum(1) / where.sum(1).clamp(min=1)
    return mean_nll.clamp(max=NLL_CLAMP).exp(), ent


def bisect_quadrants(
    ppl: np.ndarray, ent: np.ndarray, sample_ratio: float, iters: int = 10, tol: float = 0.01
) -> tuple[float, np.ndarray, np.ndarray]:
    """(a, Q2 mask, Q4 mask) of the last bisection iteration over a in [0, 0.49] (one level for both axes)."""
    n = len(ppl)
    lo, hi = 0.0, 0.49
    a, q2, q4 = 0.0, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n == 0:
        return a, q2, q4
    for _ in range(iters):
        a = (lo + hi) / 2.0
        p_hi, p_lo = float(np.quantile(ppl, 1.0 - a)), float(np.quantile(ppl, a))
        e_lo, e_hi = float(np.quantile(ent, a)), float(np.quantile(ent, 1.0 - a))
        q2 = (ppl > p_hi) & (ent <= e_lo)
        q4 = (ppl <= p_lo) & (ent > e_hi)
        keep = (q2.sum() + q4.sum()) / n
        if abs(keep - sample_ratio) < tol:
            break
        if keep < sample_ratio:
            lo = a
        else:
            hi = a
    return a, q2, q4


def keep_count(n: int, sample_ratio: float) -> int:
    """K = max(1, round(r_s N)), at most N (Python's round, as the official code)."""
    return min(max(1, int(round(n * sample_ratio))), n)


def min_max(x: np.ndarray) -> np.ndarray:
    span = float(x.max()) - float(x.min())
    return np.zeros_like(x) if span < 1e-12 else (x - x.min()) / span


def top_up(
    ppl: np.ndarray, ent: np.ndarray, q2: np.ndarray, q4: np.ndarray, sample_ratio: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q2, Q4, added) after topping Q2 | Q4 up to K samples by max(p^ - e^, e^ - p^), highest first (ties: the
    earlier sample); an added sample is Q2-like when p^ - e^ >= e^ - p^."""
    n = len(ppl)
    q2, q4, added = q2.copy(), q4.copy(), np.zeros(n, dtype=bool)
    need = keep_count(n, sample_ratio) - int((q2 | q4).sum()) if n else 0
    if need <= 0:
        return q2, q4, added
    p, e = min_max(ppl.astype(np.float64)), min_max(ent.astype(np.float64))
    s2, s4 = p - e, e - p
    score = np.maximum(s2, s4)
    rest = np.flatnonzero(~(q2 | q4))
    chosen = rest[np.argsort(-score[rest], kind="stable")[:need]]
    added[chosen] = True
    q2 |= added & (s2 >= s4)
    q4 |= added & (s2 < s4)
    return q2, q4, added


def smoothed_scores(p: torch.Tensor, valid: torch.Tensor, lam: float) -> torch.Tensor:
    """s_t = (1 - lam) P_t + lam (P_{t-1} + P_{t+1}) along the last axis, with P masked by `valid` (a neighbour
    outside the row or not valid counts 0)."""
    p = p * valid
    left = torch.zeros_like(p)
    right = torch.zeros_like(p)
    left[..., 1:] = p[..., :-1]
    right[..., :-1] = p[..., 1:]
    return (1.0 - lam) * p + lam * (left + right)


def token_scores(nll: torch.Tensor, attention: torch.Tensor, lam: float) -> torch.Tensor:
    """[B, T-1] smoothed token-PPL scores: P_t = exp(min(NLL_t, 50)) at attended positions (NLL 0 off the labels, so
    an attended prompt position counts 1 and a pad 0), then `smoothed_scores`; 0 where not attended."""
    valid = attention.float()
    p = nll.float().clamp(max=NLL_CLAMP).exp()
    return smoothed_scores(p, valid, lam) * valid


def _highest_first(scores: torch.Tensor, drop: str) -> torch.Tensor:
    """Order of 1-D `scores` with the tokens to remove first: highest first for drop='high', lowest for 'low';
    ties go to the earlier position."""
    key = -scores if drop == "high" else scores
    return torch.sort(key.double(), stable=True).indices


def prune_tokens(
    scores: torch.Tensor,
    label_mask: torch.Tensor,
    attention: torch.Tensor,
    keep_samples: torch.Tensor,
    prunable: torch.Tensor,
    sample_ratio: float,
    token_ratio: float,
    mode: str = "batch",
    drop: str = "high",
) -> torch.Tensor:
    """[B, T-1] bool: the label tokens removed from the `prunable` (Q2) samples (step 5)."""
    pruned = torch.zeros_like(label_mask, dtype=torch.bool)
    if token_ratio >= 1.0:
        return pruned
    candidates = label_mask & attention & prunable[:, None]
    if mode == "per_sample":
        for row in torch.nonzero(prunable).flatten().tolist():
            where = torch.nonzero(candidates[row]).flatten()
            n_drop = len(where) - math.ceil(token_ratio * len(where))
            if n_drop > 0:
                order = _highest_first(scores[row, where], drop)
                pruned[row, where[order[:n_drop]]] = True
        return pruned
    total = int(attention.sum())
    keep_target = int(round(total * sample_ratio * token_ratio))
    dropped_with_samples = int(attention[~keep_samples].sum())
    remaining = max(0, total - keep_target - dropped_with_samples)
    flat = torch.nonzero(candidates.reshape(-1)).flatten()
    n_drop = min(remaining, len(flat))
    if n_drop > 0:
        order = _highest_first(scores.reshape(-1)[flat], drop)
        pruned.view(-1)[flat[order[:n_drop]]] = True
    return pruned


def select(
    nll: torch.Tensor,
    entropy: torch.Tensor,
    label_mask: torch.Tensor,
    attention: torch.Tensor,
    *,
    sample_ratio: float = 0.25,
    token_ratio: float = 0.7,
    lam: float = 0.5,
    mode: str = "batch",
    drop: str = "high",
    entropy_positions: str = "completion",
    denominator: str = "official",
    iters: int = 10,
    tol: float = 0.01,
) -> Selection:
    """Q-Tuning's sample and token selection on one micro-batch (steps 1-6 above). `nll`, `entropy`: [B, T-1]
    detached per-token values (NLL 0 off the labels); `label_mask`: positions whose next token is trained on;
    `attention`: the shifted attention mask (attention_mask[:, 1:])."""
    nll, entropy = nll.detach().float(), entropy.detach().float()
    label_mask, attention = label_mask.bool(), attention.bool() | label_mask.bool()
    entropy_mask = label_mask if entropy_positions == "completion" else attention
    ppl, ent = sample_stats(nll, entropy, label_mask, entropy_mask)
    ppl_np, ent_np = ppl.cpu().double().numpy(), ent.cpu().double().numpy()
    alpha, q2, q4 = bisect_quadrants(ppl_np, ent_np, sample_ratio, iters, tol)
    q2, q4, added = top_up(ppl_np, ent_np, q2, q4, sample_ratio)
    device = nll.device
    q2_t, q4_t = torch.from_numpy(q2).to(device), torch.from_numpy(q4).to(device)
    keep_samples = q2_t | q4_t
    scores = token_scores(nll, attention, lam)
    pruned = prune_tokens(scores, label_mask, attention, keep_samples, q2_t, sample_ratio, token_ratio, mode, drop)
    keep_tokens = label_mask & keep_samples[:, None] & ~pruned
    if denominator == "official":
        d = float(attention[keep_samples].sum()) - float(pruned.sum())
    else:
        d = float(keep_tokens.sum())
    return Selection(
        ppl=ppl,
        ent=ent,
        alpha=float(alpha),
        q2=q2_t,
        q4=q4_t,
        topup=torch.from_numpy(added).to(device),
        keep_samples=keep_samples,
        scores=scores,
        pruned=pruned,
        keep_tokens=keep_tokens,
        denominator=d,
    )
