"""Per-sequence-mean losses (`mean_b [ sum_t loss_bt / n_b ]`) that stay right under gradient accumulation and
several processes.

SFTTrainer normalises by `num_items_in_batch`, the number of scored tokens in the whole accumulated global batch,
and multiplies by the number of processes because DDP averages gradients. A sequence-mean loss needs the same thing
with sequences: the number of scored sequences in the accumulated global batch. `SequenceCountMixin` counts them as
one of `trl_ext.compat.step_totals`' window totals (summed over the step's micro-batches and the processes, where
the Trainer counts tokens), and `sequence_normalizer` turns that count into the divisor and the multiplier a
`compute_loss` applies, so one process, gradient accumulation and 2 processes give the same gradient for the same
global batch.
"""

from __future__ import annotations

import torch

from trl_ext.compat.step_totals import WindowTotalsMixin


def sequence_token_weights(mask: torch.Tensor) -> torch.Tensor:
    """For a [B, T] mask of scored positions, the weight 1/n_b of each scored token (in `mask` order, shape [N]),
    so that `sum(weights * token_loss)` is the sum over sequences of their token-mean loss."""
    lengths = mask.sum(1, keepdim=True).clamp(min=1).to(torch.float32)
    return (1.0 / lengths).expand(mask.shape)[mask]


def count_scored_sequences(labels: torch.Tensor) -> int:
    """Sequences with at least one scored next-token label (labels aligned with input ids, -100 ignored)."""
    return int((labels[:, 1:] != -100).any(dim=1).sum())


class SequenceCountMixin(WindowTotalsMixin):
    """Put before the TRL trainer in the bases: `num_sequences_in_batch` is then the number of scored sequences in
    the current optimizer step's micro-batches, over the processes when tokens are (`average_tokens_across_devices`).
    Trainers with window totals of their own extend `window_totals` and call `super()`."""

    def window_totals(self, batch: dict) -> dict[str, torch.Tensor]:
        totals = super().window_totals(batch)
        totals["sequences"] = torch.tensor(count_scored_sequences(batch["labels"]) if "labels" in batch else 0)
        return totals

    @property
    def num_sequences_in_batch(self) -> torch.Tensor | None:
        totals = self.current_window_totals()
        return None if not totals else totals["sequences"].round().long()

    def sequence_normalizer(self, mask: torch.Tensor, num_items_in_batch) -> tuple[torch.Tensor, float]:
        """(divisor, multiplier) of a loss summed over this micro-batch's sequences (the module's
        `sequence_normalizer` for this trainer), as `token_normalizer` is for a token sum."""
        return sequence_normalizer(self, mask, num_items_in_batch)


def sequence_normalizer(trainer, mask: torch.Tensor, num_items_in_batch) -> tuple[torch.Tensor, float]:
    """(divisor, multiplier) for a loss summed over this micro-batch's sequences.

    In training (the Trainer passes `num_items_in_batch` and leaves gradient accumulation to the loss) the divisor is
    the global count of scored sequences of the optimizer step, and the multiplier the number of processes when that
    count spans them (DDP averages gradients). Elsewhere (evaluation, direct calls) it is the local count and 1: the
    Trainer then divides by the accumulation steps itself."""
    local = mask.any(dim=1).sum()
    global_count = getattr(trainer, "num_sequences_in_batch", None)
    if num_items_in_batch is None or global_count is None:
        return local.clamp(min=1), 1.0
    multiplier = 1.0
    if trainer.args.average_tokens_across_devices:
        multiplier = float(trainer.accelerator.num_processes)
    return torch.as_tensor(global_count, device=mask.device).clamp(min=1), multiplier


def accumulation_divisor(trainer, num_items_in_batch) -> int:
    """What to divide a per-micro-batch term (a regulariser, an auxiliary loss) by so that it counts once per
    optimizer step: the step's accumulation count when transformers' training step leaves the loss undivided (it
    decides so from `loss_is_scaled_for_ga`, else from `model_accepts_loss_kwargs` with `num_items_in_batch`, or a
    `compute_loss_func`), else 1 (the training step divides the whole loss, the term included)."""
    declared = getattr(trainer, "loss_is_scaled_for_ga", None)
    if declared is not None:
        scaled = bool(declared)
    else:
        scaled = bool(
            (getattr(trainer, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None)
            or getattr(trainer, "compute_loss_func", None) is not None
        )
    return int(getattr(trainer, "current_gradient_accumulation_steps", 1)) if scaled else 1
