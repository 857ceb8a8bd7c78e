"""Totals over the global batch of one optimizer step, for losses normalised by something other than the token count.

`num_items_in_batch` lets a token-mean loss be exact under gradient accumulation and several processes: it is the
number of scored tokens in all micro-batches of the step on all ranks. A loss normalised by another global quantity
(a weighted token mean, `sum num / sum den` with data-dependent denominators; a mean over sequences) needs that
quantity's total in the same way, before the first micro-batch's backward. transformers' training loop (written
against transformers 5.24 / TRL 1.16) fetches all micro-batches of a step with `Trainer.get_batch_samples`, then runs
`training_step` on each; `WindowTotalsMixin` hooks that call, sums `window_totals(batch)` over the micro-batches, and,
like `num_items_in_batch`, over processes when `average_tokens_across_devices` is set.

Use: `class MyTrainer(WindowTotalsMixin, SFTTrainer)`, implement `window_totals(batch) -> {name: tensor}` (extend
`super().window_totals(batch)`: mixins built on this one, such as `trl_ext.training.normalization.SequenceCountMixin`, add
their own totals there), and in `compute_loss` call `self.take_window_totals()`: the step's totals while training,
`None` outside the loop (evaluation, or a direct `training_step` call as `trl-ext bench` makes), where the loss falls
back to the micro-batch's own total.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

TESTED_TRANSFORMERS = "5.24"
TESTED_TRL = "1.16"


class WindowTotalsMixin:
    """Mixin for `transformers.Trainer` subclasses: per-step global totals of per-micro-batch quantities."""

    def window_totals(self, batch: dict) -> dict[str, torch.Tensor]:
        """Quantities of one collated micro-batch to sum over the step (scalars). Extend in subclasses."""
        return {}

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int, device: torch.device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        totals: dict[str, torch.Tensor] = {}
        for batch in batch_samples:
            for key, value in self.window_totals(batch).items():
                value = torch.as_tensor(value, dtype=torch.float64, device=device).reshape(())
                totals[key] = totals[key] + value if key in totals else value
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            totals = {k: self.accelerator.gather(v.float().reshape(1)).sum().double() for k, v in totals.items()}
        self._window_totals: dict[str, torch.Tensor] | None = totals
        self._window_batches_left = len(batch_samples)
        return batch_samples, num_items_in_batch

    def take_window_totals(self) -> dict[str, torch.Tensor] | None:
        """The current step's global totals while the micro-batches of that step are being trained, else None.
        Call exactly once per micro-batch (from `compute_loss` in training mode): the last call closes the step."""
        left = getattr(self, "_window_batches_left", 0)
        if left <= 0:
            return None
        self._window_batches_left = left - 1
        return self._window_totals

    def current_window_totals(self) -> dict[str, torch.Tensor] | None:
        """The totals of the optimizer step last fetched, without consuming a micro-batch (None before the first)."""
        return getattr(self, "_window_totals", None)

    def window_is_global(self) -> bool:
        """Whether the totals include every process, so the loss is multiplied by the number of processes (as
        SFTTrainer does with `num_items_in_batch`) to undo DDP's gradient averaging."""
        return bool(self.args.average_tokens_across_devices)
