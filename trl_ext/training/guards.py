"""Stop a run whose training loss turns NaN or inf before it saves anything made from it.

The loss of every micro-batch is read as `training_step` returns it (any TRL trainer: SFT, GRPO, DPO, ...), and at
`on_step_end`, which transformers calls before it logs, evaluates or saves that step, a non-finite loss on any process
raises `NonFiniteLossError` on all of them: no checkpoint of the diverged step is written, the runner's final
`save_model` does not run, and the last checkpoint stays as it was. Checking at the log instead would let a save
between two logs (`save_steps` < `logging_steps`) write the NaN model.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from trl_ext.training.checkpoints import latest_complete


class NonFiniteLossError(ValueError):
    """The training loss became NaN or inf; the message names the step and the checkpoint kept."""


class NonFiniteLossGuard(TrainerCallback):
    """Install with `stop_on_non_finite_loss(trainer)`."""

    def __init__(self, trainer):
        self.trainer = trainer
        # [non-finite losses, NaN losses] since the last optimizer step, kept on the device: no sync per micro-batch
        self.counts: torch.Tensor | None = None

    def record(self, loss) -> None:
        loss = torch.as_tensor(loss).detach()
        counts = torch.stack([(~torch.isfinite(loss)).sum(), torch.isnan(loss).sum()]).float()
        self.counts = counts if self.counts is None else self.counts + counts

    def on_step_end(self, args, state, control, **kwargs):
        accelerator = self.trainer.accelerator
        counts = self.counts if self.counts is not None else torch.zeros(2)
        self.counts = None
        if accelerator.num_processes > 1:  # every rank must stop together, or the others hang in the next collective
            counts = accelerator.reduce(counts.to(accelerator.device), reduction="sum")
        bad, nans = counts.tolist()
        if not bad:
            return
        value = "nan" if nans else "inf"
        kept, _ = latest_complete(args.output_dir, fresh_optimizer=True)
        raise NonFiniteLossError(
            f"The training loss is {value} at step {state.global_step} (on one of the processes if not here): "
            "training stopped before this step was logged or saved, and the model was not saved. "
            + (f"The last checkpoint, {kept}, is intact. " if kept else "No checkpoint had been saved. ")
            + "Lower --learning_rate, clip gradients (--max_grad_norm), or check the data around this step."
        )


def stop_on_non_finite_loss(trainer) -> NonFiniteLossGuard:
    """Add the guard to `trainer`: its `training_step` reports each loss to it (an instance attribute wrapping the
    public method, so a subclass's own `training_step` is what runs)."""
    guard = NonFiniteLossGuard(trainer)
    training_step = trainer.training_step

    def guarded_training_step(*args, **kwargs):
        loss = training_step(*args, **kwargs)
        guard.record(loss)
        return loss

    trainer.training_step = guarded_training_step
    trainer.add_callback(guard)
    return guard
