"""Round-to-nearest fake quantisation with a straight-through estimator (RoSTE's lower level, card "Quantizer").

Every granularity RoSTE uses groups the last dimension: a weight [out, in] per output channel, an activation
[..., in] per token, a K/V state [B, heads, T, head_dim] per head; a per-tensor scale is `x.reshape(1, -1)`. Scales are
computed from the current tensor and detached (constants for the gradient), clamped to >= 1e-8 so a constant group
does not divide by zero."""

from __future__ import annotations

import torch

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
    if bits >= 16:
        return x
    scale, zero = quant_params(x, bits, symmetric) if params is None else params
    q_min, q_max = quant_range(bits, symmetric)
    level = torch.round(x.detach() / scale) + zero
    q = scale * (level.clamp(q_min, q_max) - zero)
    if clip_grad:
        # torch.fake_quantize_per_channel_affine has this mask built in, but it refuses a zero point outside
        # [q_min, q_max], which the asymmetric scheme gives to any group whose values share one sign.
        inside = ((level >= q_min) & (level <= q_max)).to(x.dtype)
        return q + inside * (x - x.detach())
    return x + (q - x).detach()


def quantization_error(x: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    """mean((Q(x) - x)^2) over every element (no gradient): the card's measured error."""
    with torch.no_grad():
        return (fake_quantize(x, bits, symmetric) - x).pow(2).mean()
