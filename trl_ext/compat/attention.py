"""Attention routed through a wrapper that sees the query, key and value states after RoPE (what a KV-cache
quantiser or an online rotation of q/k needs), registered through transformers' public `AttentionInterface` and
`AttentionMaskInterface`. Reads the model's current implementation from `config._attn_implementation` (private);
written against transformers 5.24, checked by tests/test_compat_attention.py."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

# wrapper(inner, module, query, key, value, attention_mask, **kwargs) -> (attn_output, attn_weights); `inner` is the
# implementation the model used before (sdpa, eager, ...), called with the same arguments.
AttentionWrapper = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def attention_implementation(model: torch.nn.Module) -> str:
    """The attention implementation `model` runs now ('sdpa', 'eager', or a registered name)."""
    return model.config._attn_implementation or "eager"


def _inner_attention(name: str, module: torch.nn.Module, *args, **kwargs):
    if name == "eager":  # eager is each model's own function, not in the global interface
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise NotImplementedError(f"{type(module).__name__}'s module has no eager_attention_forward")
        return eager(module, *args, **kwargs)
    return ALL_ATTENTION_FUNCTIONS[name](module, *args, **kwargs)


def _wrapped(wrapper: AttentionWrapper, inner: str, module, *args, **kwargs):
    return wrapper(functools.partial(_inner_attention, inner), module, *args, **kwargs)


def wrap_attention(model: torch.nn.Module, name: str, wrapper: AttentionWrapper) -> str:
    """Route every attention call of `model` through `wrapper` (registered as `{name}_{inner}`, the masks of `inner`
    kept). Idempotent per (name, inner). Returns the registered implementation name."""
    inner = attention_implementation(model)
    if inner.startswith(f"{name}_"):
        return inner
    registered = f"{name}_{inner}"
    if registered not in ALL_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(registered, functools.partial(_wrapped, wrapper, inner))
        AttentionMaskInterface.register(registered, ALL_MASK_ATTENTION_FUNCTIONS[inner])
    model.set_attn_implementation(registered)
    return registered
