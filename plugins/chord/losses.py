"""CHORD's pieces as plain functions: the mu(t) schedule and the expert-SFT per-token loss from log-probs."""

from __future__ import annotations

import math

import torch


def mu_schedule(step: int, warmup: int, decay: int, peak: float, valley: float) -> float:
    """mu at optimizer step `step`: P * s / W during the warm-up, then a cosine from P down to V over D steps, then
    V. W = 0 skips the warm-up; D = 0 gives V right after it."""
    if step < warmup:
        return peak * step / warmup
    if step >= warmup + decay:
        return valley
    return valley + (peak - valley) * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / decay))


def token_weights(log_probs: torch.Tensor, variant: str) -> torch.Tensor:
    """The stop-gradient weight of -log p per token: 1 (nll), p (1 - p) (phi) or p (is), from p = exp(log p)."""
    p = log_probs.detach().exp()
    if variant == "nll":
        return torch.ones_like(p)
    if variant == "phi":
        return p * (1.0 - p)
    if variant == "is":
        return p
    raise ValueError(f"unknown sft_loss_variant {variant!r}")


def expert_token_loss(log_probs: torch.Tensor, variant: str, cutoff_prob: float = 1.0) -> torch.Tensor:
    """-w(p) * min(log p, log c) per token; w from the unclamped p, detached. Clamped tokens get no gradient."""
    weights = token_weights(log_probs, variant)
    if cutoff_prob < 1.0:
        log_probs = torch.clamp(log_probs, max=math.log(cutoff_prob))
    return -weights * log_probs
