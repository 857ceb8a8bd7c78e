"""Token-level loss helpers shared by plugins, computed on label positions only and in chunks of tokens, so no
(batch, seq, vocab) float32 logits tensor is ever built.

The central piece is `fused_token_loss`: one pass over the vocabulary per chunk of tokens gives the loss

    L = scale * sum_t [ -c_t * log p_t  +  kl_coef * KL(q_t || p_t) ]

where p is the policy's next-token distribution, q a reference/teacher's (optional), and c_t a stop-gradient
weight on the NLL term (1 for SFT, p_t for DFT, or any function of the detached log-prob). Its gradient with
respect to the policy logits is written in closed form, `scale * (c_t * (p - e_y) + kl_coef * (p - q))`, and pushed
through the LM head while the chunk is still in memory: the policy head is projected once (TRL's two-kernel route
projects it twice and recomputes it in backward). Per-token statistics (log p_t, entropy, KL, top-1) come out
detached for logging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# Tokens per chunk are chosen so one float32 (chunk, vocab) buffer stays near this many elements.
_CHUNK_ELEMENTS = 1 << 23


@dataclass
class LMHead:
    """A projection from hidden states to logits: `z = softcap(logit_scale * (h @ weight.T + bias))`."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    logit_scale: float = 1.0
    softcap: float | None = None

    @classmethod
    def of(cls, model: torch.nn.Module) -> LMHead:
        """The output head of a causal LM, with the logit scaling and soft-capping TRL's fused head reads."""
        head = model.get_output_embeddings()
        if hasattr(head, "modules_to_save"):  # PEFT ModulesToSaveWrapper: the trained copy, or the original
            head = head.original_module if head.disable_adapters else next(iter(head.modules_to_save.values()))
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        scale = getattr(config, "logit_scale", None)
        for name in ("output_multiplier", "lm_head_multiplier"):
            scale = getattr(config, name, None) if scale is None else scale
        if scale is None and getattr(config, "logits_scaling", None) is not None:
            scale = config.logits_scaling if config.model_type == "hyperclovax" else 1 / config.logits_scaling
        weight, bias = head.weight, head.bias
        if _is_dtensor(weight):  # FSDP2 outside the head's forward: all-gather it (TRL's fused head does the same)
            weight = weight.full_tensor()
            bias = bias.full_tensor() if bias is not None else None
        return cls(
            weight,
            bias,
            1.0 if scale is None else float(scale),
            getattr(config, "final_logit_softcapping", None),
        )

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits of a chunk and, when soft-capped, tanh of the pre-cap logits (for the chain rule)."""
        weight = self.weight if self.weight.dtype == hidden.dtype else self.weight.to(hidden.dtype)
        z = hidden @ weight.T
        if self.bias is not None:
            z = z + self.bias.to(z.dtype)
        z = z.float()
        if self.logit_scale != 1.0:
            z.mul_(self.logit_scale)
        return z

    def capped(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.softcap is None:
            return z, None
        t = torch.tanh(z / self.softcap)
        return t * self.softcap, t


def _is_dtensor(tensor: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def head_share(model: torch.nn.Module) -> float:
    """One LM-head projection of every token as a fraction of a whole model forward (matmul parameters per token;
    embedding lookups cost none): the unit of intrinsic cost for methods that project the head more than SFT does."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = model.get_output_embeddings().weight.numel()
    embeddings = model.get_input_embeddings().weight
    body = sum(p.numel() for p in model.parameters()) - embeddings.numel()
    if model.get_output_embeddings().weight is not embeddings:
        body -= head
    return head / (body + head)


@dataclass
class TokenStats:
    """Detached per-token statistics over the scored positions, each of shape [N]."""

    log_probs: torch.Tensor
    entropy: torch.Tensor
    is_top1: torch.Tensor
    kl: torch.Tensor | None
    nll_weight: torch.Tensor


class HeadGradients:
    """Gradients of a chunked head loss, built in forward while each chunk's logits are in memory (so the head is
    projected once): a loss writes its logits gradient g for a chunk, `add` pushes it through the head's soft-cap and
    logit scale into the hidden-state, weight and bias gradients, and the autograd Function's backward returns
    `grads(grad_loss)`. Only the gradients autograd asks for (and only under grad mode) are kept."""

    def __init__(self, ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, need_grad: bool):
        ctx.saved_like = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        want_h, want_w, want_b = (flag and need_grad for flag in ctx.needs_input_grad[:3])
        device = hidden.device
        self.h = torch.zeros(hidden.shape, device=device, dtype=torch.float32) if want_h else None
        self.w = torch.zeros(weight.shape, device=device, dtype=torch.float32) if want_w else None
        self.b = torch.zeros(bias.shape, device=device, dtype=torch.float32) if want_b else None
        self.active = want_h or want_w or want_b

    def add(self, g: torch.Tensor, rows: slice, h: torch.Tensor, tanh_z: torch.Tensor | None, head: LMHead) -> None:
        """Accumulate the chunk `rows` (hidden states `h`) whose loss has gradient `g` w.r.t. the capped logits."""
        if tanh_z is not None:
            g.mul_(1 - tanh_z.square_())
        if head.logit_scale != 1.0:
            g.mul_(head.logit_scale)
        g_c = g.to(h.dtype)
        if self.h is not None:
            self.h[rows] = (g_c @ head.weight.to(h.dtype)).float()
        if self.w is not None:
            self.w += (g_c.T @ h).float()
        if self.b is not None:
            self.b += g.sum(0)

    def save(self, ctx) -> None:
        ctx.grads = (self.h, self.w, self.b)

    @staticmethod
    def grads(ctx, grad_loss: torch.Tensor) -> list[torch.Tensor | None]:
        """(hidden, weight, bias) gradients scaled by the incoming gradient, in the inputs' dtypes; frees them."""
        grads, ctx.grads = ctx.grads, None
        return [None if g is None else (g * grad_loss).to(like) for g, like in zip(grads, ctx.saved_like, strict=True)]


