"""W' = W + scatter(idx, v) applied without keeping W' for backward.

peft's supertuning Linear composes W' with `scatter_add` and calls `F.linear(x, W')`, so autograd keeps every adapted
layer's W' (a full copy of the weight) from the forward to the backward: one extra copy of all targeted weights at the
peak, the 1.37x of full fine-tuning the bench measured. `SparseDeltaFunction` keeps x and a reference to the frozen W
instead, composes W' again for the input gradient in the backward (one layer's copy at a time, freed at once), and
reads the deltas' gradient off g^T x at the support: the same numbers as peft's forward, O(k) extra state between
forward and backward, as the CUDA sparse-delta kernel of the official code (which the card lets us replace).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.supertuning.layer import Linear as SupertuningLinear
from torch import nn


def _composed(weight: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return weight.reshape(-1).scatter_add(0, indices, values.to(weight.dtype)).view_as(weight)


class SparseDeltaFunction(torch.autograd.Function):
    """y = x W'^T + b with W' = W + scatter(idx, v); gradients for x and v (and W, b when they train)."""

    @staticmethod
    def forward(ctx, x, weight, bias, indices, values):
        ctx.save_for_backward(x, weight, indices, values)
        ctx.has_bias = bias is not None
        device = x.device.type
        # backward runs outside autocast: remember the forward's so its matmuls get the same precision
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        return F.linear(x, _composed(weight, indices, values), bias)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight, indices, values = ctx.saved_tensors
        device, enabled, dtype = ctx.autocast
        grad_x = grad_weight = grad_bias = grad_values = None
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            if ctx.needs_input_grad[0]:
                grad_x = (grad_output @ _composed(weight, indices, values)).to(x.dtype)
            flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
            if ctx.needs_input_grad[1] or ctx.needs_input_grad[4]:
                dense = flat_grad.t() @ x.reshape(-1, x.shape[-1])  # dL/dW', (out, in): transient
                if ctx.needs_input_grad[1]:
                    grad_weight = dense.to(weight.dtype)
                if ctx.needs_input_grad[4]:
                    grad_values = dense.reshape(-1).gather(0, indices).to(values.dtype)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_bias = flat_grad.sum(0)
        return grad_x, grad_weight, grad_bias, None, grad_values


class SparseDeltaLinear(SupertuningLinear):
    """peft's supertuning Linear whose one-adapter, sparse-only forward (SpIEL's) goes through
    `SparseDeltaFunction`; every other case (adapters off, merged, several active, Supra's LoRA) is peft's own."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        active = [a for a in self.active_adapters if a in self.supertuning_values]
        if self.disable_adapters or self.merged or len(active) != 1 or self.supertuning_rank[active[0]] > 0:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        indices = self.supertuning_indices[active[0]].to(torch.int64)
        return SparseDeltaFunction.apply(x, base.weight, base.bias, indices, self.supertuning_values[active[0]])


def use_sparse_delta_linear(model: nn.Module) -> int:
    """Make every peft supertuning Linear in `model` a `SparseDeltaLinear` in place (same state, same saved
    adapter); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is SupertuningLinear:
            module.__class__ = SparseDeltaLinear
            count += 1
    return count


__all__ = ["SparseDeltaFunction", "SparseDeltaLinear", "use_sparse_delta_linear"]
