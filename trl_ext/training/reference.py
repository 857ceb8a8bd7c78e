"""Reference and teacher models: `reference_model` builds the frozen model a loss compares the policy with (given,
loaded from a path, or a copy of the initial policy); `EMATeacher` keeps such a copy an EMA of the policy.

An EMA teacher: a frozen copy of the policy that follows it as

    theta_T <- (1 - alpha) * theta_T + alpha * theta      every `sync_steps` optimizer steps,

which is TRL's `SyncRefModelCallback` rule (`ref_model_sync_steps`, `ref_model_mixup_alpha`). The teacher is a whole
model on every process; the policy's parameters are read through `trl_ext.training.sharding.full_parameters`, so the update
is the same under DeepSpeed ZeRO-3 (gathered) and FSDP2 (all-gathered DTensors) as on one process.

The teacher is trainer state that is neither the base model nor the policy a checkpoint holds, so `EMATeacher`
writes it next to every checkpoint and `EMATeacher.load` puts it back before a resumed run continues; without that a
resumed run would silently distil toward the wrong model.
"""

from __future__ import annotations

import copy
import logging
import os

import torch
from safetensors.torch import load_model, save_model
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from trl_ext.compat.models import drop_instance_forward
from trl_ext.models import load_model as load_pretrained_model
from trl_ext.training.sharding import full_parameters, full_shape, is_dtensor, is_zero3_partitioned

logger = logging.getLogger(__name__)

TEACHER_FILE = "trl_ext_ema_teacher.safetensors"


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of `model` in eval mode without gradients. Tied weights stay tied inside the copy and are never
    shared with `model`; a patched instance `forward` (e.g. `add_backbone_forward`) is not carried over.

    A model that DeepSpeed ZeRO-3 partitioned at load time (`from_pretrained` under a ZeRO-3 config) is copied from
    its gathered parameters: the copy is a whole model on every process (a deep copy would hold empty tensors)."""
    params = list(model.parameters())
    if any(is_dtensor(p) for p in params):
        raise ValueError(
            "Cannot copy a model already sharded by FSDP2: build the copy before `accelerator.prepare` (the trainer's "
            "__init__ does), or load it from the model's path."
        )
    memo: dict[int, torch.nn.Parameter] = {}
    if any(is_zero3_partitioned(p) for p in params):
        unique = list({id(p): p for p in params}.values())
        with full_parameters(unique) as values:
            memo = {
                id(p): torch.nn.Parameter(v.clone(), requires_grad=False) for p, v in zip(unique, values, strict=True)
            }
    forward = drop_instance_forward(model)
    try:
        teacher = copy.deepcopy(model, memo)
    finally:
        if forward is not None:
            model.forward = forward
    return teacher.eval().requires_grad_(False)


def reference_model(
    policy: torch.nn.Module,
    source: torch.nn.Module | str | None = None,
    *,
    device: torch.device | str | None = None,
    adapter_base: bool = False,
) -> tuple[torch.nn.Module | None, str]:
    """The frozen reference of `policy` and a description of where it came from (saved with checkpoints to check a
    resume against).

    `source` is a model (used as it is) or a path (loaded in the policy's dtype). Without one: None when
    `adapter_base` (under PEFT the adapter-disabled base is the initial model, no copy needed), else
    `frozen_copy(policy)` (gathered under ZeRO-3; a policy FSDP2 already sharded is refused). The reference must
    share the policy's vocabulary (a given one is checked); it is moved to `device` in eval mode without gradients."""
    if source is None:
        if adapter_base:
            return None, "adapter-disabled base"
        # A true copy: tied embeddings stay tied inside it, never shared with the policy
        ref = frozen_copy(policy)
        described = f"initial copy of {getattr(policy.config, 'name_or_path', '') or 'the policy'}"
    else:
        if isinstance(source, torch.nn.Module):
            ref, described = source, getattr(source.config, "name_or_path", "") or "given"
        else:
            ref, described = load_pretrained_model(source, dtype=policy.dtype), source
        if full_shape(ref.get_output_embeddings().weight)[0] != full_shape(policy.get_output_embeddings().weight)[0]:
            raise ValueError(f"The reference model {described!r} has a different vocabulary size than the policy.")
    ref.eval().requires_grad_(False)
    return (ref if device is None else ref.to(device)), described


def resolve_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str) -> str | None:
    """The checkpoint folder `Trainer.train(resume_from_checkpoint=...)` will resume from (True: the latest complete
    one in `output_dir`, as the runner resolves it), or None for a fresh run."""
    if resume_from_checkpoint is True:
        from trl_ext.training.checkpoints import latest_complete

        found, _ = latest_complete(output_dir)
        if found is None:
            raise ValueError(f"resume_from_checkpoint=True but no checkpoint found in {output_dir}")
        return found
    if isinstance(resume_from_checkpoint, str):
        return resume_from_checkpoint
    return None


class EMATeacher(TrainerCallback):
    """Keeps `teacher` an EMA of `policy` (see the module docstring) and saves/restores it with checkpoints.

    Args:
        teacher: the frozen copy (`frozen_copy(policy)` at the start of training).
        policy: the trained model, unwrapped (under PEFT the base model holding the adapters, so the parameter
            lists of both line up one to one).
        sync_steps: S, optimizer steps between updates (the update runs at the end of steps S, 2S, ...).
        alpha: the weight of the policy in the update (1: copy the policy, 0: the teacher never moves).
        filename: the file written into each `checkpoint-N` folder.
    """

    def __init__(
        self,
        teacher: torch.nn.Module,
        policy: torch.nn.Module,
        sync_steps: int,
        alpha: float,
        filename: str = TEACHER_FILE,
    ):
        if sync_steps < 1:
            raise ValueError(f"sync_steps={sync_steps} must be >= 1")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must be in [0, 1]")
        self.teacher = teacher
        self.policy = policy
        self.sync_steps = sync_steps
        self.alpha = alpha
        self.filename = filename
        self.num_updates = 0

    def update(self) -> None:
        """One EMA update, now (on every process: reading a sharded policy is a collective)."""
        teacher = list(self.teacher.parameters())
        with full_parameters(self.policy.parameters()) as policy:
            if len(policy) != len(teacher):
                raise ValueError(f"The teacher has {len(teacher)} parameters and the policy {len(policy)}.")
            for target, source in zip(teacher, policy, strict=True):
                target.mul_(1.0 - self.alpha).add_(source.to(target.dtype), alpha=self.alpha)
        self.num_updates += 1

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.sync_steps == 0:
            self.update()

    def on_save(self, args, state, control, **kwargs):
        # Trainer calls on_save right after writing checkpoint-N (after on_step_end, so after this step's update).
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):
            save_model(self.teacher, os.path.join(folder, self.filename))

    def load(self, checkpoint: str) -> None:
        """Restore the teacher saved in `checkpoint` (a `checkpoint-N` folder)."""
        path = os.path.join(checkpoint, self.filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{checkpoint} has no {self.filename}: it was not written by a trainer with an EMA teacher, so the "
                "teacher cannot be restored and resuming would distil toward the wrong model."
            )
        device = next(self.teacher.parameters()).device
        load_model(self.teacher, path, strict=True, device=str(device))
        logger.info("Restored the EMA teacher from %s", path)
