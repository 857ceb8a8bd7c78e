"""One SGD step of LocFT-BF on a tiny Llama (only layer 1's down_proj trainable) over a fixed global batch of 4
requests of different target lengths; writes the loss, the update and the skip count to argv[1].

Usage: `locft_step.py OUT PER_DEVICE ACCUMULATION ENGINE SKIP` with ENGINE `none` (DDP under torchrun, or one process
with gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu), SKIP the skip_loss_below threshold. Under
ZeRO-3 with SKIP > 0 the trainer must refuse: the refusal message is written instead."""

import json
import sys

import torch
from datasets import Dataset

from trl_ext.testing import (
    SGD_STEP_ARGS,
    deepspeed_config,
    save_step_result,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.locft_bf import LocFTConfig, LocFTTrainer

out_path, per_device, accumulation, engine, skip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])  # fmt: skip
torch.set_num_threads(1)
engine_args = {"zero3": {"deepspeed": deepspeed_config(3)}}
config = LocFTConfig(
    output_dir=f"/tmp/locft-{engine}",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    shuffle_dataset=False,
    edit_layer=1,
    skip_loss_below=skip,
    early_stop_epoch_loss=0.0,
    eval_edits=False,
    **SGD_STEP_ARGS,
    **engine_args.get(engine, {}),
)
trainer = LocFTTrainer(
    model=tiny_model(), args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
try:
    result = train_one_sharded_step(trainer)
except ValueError as exc:
    if trainer.is_world_process_zero():
        with open(out_path, "w") as f:
            json.dump({"refused": str(exc)}, f)
    sys.exit(0)
result["skipped"] = trainer.locft_rules.skipped
save_step_result(trainer, result, out_path)
