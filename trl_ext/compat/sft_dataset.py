"""Tokenising an extra dataset exactly as SFTTrainer tokenises its train dataset (chat template, completion-only
labels, truncation, dropping fully masked rows), for methods that draw batches from a second dataset (LfU's
"undesirable" batches). SFTTrainer does this in its private `_prepare_dataset`; this module is the one place that
calls it.

Written against trl 1.16 (`SFTTrainer._prepare_dataset(dataset, processing_class, args, packing, formatting_func,
dataset_name)`); tests/test_compat_sft_data.py fails loudly if that changes.
"""

from __future__ import annotations

from typing import Any

TESTED_TRL = "1.16"

# What SFTTrainer's collator reads from a prepared row (its `_signature_columns` for text data).
COLLATOR_COLUMNS = ("input_ids", "labels", "seq_lengths")


def prepare_sft_dataset(trainer: Any, dataset: Any, name: str = "extra") -> Any:
    """`dataset` (conversational or plain, prompt-completion or messages, or already tokenised) as SFTTrainer would
    feed it to its collator: the columns in `COLLATOR_COLUMNS` it has. Packing is never applied: rows stay whole."""
    prepared = trainer._prepare_dataset(dataset, trainer.processing_class, trainer.args, False, None, name)
    return collator_columns(prepared)


def collator_columns(dataset: Any) -> Any:
    """Only the columns SFTTrainer's collator reads (drops raw text and extra columns, faster to index)."""
    if "input_ids" not in dataset.column_names:
        raise ValueError(
            f"Expected a tokenised dataset with an 'input_ids' column, got columns {dataset.column_names}."
        )
    return dataset.select_columns([c for c in COLLATOR_COLUMNS if c in dataset.column_names])


__all__ = ["COLLATOR_COLUMNS", "TESTED_TRL", "collator_columns", "prepare_sft_dataset"]
