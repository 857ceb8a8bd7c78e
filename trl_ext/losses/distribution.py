"""Chunked operations on a policy's whole next-token distribution, for losses that need more of it than the log-prob
of the label (`trl_ext.losses.fused_token_loss`): sampling tokens from it, its greedy argmax, and a loss against any
distribution of target tokens. Tokens are processed in row chunks, so no (batch, seq, vocab) logits are ever built.

The loss is

    L = scale * sum_t u_t * sum_a W[t, a] * (-log p_theta(a | s_t))

where W[t, :] are non-negative-or-negative target weights chosen per chunk by a callback that sees the detached
log-probs of the chunk (so it can sample from them, compare with labels, or use their probabilities), and u_t are
fixed per-token weights. Its gradient with respect to the logits is written in closed form,
`scale * u_t * (p_t * sum_a W[t, a] - W[t, :])`, and pushed through the LM head while the chunk is in memory, so the
head is projected once per chunk. Token-level policy-gradient losses (sampled actions with rewards), soft targets,
label smoothing and expected-reward losses are all of this form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from trl_ext.losses.token_loss import HeadGradients, LMHead

# Tokens per chunk are chosen so one float32 (chunk, vocab) buffer stays near this many elements.
_CHUNK_ELEMENTS = 1 << 23

# A chunk's target weights: dense [C, V], or sparse (token ids [C, M], weights [C, M]); repeated ids add up.
Targets = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
TargetsFn = Callable[[slice, torch.Tensor], Targets]


def default_chunk_rows(vocab_size: int) -> int:
    return max(1, _CHUNK_ELEMENTS // vocab_size)


def sample_tokens(
    log_probs: torch.Tensor, num_samples: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`num_samples` i.i.d. draws (with replacement) per row from softmax(log_probs / temperature).

    `log_probs` may be logits or log-probabilities (softmax is shift-invariant). The draws are integer ids [C, K]:
    sampling is not differentiable, so no gradient can flow through the sampling distribution."""
    with torch.no_grad():
        scaled = log_probs.detach().float()
        if temperature != 1.0:
            scaled = scaled / temperature
        probs = torch.softmax(scaled, dim=-1)
        return torch.multinomial(probs, num_samples, replacement=True, generator=generator)


