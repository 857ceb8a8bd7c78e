"""CurioSFT's entropy-guided teacher temperature and the tempered teacher's targets, computed in row chunks.

Each token gets its own temperature from its own top-K logits, so the teacher cannot go through a scalar-temperature
fused kernel: the teacher's hidden states are projected through its head a chunk of rows at a time (rows x vocab
floats), without gradient, and only per-token results are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trl_ext.losses.token_loss import LMHead


@dataclass
class TemperatureRule:
    """The constants of the official `compute_tau_from_logits` (recipe/curio_sft/dp_actor.py) and its caller."""

    tau_min: float = 1.1
    tau_max: float = 1.5
    topk: int = 512
    iters: int = 20
    entropy_center: float = 1.2
    delta_max: float = 0.5
    delta_slope: float = 2.0
    low_entropy_threshold: float = 0.03

    @classmethod
    def from_config(cls, config) -> TemperatureRule:
        return cls(
            config.curio_tau_min,
            config.curio_tau_max,
            config.curio_topk,
            config.curio_bisect_iters,
            config.curio_entropy_center,
            config.curio_delta_max,
            config.curio_delta_slope,
            config.curio_low_entropy_threshold,
        )


def _entropy(logits: torch.Tensor, tau: torch.Tensor | float = 1.0) -> torch.Tensor:
    logp = torch.log_softmax(logits / tau, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def entropy_guided_temperature(logits: torch.Tensor, rule: TemperatureRule) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row temperature tau [C] and full-vocabulary entropy at temperature 1 [C] of teacher logits [C, V].

    H(tau) is the entropy of softmax(topK(z) / tau). The target is H* = H(1) + delta_max * sigmoid(slope * (H(1) - c)):
    a larger boost for high-entropy ("reasoning") tokens. tau is the end of [tau_min, tau_max] when H* lies outside
    [H(tau_min), H(tau_max)], else found by bisection; tokens the teacher is near-certain of (full entropy <= the
    threshold) get tau_min. The loop runs on every row as in the official code (clamped rows stay put).
    """
    top = logits if rule.topk >= logits.shape[-1] else torch.topk(logits, rule.topk, dim=-1).values
    h_now = _entropy(top)
    h_star = h_now + rule.delta_max * torch.sigmoid(rule.delta_slope * (h_now - rule.entropy_center))
    lo = torch.full_like(h_now, rule.tau_min)
    hi = torch.full_like(h_now, rule.tau_max)
    h_lo, h_hi = _entropy(top, lo[:, None]), _entropy(top, hi[:, None])
    tau = torch.where(h_star <= h_lo, lo, torch.where(h_star >= h_hi, hi, (lo + hi) / 2))
    for _ in range(rule.iters):
        go_up = _entropy(top, tau[:, None]) < h_star  # entropy grows with tau
        lo = torch.where(go_up, tau, lo)
        hi = torch.where(go_up, hi, tau)
        tau = (lo + hi) / 2
    del top
    h_full = _entropy(logits)
    tau = torch.where(h_full <= rule.low_entropy_threshold, torch.full_like(tau, rule.tau_min), tau)
    return tau, h_full


@dataclass
class TeacherTargets:
    """Per-token results of the teacher pass, each [N]: log q_t = log softmax(z_t / tau_t)[y_t], tau_t, and the
    teacher's entropy at temperature 1."""

    log_q: torch.Tensor
    tau: torch.Tensor
    entropy: torch.Tensor


@torch.no_grad()
def tempered_teacher_targets(
    hidden: torch.Tensor, head: LMHead, labels: torch.Tensor, rule: TemperatureRule, chunk_rows: int = 256
) -> TeacherTargets:
    """The teacher's temperatures and tempered gold-token log-probs for hidden states [N, H], `chunk_rows` at a time."""
    n = labels.shape[0]
    log_q = torch.empty(n, device=hidden.device)
    tau = torch.empty(n, device=hidden.device)
    entropy = torch.empty(n, device=hidden.device)
    for start in range(0, n, chunk_rows):
        sl = slice(start, min(start + chunk_rows, n))
        z, _ = head.capped(head.logits(hidden[sl]))
        tau[sl], entropy[sl] = entropy_guided_temperature(z, rule)
        z.div_(tau[sl, None])
        log_q[sl] = torch.log_softmax(z, dim=-1).gather(1, labels[sl, None])[:, 0]
        del z
    return TeacherTargets(log_q, tau, entropy)


def tempered_reference(hidden: torch.Tensor, head: LMHead, tau: torch.Tensor) -> tuple[torch.Tensor, LMHead]:
    """Hidden states and head whose logits are the teacher's z_t / tau_t, for `fused_token_loss`'s KL term.

    z / tau = scale * (h W^T + b) / tau = scale * ([h / tau, 1 / tau] [W, b]^T): the per-row temperature folds into
    the hidden states, so the fused loss projects the tempered teacher chunk by chunk like any reference. A
    soft-capped head caps before the temperature and cannot be folded."""
    if head.softcap is not None:
        raise NotImplementedError("curio_kd_form='full_kl' does not support soft-capped LM heads; use 'gt_token_sq'.")
    inv = (1.0 / tau).to(hidden.dtype)[:, None]
    if head.bias is None:
        return hidden * inv, LMHead(head.weight.detach(), None, head.logit_scale)
    weight = torch.cat([head.weight.detach(), head.bias.detach()[:, None].to(head.weight.dtype)], dim=1)
    return torch.cat([hidden * inv, inv], dim=1), LMHead(weight, None, head.logit_scale)
