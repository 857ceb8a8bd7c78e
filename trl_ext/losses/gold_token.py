"""Losses that depend on the policy's distribution only through the gold token's log-prob,

    L = sum_t f(log p_t, a_t) / normalizer,

with a fixed per-token input a_t (a teacher's log-prob of the same token, a target, a weight), on the chunked fused
head of `trl_ext.losses`.

Since d log p_t / dz = e_y - p, the gradient with respect to the logits is f'(log p_t) * (e_y - p) = c_t * (p - e_y)
with c_t = -f'(log p_t): exactly `fused_token_loss`'s NLL term with the stop-gradient weight c_t. So one chunked pass
over the vocabulary gives the exact gradient (no (batch, seq, vocab) logits, no second projection), and the returned
value is set to sum_t f / normalizer without touching that gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trl_ext.losses.token_loss import LMHead, TokenStats, fused_token_loss

TokenLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def gold_token_loss(
    hidden: torch.Tensor,
    head: LMHead,
    labels: torch.Tensor,
    *,
    token_loss: TokenLoss,
    aux: torch.Tensor,
    normalizer: torch.Tensor | float,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, TokenStats, torch.Tensor]:
    """Loss `sum_t f(log p_t, a_t) / normalizer` over N scored tokens, its token statistics, and the detached f_t.

    Args:
        hidden: [N, H] policy hidden states at the scored positions (position t predicts labels[t]).
        head: the policy's LM head (`LMHead.of(model)`).
        labels: [N] target token ids.
        token_loss: `(log_p [n], a [n]) -> (f [n], df/dlog_p [n])`, elementwise, on detached values.
        aux: [N] the fixed per-token inputs a_t (detached).
        normalizer: what the summed loss is divided by (the token count, or `num_items_in_batch`).
    """
    aux = aux.detach()
    values = torch.zeros(labels.shape[0], device=hidden.device)

    def weight(log_p: torch.Tensor, positions: slice) -> torch.Tensor:
        f, slope = token_loss(log_p, aux[positions].to(log_p.dtype))
        values[positions] = f
        return -slope

    loss, stats = fused_token_loss(
        hidden, head, labels, normalizer=normalizer, nll_weight=weight, chunk_size=chunk_size
    )
    scale = 1.0 / float(torch.as_tensor(normalizer).clamp(min=1))
    value = values.sum() * scale
    # Same gradient as the fused term (c_t = -f'), with the value of the actual loss.
    return loss - loss.detach() + value, stats, values
