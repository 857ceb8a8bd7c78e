"""The only module that reaches into TRL/transformers internals or patches their objects. Each piece names the
version it was written against and has a test in tests/test_compat.py that fails loudly when that changes."""

from __future__ import annotations

import copy
import functools
import inspect
import types
from collections import OrderedDict

import torch

# Written against trl 1.16.0 / transformers 5.24.
TESTED_TRL = "1.16"


def add_backbone_forward(model: torch.nn.Module) -> None:
    """Let `model(..., return_backbone_hidden=True)` return the backbone's last hidden states [B, T, H] and skip the
    LM head, so a loss can project only the scored positions in chunks.

    It wraps `model.forward` as an instance attribute, the way TRL's `add_fused_lm_head` does, so calls through
    DDP, accelerate and PEFT wrappers (which call `self.model.forward`) reach it. Apply it to the unwrapped
    `PreTrainedModel` (`get_base_model()` under PEFT), after the trainer's own patching. Idempotent."""
    current = model.forward
    if getattr(current, "_trl_ext_backbone", False):
        return

    @functools.wraps(type(model).forward)
    def forward(self, *args, return_backbone_hidden: bool = False, **kwargs):
        if not return_backbone_hidden:
            return current(*args, **kwargs)
        kwargs.pop("labels", None)
        kwargs["use_cache"] = False
        return backbone(self)(*args, **kwargs).last_hidden_state

    forward._trl_ext_backbone = True
    model.forward = types.MethodType(forward, model)


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack of a causal LM (`model.model` for Llama-like models)."""
    return model.base_model if model.base_model is not model else model.model


def drop_instance_forward(model: torch.nn.Module):
    """Remove a patched instance `forward` (returned, to put back), so `copy.deepcopy` yields a clean model."""
    return model.__dict__.pop("forward", None)


def shallow_module_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` that shares every parameter, buffer and child but owns its registries, so children can be
    replaced on the copy (`setattr`) without touching `module`. torch keeps those registries in the private
    `_modules` / `_parameters` / `_buffers` dicts (torch 2.13); a patched instance `forward`, bound to `module`, is
    not carried over."""
    clone = copy.copy(module)
    for key in ("_modules", "_parameters", "_buffers"):
        setattr(clone, key, OrderedDict(getattr(module, key)))
    clone.__dict__.pop("forward", None)
    return clone


def no_split_module_classes(model: torch.nn.Module) -> set[str]:
    """Class names of the blocks a sharding engine keeps whole (decoder layers): a transformers model's
    `_no_split_modules`, which accelerate 1.15 also groups FSDP units by (transformers 5.24)."""
    return set(getattr(model, "_no_split_modules", None) or [])


def forget_load_quantizer(model: torch.nn.Module) -> None:
    """Mark a model whose weights were dequantized on load (GGUF) as unquantized, so `save_pretrained` writes a
    plain checkpoint instead of a config that claims the quantizer. Clears the config's `quantization_config` and
    `_pre_quantization_dtype` and the model's `is_quantized` / `hf_quantizer`, as transformers 5.24 sets them."""
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    model.is_quantized = False
    model.hf_quantizer = None


def keep_4bit_weights_trainable_on_cpu(model: torch.nn.Module) -> None:
    """Stop bitsandbytes (0.50.2) from repacking 4-bit weights for its AVX512-BF16 CPU kernel. It repacks on the
    first eval-mode no-grad forward (a reference pass, an evaluation) and never unpacks, and the packed kernel has no
    backward: every later training step then gets no gradient through the base weights. Clears the public
    `Linear4bit.support_avx512bf16_for_cpu` flag on each module that has it; a no-op for other models."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def backbone_forward_with_cache(stack: torch.nn.Module, cache=None, **kwargs) -> tuple[torch.Tensor, object]:
    """`stack(**kwargs, use_cache=True)` continuing from the KV `cache` (None: a new one): (last hidden states, the
    cache). transformers 5.24 names the argument and output field `cache` (`past_key_values`, deprecated, before)."""
    params = inspect.signature(stack.forward).parameters
    name = "cache" if "cache" in params else "past_key_values"
    if cache is not None:
        kwargs[name] = cache
    out = stack(**kwargs, use_cache=True)
    return out.last_hidden_state, getattr(out, "cache", None) or out.past_key_values
