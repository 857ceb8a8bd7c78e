"""One RoSTE optimizer step (W4A4KV4, rotations searched on rank 0 and broadcast) of a tiny Llama on a fixed global
batch of 4; writes the loss, the update of every weight and the rotation configuration to argv[1].

Usage: `roste_step.py OUT PER_DEVICE ACCUMULATION ENGINE [ptq_only]` with ENGINE `none` (DDP under torchrun, or one process with
gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu; the model is loaded from disk after the config, so
transformers partitions it while loading, as `trl-ext train` does). RoSTE's loss is SFTTrainer's, so 2 processes of
2 rows equal one process accumulating 2 micro-batches of 2 (tests/plugins/test_roste.py). With `ptq_only` the step
is the SFT-then-PTQ baseline's (learning rate 0), which must leave every weight as it was under every engine."""

import os
import sys

import torch
from datasets import Dataset

from trl_ext.models import load_model
from trl_ext.testing import (
    layout_step_args,
    save_step_result,
    save_tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext.training.sharding import form_process_group, is_sharded
from trl_ext_plugins.roste import RoSTEConfig, RoSTETrainer

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ptq_only = sys.argv[5:] == ["ptq_only"]
torch.set_num_threads(1)
config = RoSTEConfig(
    calib_samples=4,
    export_quantized=False,
    ptq_only=ptq_only,
    **layout_step_args("roste", per_device, accumulation, engine),
)
form_process_group(config)
folder = f"{out_path}.model"
if int(os.environ.get("RANK", "0")) == 0:
    save_tiny_model(folder)
if torch.distributed.is_initialized():
    torch.distributed.barrier()
model = load_model(folder, dtype=torch.float32)
partitioned = is_sharded(model)
trainer = RoSTETrainer(
    model=model, args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
result = train_one_sharded_step(trainer)
result["partitioned_at_load"] = partitioned
result["rotation_config"] = {str(k): v for k, v in trainer.rotation_config.items()}
save_step_result(trainer, result, out_path)