def greedy_tokens(
    hidden: torch.Tensor, head: LMHead, labels: torch.Tensor | None = None, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Argmax token ids [N] of the head's distribution at each of N hidden states, computed in row chunks; and,
    when `labels` [N] are given, the log-probs of those labels [N]. No gradient.

    Ties go to the lowest token id, as `torch.argmax` over full logits would: only rows are chunked, never the
    vocabulary."""
    n, vocab = hidden.shape[0], head.weight.shape[0]
    rows = chunk_size or default_chunk_rows(vocab)
    ids = torch.empty(n, dtype=torch.long, device=hidden.device)
    log_probs = torch.empty(n, device=hidden.device) if labels is not None else None
    with torch.no_grad():
        for start in range(0, n, rows):
            sl = slice(start, min(start + rows, n))
            z, _ = head.capped(head.logits(hidden[sl].detach()))
            ids[sl] = z.argmax(-1)
            if labels is not None:
                y = labels[sl]
                log_probs[sl] = z.gather(1, y[:, None])[:, 0] - torch.logsumexp(z, dim=-1)
    return ids, log_probs


@dataclass
class DistributionStats:
    """Detached per-token statistics over the N scored positions."""

    entropy: torch.Tensor  # [N]
    argmax: torch.Tensor  # [N] greedy token ids
    target_mass: torch.Tensor  # [N] sum_a W[t, a], the total weight of each token's targets (before u_t)


def _dense(targets: Targets, shape: tuple[int, int], device) -> torch.Tensor:
    if isinstance(targets, torch.Tensor):
        if targets.shape != shape:
            raise ValueError(f"dense targets must have shape {shape}, got {tuple(targets.shape)}")
        return targets.float()
    index, weight = targets
    return torch.zeros(shape, device=device).scatter_add_(1, index, weight.float())


class _TargetDistributionLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, head, targets_fn, token_weights, scale, chunk_size, need_grad):
        n, vocab = hidden.shape[0], head.weight.shape[0]
        device = hidden.device
        head_grads = HeadGradients(ctx, hidden, weight, bias, need_grad)
        entropy = torch.empty(n, device=device)
        argmax = torch.empty(n, device=device, dtype=torch.long)
        mass = torch.empty(n, device=device)
        total = torch.zeros((), device=device, dtype=torch.float32)
        rows = chunk_size or default_chunk_rows(vocab)
        for start in range(0, n, rows):
            sl = slice(start, min(start + rows, n))
            h = hidden[sl]
            z, tanh_z = head.capped(head.logits(h))
            logp = torch.log_softmax(z, dim=-1)
            del z
            p = logp.exp()
            entropy[sl] = -(p * logp).sum(-1)
            argmax[sl] = logp.argmax(-1)
            targets = targets_fn(sl, logp)
            if isinstance(targets, torch.Tensor):
                w_dense = _dense(targets, tuple(logp.shape), device)
                loss_rows = -(w_dense * logp).sum(-1)
                mass_rows = w_dense.sum(-1)
            else:
                index, w_sparse = targets
                w_sparse = w_sparse.float()
                loss_rows = -(w_sparse * logp.gather(1, index)).sum(-1)
                mass_rows = w_sparse.sum(-1)
                w_dense = None
            del logp
            mass[sl] = mass_rows
            u = token_weights[sl].float() if token_weights is not None else None
            total += (loss_rows * u).sum() if u is not None else loss_rows.sum()
            if not head_grads.active:
                continue
            # d/dz of -sum_a W_a log p_a = p * sum_a W_a - W   (softmax Jacobian, sum_v p_v = 1)
            g = p.mul_(mass_rows[:, None])
            if w_dense is not None:
                g.sub_(w_dense)
                del w_dense
            else:
                g.scatter_add_(1, index, -w_sparse)
            if u is not None:
                g.mul_(u[:, None])
            g.mul_(scale)
            head_grads.add(g, sl, h, tanh_z, head)
        head_grads.save(ctx)
        ctx.mark_non_differentiable(entropy, argmax, mass)
        return total * scale, entropy, argmax, mass

    @staticmethod
    def backward(ctx, grad_loss, *_):
        return (*HeadGradients.grads(ctx, grad_loss),) + (None,) * 6


def target_distribution_loss(
    hidden: torch.Tensor,
    head: LMHead,
    targets_fn: TargetsFn,
    *,
    normalizer: torch.Tensor | float,
    token_weights: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, DistributionStats]:
    """`sum_t u_t sum_a W[t, a] (-log p(a | s_t)) / normalizer` over N positions, in row chunks.

    Args:
        hidden: [N, H] hidden states at the scored positions (already shifted).
        head: the LM head (`LMHead.of(model)`); its logit scaling and soft-capping apply to p, and gradients reach
            its weight and bias.
        targets_fn: called once per chunk as `targets_fn(rows, log_probs)` with the chunk's row slice and its
            detached float32 log-probs [C, V] (temperature 1); returns the chunk's target weights W, dense [C, V] or
            sparse `(ids [C, M], weights [C, M])`. The weights are treated as constants (stop-gradient).
        normalizer: what the summed loss is divided by (a token or sequence count, or `num_items_in_batch`).
        token_weights: [N] fixed per-token weights u_t (detached), e.g. 1/n_b for a per-sequence mean.
        chunk_size: rows per chunk (default: about 8M logits per chunk).
    """
    scale = 1.0 / float(torch.as_tensor(normalizer).clamp(min=1e-12))
    if token_weights is not None:
        token_weights = token_weights.detach()
    loss, entropy, argmax, mass = _TargetDistributionLoss.apply(
        hidden, head.weight, head.bias, head, targets_fn, token_weights, scale, chunk_size, torch.is_grad_enabled()
    )
    return loss, DistributionStats(entropy, argmax, mass)
