"""MaskFTTrainer: SFTTrainer whose rows stay raw and are turned into masked-copy -> original pairs by the collator,
with new masks every epoch. The loss is SFTTrainer's own (token-mean NLL on the completion)."""

from __future__ import annotations

from trl import SFTTrainer

from .collator import ROW_COLUMN, EpochToCollator, MaskedReconstructionCollator
from .config import MaskFTSFTConfig


def _with_index(dataset):
    if dataset is None or ROW_COLUMN in dataset.column_names:
        return dataset
    return dataset.add_column(ROW_COLUMN, list(range(len(dataset))))


class MaskFTTrainer(SFTTrainer):
    config_class = MaskFTSFTConfig

    def __init__(self, model, args: MaskFTSFTConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, callbacks=None, **kwargs):  # fmt: skip
        if args is None:
            args = MaskFTSFTConfig(output_dir="maskft-output")
        if not isinstance(args, MaskFTSFTConfig):
            raise TypeError(f"MaskFTTrainer needs a MaskFTSFTConfig, got {type(args).__name__}")
        if processing_class is None:
            raise ValueError("MaskFTTrainer needs the tokenizer (processing_class) to build its batches")
        cfg = args.maskft()
        for name, ds in (("train", train_dataset), ("eval", eval_dataset)):
            missing = [c for c in cfg.columns if ds is not None and c not in ds.column_names]
            if missing:
                raise ValueError(f"maskft ({cfg.mode} mode): the {name} dataset lacks the columns {missing}")
        # The rows reach the collator raw: no tokenization up front, no column pruning.
        args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
        args.remove_unused_columns = False
        self.maskft_collator = MaskedReconstructionCollator(processing_class, cfg, args.max_length)
        callbacks = [*(callbacks or []), EpochToCollator(self.maskft_collator)]
        super().__init__(model, args=args, train_dataset=_with_index(train_dataset),
                         eval_dataset=_with_index(eval_dataset), processing_class=processing_class,
                         data_collator=self.maskft_collator, callbacks=callbacks, **kwargs)  # fmt: skip

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            logs = {**logs, **self.maskft_collator.stats()}
            self.maskft_collator.reset_stats()
        super().log(logs, *args, **kwargs)
