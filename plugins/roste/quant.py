"""Round-to-nearest fake quantisation with a straight-through estimator (RoSTE's lower level, card "Quantizer").

Every granularity RoSTE uses groups the last dimension: a weight [out, in] per output channel, an activation
[..., in] per token, a K/V state [B, heads, T, head_dim] per head; a per-tensor scale is `x.reshape(1, -1)`. Scales are
computed from the current tensor and detached (constants for the gradient), clamped to >= 1e-8 so a constant group
does not divide by zero."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE_MIN = 1e-8  # the card: constant rows give s = 0 otherwise


def quant_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(q_min, q_max) of the integer grid: [-2^(b-1), 2^(b-1) - 1] symmetric, [0, 2^b - 1] asymmetric."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def quant_params(x: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale s, zero point z) per group of the last dimension, from the detached values of `x`.

    symmetric: s = max|x| / (2^(b-1) - 1), z = 0; asymmetric: s = (max x - min x) / (2^b - 1), z = round(-min x / s).
    """
    x = x.detach()
    _, q_max = quant_range(bits, symmetric)
    if symmetric:
        scale = (x.abs().amax(dim=-1, keepdim=True) / q_max).clamp(min=SCALE_MIN)
        return scale, torch.zeros_like(scale)
    low, high = x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
    scale = ((high - low) / q_max).clamp(min=SCALE_MIN)
    return scale, torch.round(-low / scale)


class _RoundToGrid(torch.autograd.Function):
    """s * (clamp(round(x / s) + z, q_min, q_max) - z) computed in place in one new buffer, with the straight-through
    gradient as a backward that passes the upstream gradient on (masked to the grid when clipped). The composed form
    `x + (q - x).detach()` costs three more full-size passes and tensors per call and is not exactly q."""

    @staticmethod
    def forward(ctx, x, scale, zero, q_min: int, q_max: int, clip_grad: bool):
        level = torch.div(x.detach(), scale).round_()
        if zero is not None:
            level.add_(zero)
        inside = (level >= q_min) & (level <= q_max) if clip_grad else None
        level.clamp_(q_min, q_max)
        if zero is not None:
            level.sub_(zero)
        ctx.save_for_backward(inside)
        return level.mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return (grad if inside is None else grad * inside), None, None, None, None, None


def fake_quantize(
    x: torch.Tensor,
    bits: int,
    symmetric: bool,
    clip_grad: bool = False,
    params: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Q(x) = s * (clamp(round(x / s) + z, q_min, q_max) - z) in the forward; in the backward dQ/dx = 1 (the STE), or
    1 only where round(x / s) + z falls inside the grid when `clip_grad`. `params`: a fixed (s, z) instead of the
    ones `quant_params` computes from `x` (RoSTE always computes them). `bits >= 16` leaves `x` as it is (the card's
    16-bit tensors)."""
    # torch.fake_quantize_per_channel_affine fuses this too, but refuses a zero point outside [q_min, q_max], which the
    # asymmetric scheme gives to any group whose values share one sign.
    if bits >= 16:
        return x
    scale, zero = quant_params(x, bits, symmetric) if params is None else params
    q_min, q_max = quant_range(bits, symmetric)
    zero = None if symmetric and params is None else zero  # symmetric: z = 0, two passes saved
    return _RoundToGrid.apply(x, scale, zero, q_min, q_max, clip_grad)


class _QuantizedWeightLinear(torch.autograd.Function):
    """y = x Q_w(W)^T + b with the STE to W, saving the weight itself (as `F.linear` does) instead of Q_w(W): a
    quantised copy of every weight kept for backward would add the model's size to the peak; Q_w(W) is recomputed
    there instead (elementwise, cheap next to the matmuls)."""

    @staticmethod
    def forward(ctx, x, weight, bias, bits: int, symmetric: bool, clip_grad: bool, observe):
        with torch.no_grad():
            w_q = fake_quantize(weight, bits, symmetric)
            if observe is not None:
                observe(w_q, weight)
        ctx.save_for_backward(x, weight)
        ctx.quant, ctx.has_bias = (bits, symmetric, clip_grad), bias is not None
        out = F.linear(x, w_q, bias)
        ctx.compute_dtype = out.dtype  # under autocast (bf16) the matmul ran in it: so do the backward's
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        bits, symmetric, clip_grad = ctx.quant
        dtype = ctx.compute_dtype
        grad_x = grad_w = grad_b = None
        grad = grad.to(dtype)
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            with torch.no_grad():
                w_q = fake_quantize(weight, bits, symmetric)
            grad_x = (grad @ w_q.to(dtype)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = flat.T @ x.reshape(-1, x.shape[-1]).to(dtype)
            if clip_grad:
                scale, _ = quant_params(weight, bits, symmetric)
                q_min, q_max = quant_range(bits, symmetric)
                level = torch.round(weight.detach() / scale)
                grad_w = grad_w * ((level >= q_min) & (level <= q_max))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        return grad_x, grad_w.to(weight.dtype) if grad_w is not None else None, grad_b, None, None, None, None


def quantized_weight_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: int,
    symmetric: bool,
    clip_grad: bool = False,
    observe=None,
) -> torch.Tensor:
    """`F.linear(x, fake_quantize(weight, ...), bias)` with the same values and gradients, without keeping the
    quantised weight for backward. `observe(w_q, weight)`, if given, sees the quantised weight in the forward."""
    if bits >= 16:
        if observe is not None:
            observe(weight, weight)
        return F.linear(x, weight, bias)
    return _QuantizedWeightLinear.apply(x, weight, bias, bits, symmetric, clip_grad, observe)


def quantization_error(x: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    """mean((Q(x) - x)^2) over every element (no gradient): the card's measured error."""
    with torch.no_grad():
        return (fake_quantize(x, bits, symmetric) - x).pow(2).mean()
