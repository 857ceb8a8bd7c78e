"""One LoRAMoE optimizer step (balance loss on, beta=0.5) of a tiny Llama on a fixed global batch of the 2 rows of
different task types; writes the loss and the update of every trainable parameter to argv[1].

Usage: `loramoe_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process
with gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu). With micro-batches of one row the balance
term is per sample in every layout (DDP averages the ranks' gradients, accumulation divides by the steps), so 2
processes of 1 row equal one process accumulating 2 micro-batches of 1 (tests/plugins/test_loramoe.py)."""

import sys

import torch
from datasets import Dataset
from peft import get_peft_model

import trl_ext  # noqa: F401
from trl_ext.testing import (
    layout_step_args,
    save_step_result,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.loramoe.config import LoRAMoETrainerConfig
from trl_ext_plugins.loramoe.trainer import LoRAMoETrainer
from trl_ext_plugins.loramoe.tuner import LoRAMoEConfig

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
config = LoRAMoETrainerConfig(
    blc_weight=0.5,
    **layout_step_args("loramoe", per_device, accumulation, engine, lr_scheduler_type="constant", warmup_steps=0),
)
model = get_peft_model(tiny_model(), LoRAMoEConfig(num_experts=4, lora_dropout=0.0, task_type="CAUSAL_LM"))
gen = torch.Generator().manual_seed(1)
with torch.no_grad():  # non-zero B_i: the router and A_i get gradients
    for name, p in model.named_parameters():
        if "loramoe_B" in name:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
rows = [{**row, "task_type": t} for row, t in zip(uneven_rows()[:2], (1, 0), strict=True)]
trainer = LoRAMoETrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_sharded_step(trainer), out_path)
