"""SpIELCallback: runs SpIEL's drop/regrow schedule on any trainer whose model carries a SpIEL (peft supertuning)
adapter: `trl-ext train sft --adapter spiel --callbacks spiel`, or inside `SpIELTrainer`.

Bound to its trainer (trl_ext.training.bound_callbacks), it installs `SpIELAdamW` (per-entry ages, needed to seed the
regrown slots) unless the trainer already has an optimizer, and saves the selector's open phase with each checkpoint
(`spiel_selector.pt`); the support itself is the adapter's `supertuning_indices` buffers, saved with the weights.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from trl_ext.training.bound_callbacks import BoundCallback

from .optimizer import SpIELAdamW
from .selection import Schedule, Selector, reselection_rate
from .support import spiel_layers

logger = logging.getLogger(__name__)

STATE_FILE = "spiel_selector.pt"


def validate_schedule(
    reselection_steps: int, selection_accumulation_steps: int, initial_reselection_rate: float, policy: str
) -> None:
    if reselection_steps < 3:
        raise ValueError(f"reselection_steps={reselection_steps} must be >= 3 (S; 0 disables reselection)")
    if not 1 <= selection_accumulation_steps <= reselection_steps - 2:
        raise ValueError(
            f"selection_accumulation_steps={selection_accumulation_steps} must be in [1, reselection_steps - 2] "
            f"= [1, {reselection_steps - 2}] (A: a phase opens at t = S - 1 and closes at t = A mod S)"
        )
    if not 0.0 <= initial_reselection_rate <= 1.0:
        raise ValueError(f"initial_reselection_rate={initial_reselection_rate} must be in [0, 1]")
    if policy not in ("linear", "cosine"):
        raise ValueError(f"reselection_rate_policy must be 'linear' or 'cosine', got {policy!r}")


def _is_sharded(trainer) -> str | None:
    args = trainer.args
    plugin = getattr(args, "deepspeed_plugin", None)
    if getattr(args, "deepspeed", None) or plugin is not None:
        stage = getattr(plugin, "zero_stage", None)
        if stage is None and isinstance(args.deepspeed, dict):
            stage = args.deepspeed.get("zero_optimization", {}).get("stage")
        return f"DeepSpeed ZeRO-{stage}" if stage is not None else "DeepSpeed"
    if getattr(args, "fsdp", None) or getattr(args, "fsdp_config", None) and args.fsdp_config.get("fsdp_version"):
        return "FSDP"
    return None


class SpIELCallback(BoundCallback):
    """Drop/regrow every `reselection_steps` (S) optimizer steps from gradients accumulated over
    `selection_accumulation_steps` (A) steps before, at rate `initial_reselection_rate` (zeta0) decayed by
    `reselection_rate_policy`; `reselection_steps=0` keeps the initial random support fixed."""

    def __init__(
        self,
        reselection_steps: int = 20,
        selection_accumulation_steps: int = 5,
        initial_reselection_rate: float = 0.2,
        reselection_rate_policy: str = "linear",
        adapter_name: str = "default",
    ):
        self.reselection_steps = int(reselection_steps)
        self.selection_accumulation_steps = int(selection_accumulation_steps)
        self.initial_reselection_rate = float(initial_reselection_rate)
        self.policy = reselection_rate_policy
        self.adapter_name = adapter_name
        if self.reselection_steps:
            validate_schedule(
                self.reselection_steps, self.selection_accumulation_steps, self.initial_reselection_rate, self.policy
            )
        self.selector: Selector | None = None
        self.schedule: Schedule | None = None
        self._resume_from: str | None = None

    def bind(self, trainer: Any) -> None:
        super().bind(trainer)
        sharded = _is_sharded(trainer)
        if sharded:
            # ZeRO-3/FSDP hold shards of the frozen weight that peft's composed forward reads whole, and flatten the
            # deltas so that slot-indexed optimizer state (the regrowth's reseeding) has no meaning: refuse early.
            raise ValueError(
                f"spiel: {sharded} is not supported. SpIEL composes each frozen weight with its sparse deltas in the "
                "layer's own forward and reseeds optimizer state per delta slot; both need whole parameters on "
                "every process. Use plain data parallelism (torchrun / accelerate without DeepSpeed or FSDP)."
            )
        model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
        layers = spiel_layers(model, self.adapter_name)
        if not layers:
            raise ValueError(
                f"spiel: the model has no SpIEL adapter {self.adapter_name!r}; wrap it with --adapter spiel"
            )
        group = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            group = dist.new_group(backend="gloo" if not torch.cuda.is_available() else None)
        self.selector = Selector(layers, self.adapter_name, group)
        if trainer.optimizer is None and not getattr(trainer, "_spiel_creates_optimizer", False):
            trainer.optimizer = spiel_optimizer(model, trainer.args)
        elif trainer.optimizer is not None and not isinstance(trainer.optimizer, SpIELAdamW):
            logger.warning(
                "spiel: the trainer brings its own %s; regrown deltas keep that optimizer's state (not reseeded "
                "from their accumulated gradients as SpIEL does). Let the callback install SpIELAdamW instead.",
                type(trainer.optimizer).__name__,
            )
        original_train = trainer.train

        def train(resume_from_checkpoint=None, *args, **kwargs):
            self._resume_from = _resolve_checkpoint(resume_from_checkpoint, trainer.args.output_dir)
            return original_train(resume_from_checkpoint, *args, **kwargs)

        trainer.train = train

    # --- events ----------------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if self.selector is None or not self.reselection_steps:
            return
        self.schedule = Schedule(self.reselection_steps, self.selection_accumulation_steps, state.max_steps)
        path = os.path.join(self._resume_from, STATE_FILE) if self._resume_from else None
        if path and os.path.exists(path):
            self.selector.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif self._resume_from:
            logger.warning("spiel: %s has no %s; the selection phase restarts at the next boundary", path, STATE_FILE)
        elif state.global_step == 0 and self.schedule.begins(0):
            self.selector.begin()

    def on_step_end(self, args, state, control, **kwargs):
        if self.selector is None or self.schedule is None:
            return
        t = state.global_step
        if self.selector.selecting and self.schedule.ends(t):
            rate = reselection_rate(t, self.schedule, self.initial_reselection_rate, self.policy)
            metrics = self.selector.select(
                rate, self.selector.end(), self.trainer.optimizer, args.gradient_accumulation_steps
            )
            for key, value in metrics.items():
                if hasattr(self.trainer, "_metrics"):
                    self.trainer._metrics["train"][key].append(value)
        if not self.selector.selecting and self.schedule.begins(t):
            self.selector.begin()

    def on_save(self, args, state, control, **kwargs):
        if self.selector is None or not args.should_save:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):
            torch.save(self.selector.state_dict(), os.path.join(folder, STATE_FILE))

    def on_train_end(self, args, state, control, **kwargs):
        if self.selector is not None:
            self.selector.end()


def _resolve_checkpoint(resume_from_checkpoint: Any, output_dir: str) -> str | None:
    if resume_from_checkpoint in (None, False):
        return None
    if resume_from_checkpoint is True or str(resume_from_checkpoint).lower() in ("true", "latest"):
        return get_last_checkpoint(output_dir)
    return str(resume_from_checkpoint)


def spiel_optimizer(model: torch.nn.Module, args: Any) -> SpIELAdamW:
    """SpIELAdamW over the trainable parameters, with the trainer arguments' lr, betas, eps and weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    return SpIELAdamW(
        params,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )


__all__ = ["STATE_FILE", "SpIELCallback", "spiel_optimizer", "validate_schedule"]
