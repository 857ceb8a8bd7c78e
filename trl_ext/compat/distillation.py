"""DistillationTrainer's loss seam, private in trl 1.16: `DistillationTrainer._compute_loss` runs the student's and
the (frozen) teacher's backbones on the prompt + on-policy completion ids, reads both LM heads with their logit scale,
soft-cap and the temperature, and hands all of it to the module-level `_chunked_divergence_loss` (the generalized JSD
on TRL's chunked kernel). A method that keeps every other part of the trainer (generation, hidden states, sharded
engines, normalisation by the global completion-token count) and changes only the divergence replaces that function
for the duration of its loss with `divergence_override`.

Written against trl 1.16.0; tests/test_compat_distillation.py fails loudly when the seam changes (the function's
parameters, or `_compute_loss` no longer calling it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from trl.trainer import distillation_trainer as _distillation_module

# TRL's own divergence, as imported (before any override): the dense beta-JSD (beta 1 = reverse KL, 0 = forward KL)
trl_divergence_loss = _distillation_module._chunked_divergence_loss

# What a replacement receives, by keyword after the five positional tensors (as trl 1.16's `_compute_loss` calls it):
# student_hidden_states [B, K, H_s], teacher_hidden_states [B, K, H_t], student_lm_head_weight [V, H_s],
# teacher_lm_head_weight [V, H_t], completion_mask [B, K] (the loss mask), then beta, num_items_in_batch (the global
# completion-token count over the processes, or None), the heads' biases, logit scales and final soft-caps, and
# temperature. It returns (loss, student entropy sum, number of valid positions) over the local micro-batch.
DIVERGENCE_PARAMETERS = (
    "student_hidden_states",
    "teacher_hidden_states",
    "student_lm_head_weight",
    "teacher_lm_head_weight",
    "completion_mask",
    "beta",
    "num_items_in_batch",
    "student_lm_head_bias",
    "teacher_lm_head_bias",
    "student_logit_scale",
    "teacher_logit_scale",
    "student_final_logit_softcapping",
    "teacher_final_logit_softcapping",
    "temperature",
)


@contextlib.contextmanager
def divergence_override(divergence: Callable) -> Iterator[None]:
    """Inside the context, DistillationTrainer's `_compute_loss` (of every instance: keep the context to one loss
    call, in one thread) computes its loss with `divergence` instead of TRL's `_chunked_divergence_loss`."""
    previous = _distillation_module._chunked_divergence_loss
    _distillation_module._chunked_divergence_loss = divergence
    try:
        yield
    finally:
        _distillation_module._chunked_divergence_loss = previous