class _FusedTokenLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        hidden,
        weight,
        bias,
        labels,
        ref_hidden,
        head,
        ref_head,
        nll_weight_fn,
        token_weights,
        kl_coef,
        scale,
        chunk_size,
        need_grad,
    ):
        N, vocab = hidden.shape[0], head.weight.shape[0]
        device = hidden.device
        head_grads = HeadGradients(ctx, hidden, weight, bias, need_grad)
        log_probs = torch.empty(N, device=device)
        entropy = torch.empty(N, device=device)
        is_top1 = torch.empty(N, device=device, dtype=torch.bool)
        c_all = torch.empty(N, device=device)
        kl_all = torch.empty(N, device=device) if ref_hidden is not None else None
        total = torch.zeros((), device=device, dtype=torch.float32)
        rows = chunk_size or max(1, _CHUNK_ELEMENTS // vocab)
        for start in range(0, N, rows):
            sl = slice(start, min(start + rows, N))
            h, y = hidden[sl], labels[sl]
            idx = torch.arange(h.shape[0], device=device)
            z, tanh_z = head.capped(head.logits(h))
            logp = torch.log_softmax(z, dim=-1)
            del z
            p = logp.exp()
            lp_t = logp[idx, y]
            log_probs[sl] = lp_t
            entropy[sl] = -(p * logp).sum(-1)
            is_top1[sl] = logp.argmax(-1) == y
            c_t = nll_weight_fn(lp_t, sl) if nll_weight_fn is not None else torch.ones_like(lp_t)
            if token_weights is not None:
                c_t = c_t * token_weights[sl].to(c_t.dtype)
            c_all[sl] = c_t
            total += -(c_t * lp_t).sum()
            if ref_hidden is not None:
                zq, _ = ref_head.capped(ref_head.logits(ref_hidden[sl]))
                logq = torch.log_softmax(zq, dim=-1)
                del zq
                q = logq.exp()
                kl_t = (q * (logq - logp)).sum(-1)  # KL(q || p): reference first
                kl_all[sl] = kl_t
                total += kl_coef * kl_t.sum()
                del logq
            del logp
            if not head_grads.active:
                continue
            # d/dz of -c*log p_y = c*(p - e_y); of KL(q||p) = p - q  (both use sum_v p = sum_v q = 1)
            g = p.mul_(c_t[:, None] + (kl_coef if ref_hidden is not None else 0.0))
            g[idx, y] -= c_t
            if ref_hidden is not None:
                g.sub_(q, alpha=kl_coef)
                del q
            g.mul_(scale)
            head_grads.add(g, sl, h, tanh_z, head)
        head_grads.save(ctx)
        stats = (log_probs, entropy, is_top1, c_all) + ((kl_all,) if kl_all is not None else ())
        ctx.mark_non_differentiable(*stats)
        return (total * scale, *stats)

    @staticmethod
    def backward(ctx, grad_loss, *_):
        return (*HeadGradients.grads(ctx, grad_loss),) + (None,) * 10


def fused_token_loss(
    hidden: torch.Tensor,
    head: LMHead,
    labels: torch.Tensor,
    *,
    normalizer: torch.Tensor | float,
    nll_weight: Callable[[torch.Tensor, slice], torch.Tensor] | None = None,
    token_weights: torch.Tensor | None = None,
    ref_hidden: torch.Tensor | None = None,
    ref_head: LMHead | None = None,
    kl_coef: float = 0.0,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, TokenStats]:
    """Loss `sum_t [-c_t log p_t + kl_coef * KL(q_t || p_t)] / normalizer` over N scored tokens.

    Args:
        hidden: [N, H] policy hidden states at the scored positions (already shifted: position t predicts labels[t]).
        head: the policy's LM head (`LMHead.of(model)`).
        labels: [N] target token ids.
        normalizer: what the summed loss is divided by (the token count, or `num_items_in_batch`).
        nll_weight: stop-gradient weight c_t as a function `(log_p, positions)` of a chunk's detached log p_t and
            the slice of the N tokens it covers, so per-token inputs can be read alongside (None: 1, plain NLL;
            DFT: `dft_weight`).
        token_weights: [N] fixed weights multiplying c_t (data-dependent token or sequence weights, detached).
        ref_hidden, ref_head: the reference/teacher's hidden states [N, H'] and head; with `kl_coef` they add
            the forward KL(reference || policy) per token.
    """
    if (ref_hidden is None) != (ref_head is None):
        raise ValueError("ref_hidden and ref_head go together")
    scale = 1.0 / float(torch.as_tensor(normalizer).clamp(min=1))
    need_grad = torch.is_grad_enabled()
    ref_hidden = ref_hidden.detach() if ref_hidden is not None else None
    if token_weights is not None:
        token_weights = token_weights.detach()
    out = _FusedTokenLoss.apply(
        hidden,
        head.weight,
        head.bias,
        labels,
        ref_hidden,
        head,
        ref_head,
        nll_weight,
        token_weights,
        kl_coef,
        scale,
        chunk_size,
        need_grad,
    )
    loss, log_probs, entropy, is_top1, c_all, *kl = out
    return loss, TokenStats(log_probs, entropy, is_top1, kl[0] if kl else None, c_all)


def dft_weight(log_probs: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
    """DFT's token weight sg(p_t) (arXiv 2508.05629)."""
    return log_probs.exp()


def shifted_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask over [B, T-1] of positions whose next-token label is scored, and those labels ([N])."""
    next_labels = labels[:, 1:]
    mask = next_labels != -100
    return mask, next_labels[mask]
