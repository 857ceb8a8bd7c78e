"""Per-sequence-mean losses (`mean_b [ sum_t loss_bt / n_b ]`) that stay right under gradient accumulation and
several processes.

SFTTrainer normalises by `num_items_in_batch`, the number of scored tokens in the whole accumulated global batch,
and multiplies by the number of processes because DDP averages gradients. A sequence-mean loss needs the same thing
with sequences: the number of scored sequences in the accumulated global batch. A trainer counts them where the
Trainer counts tokens (`global_sequence_count`, called from `get_batch_samples`, which prefetches the micro-batches
of one optimizer step; `SequenceCountMixin` does that call), and `sequence_normalizer` turns that count into the
divisor and the multiplier a `compute_loss` applies, so one process, gradient accumulation and 2 processes give the
same gradient for the same global batch.
"""

from __future__ import annotations

import torch


def sequence_token_weights(mask: torch.Tensor) -> torch.Tensor:
    """For a [B, T] mask of scored positions, the weight 1/n_b of each scored token (in `mask` order, shape [N]),
    so that `sum(weights * token_loss)` is the sum over sequences of their token-mean loss."""
    lengths = mask.sum(1, keepdim=True).clamp(min=1).to(torch.float32)
    return (1.0 / lengths).expand(mask.shape)[mask]


def count_scored_sequences(labels: torch.Tensor) -> int:
    """Sequences with at least one scored next-token label (labels aligned with input ids, -100 ignored)."""
    return int((labels[:, 1:] != -100).any(dim=1).sum())


def global_sequence_count(trainer, batch_samples: list, device) -> torch.Tensor:
    """The number of scored sequences in an optimizer step's micro-batches, summed over processes when tokens are
    (as `average_tokens_across_devices` makes SFTTrainer do for `num_items_in_batch`).

    Call it from a trainer's `get_batch_samples(epoch_iterator, num_batches, device)` override, the public Trainer
    method that prefetches one optimizer step's micro-batches and counts their tokens (transformers 5.24), and store
    the result as `trainer.num_sequences_in_batch` for `sequence_normalizer`::

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
            self.num_sequences_in_batch = global_sequence_count(self, batch_samples, device)
            return batch_samples, num_items_in_batch

    tests/test_sequence_norm.py fails if `get_batch_samples` stops being called this way during training."""
    count = sum(count_scored_sequences(batch["labels"]) for batch in batch_samples if "labels" in batch)
    count = torch.tensor(count, device=device)
    if trainer.args.average_tokens_across_devices and trainer.args.world_size > 1:
        count = trainer.accelerator.gather(count.reshape(1)).sum()
    return count


class SequenceCountMixin:
    """Put before the TRL trainer in the bases to get `global_sequence_count` called for you: records
    `num_sequences_in_batch` for every optimizer step. (A trainer can instead override `get_batch_samples` itself, as
    shown in `global_sequence_count`, to keep the TRL trainer its first base class.)"""

    num_sequences_in_batch: torch.Tensor | None = None

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.num_sequences_in_batch = global_sequence_count(self, batch_samples, device)
        return batch_samples, num_items_in_batch


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
