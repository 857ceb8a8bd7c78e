"""AdaLoRA's rank allocation inside any trl-ext training run.

peft's AdaLoRA prunes ranks only when the training loop calls `update_and_allocate(step)` between the optimizer step
and `zero_grad`, which no TRL trainer does: without it an AdaLoRA adapter trains as an SVD-parameterised LoRA of rank
`init_r`. `AdaLoraAllocation` makes that call from transformers' `on_optimizer_step` (after `optimizer.step()`,
before `zero_grad()`, where peft's docs place it), sets the adapter's `total_step` to the run's `max_steps` (the
cubic budget schedule must end inside the run), and carries the allocator's importance averages through checkpoints.
peft saves an adapter whose config holds a `rank_pattern` with its matrices cut to the kept ranks, which a resume
cannot load back into the full-size model: during training the pattern is kept here (and in each checkpoint's state
file), so checkpoints hold full-size matrices with the pruned ranks zeroed, and it returns to the config when training
ends, so the final `save_model` writes the pruned adapter that `PeftModel.from_pretrained` loads.
AdaLoRA's objective also holds the orthogonality regulariser `orth_reg_weight * R(P, Q)`, which peft adds to the
model's own `loss` only; TRL's trainers compute theirs from the fused head's log-probabilities, so it would be lost:
the callback adds it to the trainer's loss instead (once per optimizer step under gradient accumulation).
`trl-ext train` installs it whenever the adapted model is AdaLoRA (`attach_rank_allocation`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from trl_ext.training.bound_callbacks import BoundCallback
from trl_ext.training.normalization import accumulation_divisor
from trl_ext.training.sharding import engine_name

logger = logging.getLogger(__name__)

STATE_FILE = "adalora_allocator.pt"


def adalora_tuner(model: Any):
    """The `AdaLoraModel` inside `model` (a PeftModel, possibly wrapped by DDP), or None when it has none."""
    from peft.tuners.adalora import AdaLoraModel

    for candidate in (model, getattr(model, "module", None)):
        base = getattr(candidate, "base_model", None)
        if isinstance(base, AdaLoraModel):
            return base
    return None


class AdaLoraAllocation(BoundCallback):
    """Calls the AdaLoRA tuner's `update_and_allocate` once per optimizer step; see the module docstring."""

    tuner: Any = None
    rank_pattern: dict[str, list[bool]] | None = None

    def bind(self, trainer: Any) -> None:
        super().bind(trainer)
        engine = engine_name(trainer)
        if engine:
            # the importance scores are |w * grad| over whole matrices and the pruning threshold a top-k across every
            # layer: shards (FSDP) or gradients moved into the engine's flat buffers (ZeRO) give each rank its own
            raise ValueError(
                f"AdaLoRA's rank allocation cannot run under {engine}: it scores each whole lora matrix by its "
                "gradient after the optimizer step and ranks the scores across all layers, which needs whole "
                "parameters and gradients on every process. Use DDP (torchrun) or one process."
            )
        self.tuner = adalora_tuner(trainer.model)
        if self.tuner is None:
            raise ValueError("AdaLoraAllocation: the trainer's model carries no AdaLoRA adapter.")
        self._add_orthogonality(trainer)

    def _add_orthogonality(self, trainer: Any) -> None:
        """Wrap `trainer.compute_loss` to add AdaLoRA's regulariser; peft's own addition (made only when the model
        returns a loss) is switched off around the call, so the term is counted once whichever loss path runs."""
        compute_loss = trainer.compute_loss
        config = self._config

        def with_orthogonality(model, inputs, return_outputs=False, num_items_in_batch=None):
            weight, config.orth_reg_weight = config.orth_reg_weight, 0.0
            try:
                result = compute_loss(
                    model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
                )
            finally:
                config.orth_reg_weight = weight
            if not weight or not model.training:
                return result
            term = weight * orthogonality_penalty(self.tuner) / accumulation_divisor(trainer, num_items_in_batch)
            if return_outputs:
                return result[0] + term, result[1]
            return result + term

        trainer.compute_loss = with_orthogonality

    @property
    def _config(self):
        return self.tuner.peft_config[self.tuner.trainable_adapter_name]

    def on_train_begin(self, args, state, control, **kwargs):
        config = self._config
        if config.total_step != state.max_steps:
            logger.warning(
                "AdaLoRA: total_step %s -> %s (this run's max_steps), so the rank budget reaches target_r=%s in it",
                config.total_step,
                state.max_steps,
                config.target_r,
            )
            config.total_step = state.max_steps
        self.rank_pattern, config.rank_pattern = config.rank_pattern, None
        if state.global_step > 0:
            self._restore(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"))

    def on_optimizer_step(self, args, state, control, **kwargs):
        config = self._config
        config.rank_pattern = self.rank_pattern  # after the final allocation peft masks by the config's pattern
        # transformers raises global_step after this event: the step being taken is state.global_step (0-based)
        self.tuner.update_and_allocate(state.global_step)
        self.rank_pattern, config.rank_pattern = config.rank_pattern, None

    def on_train_end(self, args, state, control, **kwargs):
        self._config.rank_pattern = self.rank_pattern

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if args.should_save and os.path.isdir(folder):
            allocator = self.tuner.rankallocator
            state_dict = {
                "ipt": allocator.ipt,
                "exp_avg_ipt": allocator.exp_avg_ipt,
                "exp_avg_unc": allocator.exp_avg_unc,
                "rank_pattern": self.rank_pattern,
            }
            torch.save(state_dict, os.path.join(folder, STATE_FILE))

    def _restore(self, folder: str) -> None:
        path = os.path.join(folder, STATE_FILE)
        if not os.path.isfile(path):
            logger.warning("AdaLoRA: %s not found; the importance averages restart from zero on resume", path)
            return
        saved = torch.load(path, map_location="cpu", weights_only=True)
        allocator, device = self.tuner.rankallocator, next(self.tuner.parameters()).device
        for name in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            setattr(allocator, name, {key: value.to(device) for key, value in saved[name].items()})
        self.rank_pattern = saved["rank_pattern"]


def orthogonality_penalty(tuner: Any) -> torch.Tensor:
    """AdaLoRA's R(P, Q) as peft and the paper's official code compute it: the mean, over every lora_A (P) and lora_B
    (Q) matrix of the trainable adapter, of the Frobenius norm (not squared) of P P^T - I, resp. Q^T Q - I."""
    adapter = tuner.trainable_adapter_name
    norms = []
    for name, param in tuner.model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and adapter in name:
            gram = param @ param.T if "lora_A" in name else param.T @ param
            identity = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
            norms.append(torch.linalg.matrix_norm(gram - identity))
    return torch.stack(norms).mean()


def attach_rank_allocation(trainer: Any) -> AdaLoraAllocation | None:
    """Install and bind `AdaLoraAllocation` when `trainer`'s model carries an AdaLoRA adapter; returns it (or None)."""
    if adalora_tuner(trainer.model) is None:
        return None
    callback = AdaLoraAllocation()
    trainer.add_callback(callback)
    callback.bind(trainer)
    return callback


__all__ = ["STATE_FILE", "AdaLoraAllocation", "adalora_tuner", "attach_rank_allocation", "orthogonality_penalty"]
