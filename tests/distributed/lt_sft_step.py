"""A whole LT-SFT run (2 full SGD steps, top-40 selection, rewind, 2 sparse SGD steps) of a tiny Llama on a fixed
global batch of 4; writes the last sparse step's loss, theta0 - theta of every maskable tensor and the selected
positions to argv[1].

Usage: `lt_sft_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process with
gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu: refused before training, the reason written as
`error`). tests/plugins/test_lt_sft.py compares 2 processes of 2 rows with one process accumulating 2 x 2."""

import sys

import torch
from datasets import Dataset

from trl_ext.testing import deepspeed_config, save_step_result, tiny_model, tiny_tokenizer, uneven_rows
from trl_ext_plugins.lt_sft.config import LTSFTConfig
from trl_ext_plugins.lt_sft.trainer import LTSFTTrainer

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
engine_args = {"zero3": {"deepspeed": deepspeed_config(3)}}
config = LTSFTConfig(
    output_dir=f"/tmp/lt-sft-{engine}",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    full_ft_steps=2,
    sparse_ft_steps=2,
    num_tunable=40,
    optim="sgd",
    learning_rate=1.0,
    lr_scheduler_type="constant",
    max_grad_norm=0.0,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    use_cpu=True,
    seed=0,
    shuffle_dataset=False,
    dataloader_drop_last=False,
    **engine_args.get(engine, {}),
)
trainer = LTSFTTrainer(
    model=tiny_model(), args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
initial = {n: p.detach().clone() for n, p in trainer._params.items()}
try:
    trainer.train()
except ValueError as error:
    result = {"error": str(error)}
else:
    log = [e for e in trainer.state.log_history if "loss" in e][-1]
    update = {n: (initial[n] - p.detach()).flatten().tolist() for n, p in trainer._params.items()}
    selected = {n: v.tolist() for n, v in trainer.selections[0].items()}
    result = {**log, "update": update, "selected": selected}
save_step_result(trainer, result, out_path)
