"""TRL's pieces for losses that read the LM head outside the model's forward under sharded engines (DeepSpeed
ZeRO-3, FSDP2), both private in trl 1.16: a forward redirection and a ZeRO-3 gather of the head. Written against
trl 1.16.0; tests/test_compat.py checks both names exist. Also a context that loads whole (unpartitioned) models
while a ZeRO-3 config is live."""

from __future__ import annotations

import contextlib

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


@contextlib.contextmanager
def whole_model_loading():
    """A context in which `from_pretrained` builds a whole model on this process even while a DeepSpeed ZeRO-3
    config is live (TrainingArguments(deepspeed=...) registers it globally, and transformers then partitions every
    model it loads through `deepspeed.zero.Init`): for a frozen scorer that no DeepSpeed engine ever wraps, whose
    partitioned parameters nothing would gather. Restores the config afterwards. Uses transformers 5.x's module
    global `_hf_deepspeed_config_weak_ref` (transformers.integrations.deepspeed); tests/test_scorer_loading.py checks
    it."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved
