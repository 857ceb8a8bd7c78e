"""One SGD step of LTA-Thinker's thought generator on a frozen tiny Llama (K = 4, all three losses) on a fixed global
batch of 4 rows; writes the loss and the generator's update to argv[1].

Usage: `lta_thinker_step.py OUT PER_DEVICE ACCUMULATION ENGINE [base_lora]` with ENGINE `none` (DDP under torchrun, or
one process with gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu); `base_lora` also trains the
official LoRA on the base (`--train_base_lora`), its dropout off so that the layouts draw no different masks. With `sft_normalization="trl"` the SFT term
is a token sum over the whole step's tokens, and the KL / InfoNCE terms are sample means of equal-sized micro-batches
averaged over micro-batches and processes, so the step does not depend on which rows share a micro-batch: 2 processes
of 2 rows equal one process accumulating 2 micro-batches of 2 (tests/plugins/test_lta_thinker.py). The official
normalisation (a token mean per micro-batch) depends on that grouping, in the official code too."""

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
)
from trl_ext_plugins.lta_thinker.config import LTAThinkerConfig
from trl_ext_plugins.lta_thinker.model import OFFICIAL_BASE_LORA
from trl_ext_plugins.lta_thinker.trainer import LTAThinkerTrainer

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base_lora = sys.argv[5:] == ["base_lora"]
OFFICIAL_BASE_LORA["lora_dropout"] = 0.0  # this process only: dropout masks differ by process layout
torch.set_num_threads(1)
engine_args = {"zero3": {"deepspeed": deepspeed_config(3)}}
rows = [
    {"question": "Mia has 3 pens and buys 4 more. How many pens?", "steps": ["3 + 4 = 7."], "answer": "7"},
    {"question": "A shop has 2 boxes of 5 cards and sells 3. How many are left?", "steps": ["2 * 5 = 10.",
     "10 - 3 = 7."], "answer": "7"},
    {"question": "Leo has 12 coins and gives 5 away. How many coins?", "steps": ["12 - 5 = 7."], "answer": "7"},
    {"question": "Ava buys 3 packs of 4 beads and had 2. How many beads now?", "steps": ["3 * 4 = 12.",
     "12 + 2 = 14."], "answer": "14"},
]  # fmt: skip
config = LTAThinkerConfig(
    output_dir=f"/tmp/lta-thinker-{engine}",
    num_thought_tokens=4,
    sft_normalization="trl",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    gradient_checkpointing=False,
    shuffle_dataset=False,
    train_base_lora=base_lora,
    **SGD_STEP_ARGS,
    **engine_args.get(engine, {}),
)
config.learning_rate = 1.0
trainer = LTAThinkerTrainer(
    tiny_model(), args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_sharded_step(trainer), out_path)
