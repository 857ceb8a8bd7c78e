"""trl_ext.compat.sft_dataset, written against trl 1.16: an extra dataset prepared exactly as SFTTrainer prepares its
train dataset, through its private `_prepare_dataset`. Fails loudly when TRL changes that method."""

import inspect

import trl
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.compat.sft_dataset import TESTED_TRL, prepare_sft_dataset
from trl_ext.testing import tiny_model, tiny_tokenizer


def test_written_against_trl_1_16_prepare_dataset_signature():
    assert TESTED_TRL == "1.16"
    params = list(inspect.signature(SFTTrainer._prepare_dataset).parameters)
    assert params == ["self", "dataset", "processing_class", "args", "packing", "formatting_func", "dataset_name"], (
        f"trl {trl.__version__} changed SFTTrainer._prepare_dataset; update trl_ext/compat/sft_dataset.py"
    )


def test_extra_dataset_matches_the_trainers_own_preparation(tmp_path, sft_rows):
    trainer = SFTTrainer(
        model=tiny_model(),
        args=SFTConfig(output_dir=str(tmp_path), report_to="none", bf16=False, max_length=24),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    extra = prepare_sft_dataset(trainer, Dataset.from_list(sft_rows), "extra")
    assert set(extra.column_names) <= {"input_ids", "labels", "seq_lengths"}
    assert extra["input_ids"] == trainer.train_dataset["input_ids"]
    assert extra["labels"] == trainer.train_dataset["labels"]
    assert all(len(ids) <= 24 for ids in extra["input_ids"])  # truncation applied
    assert all(labels[0] == -100 and any(t != -100 for t in labels) for labels in extra["labels"])
