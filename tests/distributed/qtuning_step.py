"""One Q-Tuning optimizer step on a fixed global batch of 4 rows in micro-batches of 2; writes the loss and the
weight update to argv[1].

Usage: `qtuning_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process
with gradient accumulation), `zero2`, `zero3` (DeepSpeed, DS_ACCELERATOR=cpu) or `fsdp2` (torch `fully_shard`).
Q-Tuning selects within each micro-batch on each process, so one process accumulating the two micro-batches of 2
rows is the reference that 2 processes of 2 rows must equal (tests/test_distributed_qtuning.py)."""

import sys

from datasets import Dataset

from trl_ext.testing import (
    layout_step_args,
    save_step_result,
    shard_trainer_with_fsdp2,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.qtuning import QTuningConfig, QTuningTrainer

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = QTuningConfig(
    **layout_step_args("qtuning", per_device, accumulation, engine),
    qt_sample_ratio=0.5,  # K = 1 of each micro-batch of 2
    qt_token_ratio=0.5,  # and tokens of a Q2 sample pruned
)
trainer = QTuningTrainer(
    model=tiny_model(), args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
if engine == "fsdp2":
    shard_trainer_with_fsdp2(trainer)
result = train_one_sharded_step(trainer)
result["kept_token_frac"] = next(e["qt/kept_token_frac"] for e in trainer.state.log_history if "qt/q2_frac" in e)
save_step_result(trainer, result, out_path)
