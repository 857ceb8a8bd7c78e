"""The One-Token Rollout token loss (card: shared/papers/otr.md, "Algorithm"), on hidden states and an LM head.

At each scored position t with ground truth y_t and policy pi_theta (temperature 1):

    pi'(. | s_t) = softmax(sg(z_t) / tau)                              exploration policy, no gradient
    a_{t,1..K} ~ pi'(. | s_t)                                          one-token rollouts
    R(a, y_t) = 1 if a == y_t else beta
    l_t = -(1/K) sum_k R(a_{t,k}, y_t) log pi_theta(a_{t,k} | s_t)     (REINFORCE, mc)
        = -sum_{a in uniq} (c_{t,a} / K) R(a, y_t) log pi_theta(a | s_t)    (de-duplicated, same samples)
    l_t = -sum_a pi'(a | s_t) R(a, y_t) log pi_theta(a | s_t)          (expected; not in the paper)

Sampling and the loss share one projection of each row chunk through the head (`trl_ext.losses.distribution`), so
the (N*K, V) or (B, T, V) logits of a naive implementation never exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trl_ext.losses.distribution import sample_tokens, target_distribution_loss
from trl_ext.losses.token_loss import LMHead

ESTIMATORS = ("mc", "expected")


@dataclass
class OTRStats:
    """Detached per-token statistics [N]."""

    hit_rate: torch.Tensor  # fraction of the K samples equal to y_t (expected: pi'(y_t))
    mean_reward: torch.Tensor  # mean of R over the samples (expected: E_pi'[R])
    unique: torch.Tensor | None  # distinct sampled tokens (mc only)
    gt_logp: torch.Tensor  # log pi_theta(y_t | s_t) at temperature 1
    entropy: torch.Tensor
    is_top1: torch.Tensor


def _distinct_per_row(samples: torch.Tensor) -> torch.Tensor:
    ordered = samples.sort(dim=1).values
    return 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(1)


def otr_loss(
    hidden: torch.Tensor,
    head: LMHead,
    labels: torch.Tensor,
    *,
    normalizer: torch.Tensor | float,
    num_samples: int = 256,
    temperature: float = 1.2,
    beta: float = -0.1,
    estimator: str = "mc",
    dedupe: bool = True,
    token_weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    samples: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, OTRStats]:
    """`sum_t u_t l_t / normalizer` over N scored positions (u_t = `token_weights`, default 1).

    Args:
        hidden: [N, H] policy hidden states at the scored positions; labels: [N] ground-truth tokens y_t.
        samples: [N, K] fixed rollouts instead of drawing them (tests, replays); `generator` drives the draws
            otherwise.
        dedupe: aggregate repeated samples into counts c_{t,a} (dense weights) before the gradient, or keep one
            weight per sample (scattered). Both are exact and give the same loss and gradient.
        chunk_size: rows per chunk, for sampling and loss alike.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    n = labels.shape[0]
    device = hidden.device
    hit = torch.zeros(n, device=device)
    reward = torch.zeros(n, device=device)
    unique = torch.zeros(n, device=device, dtype=torch.long) if estimator == "mc" else None
    gt_logp = torch.zeros(n, device=device)

    def targets(rows: slice, logp: torch.Tensor):
        y = labels[rows]
        idx = torch.arange(y.shape[0], device=device)
        gt_logp[rows] = logp[idx, y]
        if estimator == "expected":
            # l_t = -[(1 - beta) pi'(y) log pi(y) + beta sum_a pi'(a) log pi(a)]
            explore = torch.softmax(logp / temperature, dim=-1) if temperature != 1.0 else logp.exp()
            p_y = explore[idx, y]
            hit[rows] = p_y
            reward[rows] = beta + (1.0 - beta) * p_y
            weights = explore.mul_(beta)
            weights[idx, y] += (1.0 - beta) * p_y
            return weights
        a = (
            samples[rows].to(device)
            if samples is not None
            else sample_tokens(logp, num_samples, temperature, generator)
        )
        k = a.shape[1]
        is_gt = a == y[:, None]
        r = torch.where(is_gt, 1.0, beta)  # R(a, y_t)
        hit[rows] = is_gt.float().mean(1)
        reward[rows] = r.mean(1)
        unique[rows] = _distinct_per_row(a)
        if not dedupe:
            return a, r / k
        # c_{t,a} / K * R(a, y_t) on the distinct sampled tokens
        counts = torch.zeros_like(logp).scatter_add_(1, a, torch.ones_like(a, dtype=logp.dtype))
        c_y = counts[idx, y]
        weights = counts.mul_(beta / k)
        weights[idx, y] = c_y / k
        return weights

    loss, stats = target_distribution_loss(
        hidden, head, targets, normalizer=normalizer, token_weights=token_weights, chunk_size=chunk_size
    )
    return loss, OTRStats(hit, reward, unique, gt_logp, stats.entropy, stats.argmax == labels)
