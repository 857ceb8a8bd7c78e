"""The two pieces of Intuitive Fine-Tuning (card: shared/papers/ift.md, "Algorithm"), as in the official code
(TsinghuaC3I/Intuitive-Fine-Tuning, src/trainers.py, loss "ift"):

- `temporal_residual_ids` / `mix_embeddings` (steps 2-3): response positions get the embedding
  (1 - lambda) E[x_i] + lambda E[y_hat_{i-1}], where y_hat is the model's own greedy guess for that position.
- `propagation_weights` (step 5, "relation propagation"): token weights from a discounted sum of the future (or
  past) token losses of the same answer, normalised to mean 1 per sequence.
"""

from __future__ import annotations

import torch

PROPAGATION_TYPES = ("loss", "mask", "logps")
PROPAGATION_NORMS = ("L1", "L2", "softmax", "log")
PROPAGATION_SIDES = ("left", "right")


def temporal_residual_ids(
    input_ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, greedy_next: torch.Tensor
) -> torch.Tensor:
    """x~ (step 2): x~_0 = x_0, and for i >= 1, x~_i = y_hat_{i-1} where l_i != -100, else x_i.

    `mask` [B, T-1] marks positions j whose next label l_{j+1} is scored; `greedy_next` [N] is the argmax at those
    positions (the model's guess for token j+1), in `mask` order."""
    ids = input_ids.clone()
    ids[:, 1:][mask] = greedy_next.to(ids.dtype)
    return ids


def mix_embeddings(
    embeds: torch.Tensor, intuition_embeds: torch.Tensor, replaced: torch.Tensor, lam: float
) -> torch.Tensor:
    """e~ = (1 - lambda) E[x] + lambda E[x~] (step 3), written as a select so that every position whose token was
    not changed keeps E[x] bit for bit (the two are equal there in exact arithmetic)."""
    mixed = (1.0 - lam) * embeds + lam * intuition_embeds
    return torch.where(replaced[..., None], mixed, embeds)


def _discount_matrix(length: int, gamma: float, side: str, device) -> torch.Tensor:
    """G with w = c @ G.T: left, G[t, k] = gamma^(k - t) for k >= t (suffix sums); right, gamma^(t - k) for k <= t."""
    steps = torch.arange(length, device=device, dtype=torch.float64)
    distance = steps[None, :] - steps[:, None]  # k - t
    if side == "right":
        distance = -distance
    keep = distance >= 0
    g = torch.where(keep, torch.tensor(gamma, dtype=torch.float64, device=device) ** distance.clamp(min=0), 0.0)
    return g.float()


def _masked_softmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the answer positions of each row (0 elsewhere, and on rows without any). The official code takes
    the softmax over the whole padded row and then masks and renormalises, which gives the same values."""
    top = x.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.where(mask, x - top, torch.full_like(x, float("-inf"))).exp()
    return e / e.sum(-1, keepdim=True).clamp(min=torch.finfo(e.dtype).tiny)


def propagation_weights(
    logps: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 0.95,
    propagation_type: str = "loss",
    propagation_norm: str = "L1",
    propagation_side: str = "left",
) -> torch.Tensor:
    """Relation-propagation weights w [B, T-1] (step 5) from per-token log-probs `logps` [B, T-1] (any value off
    `mask`). Differentiable in `logps` (the official code does not detach them).

    `loss`: c_t = -lp_t / n_b; `logps`: c_t = -lp_t; `mask`: c_t = 1. Left side: w_t = sum_{k>=t} gamma^(k-t) c_k,
    then L1 (w), L2 (w^2), softmax (over the answer) or log (log(w + 1)). Right side: prefix sums, shifted by the
    batch's smallest one and inverted (1/w, 1/w^2, softmax(1/w), 1/log(w + 1)), as in the official code. Finally
    w <- w * n_b / sum_t w_t. gamma = 0 gives w = 1 everywhere (the official shortcut)."""
    if gamma == 0:
        return torch.ones_like(logps)
    maskf = mask.to(logps.dtype)
    n = maskf.sum(-1, keepdim=True)
    if propagation_type == "loss":
        c = -logps / n.clamp(min=1)
    elif propagation_type == "logps":
        c = -logps
    elif propagation_type == "mask":
        c = maskf
    else:
        raise ValueError(f"unknown propagation_type {propagation_type!r}; choose one of {PROPAGATION_TYPES}")
    c = c * maskf
    w = c @ _discount_matrix(logps.shape[-1], gamma, propagation_side, logps.device).to(c.dtype).T
    if propagation_side == "left":
        w = w * maskf
        if propagation_norm == "L1":
            pass
        elif propagation_norm == "L2":
            w = w**2
        elif propagation_norm == "softmax":
            w = _masked_softmax(w, mask)
        elif propagation_norm == "log":
            w = torch.log(w + 1)
        else:
            raise ValueError(f"unknown propagation_norm {propagation_norm!r}; choose one of {PROPAGATION_NORMS}")
    elif propagation_side == "right":
        # Official: off-answer entries set to 1e6, then every entry shifted by the smallest non-zero one of the batch
        w = torch.where(mask, w, torch.full_like(w, 1e6))
        nonzero = w.detach() != 0
        w = w + w[nonzero].min() if bool(nonzero.any()) else w
        if propagation_norm == "L1":
            w = 1 / w
        elif propagation_norm == "L2":
            w = 1 / w**2
        elif propagation_norm == "softmax":
            w = _masked_softmax(1 / w, mask)
        elif propagation_norm == "log":
            w = 1 / torch.log(w + 1)
        else:
            raise ValueError(f"unknown propagation_norm {propagation_norm!r}; choose one of {PROPAGATION_NORMS}")
    else:
        raise ValueError(f"unknown propagation_side {propagation_side!r}; choose one of {PROPAGATION_SIDES}")
    w = w * maskf
    return w * (n / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny))
