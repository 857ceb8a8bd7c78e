"""The only module that reaches into TRL/transformers internals or patches their objects. Each piece names the
version it was written against and has a test in tests/test_compat.py that fails loudly when that changes."""

from __future__ import annotations

import functools
import types

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


def record_metric(trainer, mode: str, key: str, value: float) -> None:
    """Append to SFTTrainer/GRPOTrainer's per-mode metric lists (`_metrics`), which their `log` averages."""
    trainer._metrics[mode][key].append(value)


def run_inside_forward(wrapper: torch.nn.Module, module: torch.nn.Module, method, *args, **kwargs):
    """`method(*args, **kwargs)` run as `module`'s forward, called through `wrapper` (DDP, a DeepSpeed engine, an
    FSDP root): the engine's forward hooks hold its parameters gathered or unsharded while `method` reads them, and
    its backward hooks see the result. TRL 1.16's `_ForwardRedirection` (trl.models.utils), as TRL's distillation
    trainer uses it."""
    from trl.models.utils import _ForwardRedirection

    return _ForwardRedirection()(wrapper, module, method, *args, **kwargs)


def gathered_lm_head(*params: torch.nn.Parameter | None):
    """A context holding ZeRO-3 partitioned parameters (e.g. `lm_head.weight`, `lm_head.bias`) gathered while a loss
    reads them outside their module's forward; a null context without ZeRO-3 or when already gathered. TRL 1.16's
    `maybe_gather_lm_head_ctx` (trl.trainer.utils)."""
    from trl.trainer.utils import maybe_gather_lm_head_ctx

    return maybe_gather_lm_head_ctx(*params)
