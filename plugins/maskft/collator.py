"""The on-the-fly path: the collator builds each row's masked copy when its batch is made, from the raw row, seeded
by (seed, epoch, row index), then tokenizes it as SFTTrainer does (labels only on the completion)."""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from trl_ext.inference.scoring import tokenize_pair

from .config import MaskFTConfig
from .masking import build_pair, row_rng

ROW_COLUMN = "maskft_row"  # the row index the trainer adds to the dataset


class MaskedReconstructionCollator:
    """Raw rows (with `maskft_row`, the row's index) -> a padded batch of input_ids / attention_mask / labels, the
    labels -100 everywhere but the completion. `set_epoch(e)` changes the masks when `resample_each_epoch`."""

    def __init__(self, tokenizer, cfg: MaskFTConfig | None = None, max_length: int | None = None):
        self.tokenizer = tokenizer
        self.cfg = cfg or MaskFTConfig()
        self.max_length = max_length
        self.epoch = 0
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad = DataCollatorForLanguageModeling(pad_token_id=pad)
        self.reset_stats()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def reset_stats(self) -> None:
        self.t_sum, self.masked_units, self.units, self.rows = 0.0, 0, 0, 0

    def stats(self) -> dict[str, float]:
        """`maskft/mean_t` and `maskft/masked_frac` over the rows collated since the last reset (masked pairs only)."""
        if not self.rows:
            return {}
        return {"maskft/mean_t": self.t_sum / self.rows, "maskft/masked_frac": self.masked_units / max(self.units, 1)}

    def example(self, row: dict[str, Any]) -> dict[str, list[int]]:
        index = int(row.get(ROW_COLUMN, 0))
        epoch = self.epoch if self.cfg.resample_each_epoch else 0
        pair, masked = build_pair(row, self.cfg, row_rng(self.cfg.seed, epoch, index), self.tokenizer)
        if masked is not None:
            self.t_sum += masked.t
            self.masked_units += masked.masked
            self.units += masked.units
            self.rows += 1
        ids, mask = tokenize_pair(self.tokenizer, pair["prompt"], pair["completion"], self.max_length)
        return {"input_ids": ids, "labels": [tok if m else -100 for tok, m in zip(ids, mask, strict=True)]}

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.pad([self.example(row) for row in rows])


class EpochToCollator(TrainerCallback):
    """Hands the epoch to the collator at each epoch's start (before the epoch's dataloader iterator is made); a run
    resumed mid-epoch gets that epoch (`floor(state.epoch)`)."""

    def __init__(self, collator: MaskedReconstructionCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))
