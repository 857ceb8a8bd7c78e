"""TRL's pieces for losses that read the LM head outside the model's forward under sharded engines (DeepSpeed
ZeRO-3, FSDP2), both private in trl 1.16: a forward redirection and a ZeRO-3 gather of the head. Written against
trl 1.16.0; tests/test_compat.py checks both names exist."""

from __future__ import annotations

import torch


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
