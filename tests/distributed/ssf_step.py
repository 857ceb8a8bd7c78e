"""One SFT optimizer step of an SSF-adapted tiny Llama (official init, fixed seed) on a fixed global batch of 4;
writes the loss and the update of every SSF vector to argv[1].

Usage: `ssf_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process with
gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu). SSF's vectors are plain parameters, so 2
processes of 2 rows equal one process accumulating 2 micro-batches of 2 (tests/plugins/test_ssf.py)."""

import sys

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.testing import (
    layout_step_args,
    save_step_result,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.ssf.adapter import make_ssf_adapter

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
config = SFTConfig(**layout_step_args("ssf", per_device, accumulation, engine))
model = tiny_model()
torch.manual_seed(1)  # the official init draws the vectors
model = make_ssf_adapter(init="official", init_std=0.1)(model)
trainer = SFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_sharded_step(trainer), out_path)
