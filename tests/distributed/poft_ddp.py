"""One PoFT optimizer step on a fixed global batch of 6 sequences; writes the loss and the weight update to argv[1].

Layouts: one process with a batch of 6; one process accumulating micro-batches of 4 and 2 (the last, shorter one);
`torchrun --nproc_per_node 2` (gloo, CPU) with 3 per process. PoFT's loss is a mean over sequences, so a per-micro-batch
mean divided by the accumulation steps would weight the 2 sequences double; tests/test_distributed_lfu_poft.py checks
that all layouts give the same loss and update."""

import json
import sys

import torch
from datasets import Dataset

from trl_ext.testing import tiny_model, tiny_tokenizer
from trl_ext_plugins.poft import PoFTConfig, PoFTTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [
    {
        "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
        "completion": [
            {"role": "assistant", "content": f"{a} + {b} = {a + b}." + " The answer is" * k + f" {a + b}."}
        ],
        "poft_ref_scores": [score, score - 1.0],
    }
    for a, b, k, score in [
        (3, 4, 1, -0.5),
        (12, 30, 4, -2.0),
        (7, 8, 2, -4.0),
        (100, 23, 0, -6.0),
        (5, 5, 3, -3.0),
        (40, 2, 5, -7.5),
    ]
]
model = tiny_model()
initial = {n: p.detach().clone() for n, p in model.named_parameters()}
config = PoFTConfig(
    output_dir="/tmp/poft-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    max_steps=1,
    optim="sgd",
    learning_rate=1.0,
    lr_scheduler_type="constant",
    max_grad_norm=0.0,
    report_to="none",
    bf16=False,
    save_strategy="no",
    logging_steps=1,
    use_cpu=True,
    seed=0,
    dataloader_drop_last=False,
    gradient_checkpointing=False,
)
trainer = PoFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
trainer.train()
if trainer.is_world_process_zero():
    update = {n: (initial[n] - p.detach()).flatten().tolist() for n, p in trainer.model.named_parameters()}
    log = [e for e in trainer.state.log_history if "loss" in e][0]
    json.dump({"loss": log["loss"], "steps": trainer.state.global_step, "update": update}, open(out_path, "w"))
# Leave the process group cleanly: a rank exiting while gloo's threads still run can abort at interpreter exit.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
