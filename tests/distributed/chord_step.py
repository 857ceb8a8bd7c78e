"""One CHORD optimizer step on a fixed global batch (2 prompts x 2 greedy completions, 4 expert rows of equal
length); writes the loss and the weight update to argv[1].

Usage: `chord_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process) or
`zero3` (DeepSpeed, DS_ACCELERATOR=cpu). Greedy decoding makes the rollouts the same in every layout, and the reward
alternates 0, 1 within each group (by position, which every layout orders the same), so the GRPO term has non-zero
advantages; `loss_type="dapo"` normalises it over the global batch, and the SFT term is a token mean over every
process's expert tokens, so 1 process, 2 accumulated micro-batches and 2 processes must take the same step
(tests/plugins/test_chord.py)."""

import sys

import torch
from datasets import Dataset

from trl_ext.testing import layout_step_args, save_step_result, tiny_model, tiny_tokenizer, train_one_sharded_step
from trl_ext_plugins.chord import ChordConfig, ChordTrainer

torch.set_num_threads(1)
out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def parity_reward(completions, **kwargs):
    return [float(i % 2) for i in range(len(completions))]


prompts = [{"prompt": [{"role": "user", "content": f"What is {i} + {i + 3}?"}]} for i in range(2)]
experts = [
    {
        "prompt": [{"role": "user", "content": f"What is {i} + 3?"}],
        "completion": [{"role": "assistant", "content": f"{i} + 3 = {i + 3}."}],
    }
    for i in range(4)  # single digits: every row has the same number of tokens
]
config = ChordConfig(
    num_generations=2,
    max_completion_length=6,
    generation_kwargs={"do_sample": False},
    loss_type="dapo",
    mu_peak=0.5,
    mu_valley=0.5,
    sft_loss_variant="phi",
    **layout_step_args("chord", per_device, accumulation, engine),
)
trainer = ChordTrainer(
    model=tiny_model(),
    reward_funcs=[parity_reward],
    args=config,
    train_dataset=Dataset.from_list(prompts),
    processing_class=tiny_tokenizer(),
    expert_dataset=Dataset.from_list(experts),
)
result = train_one_sharded_step(trainer)
save_step_result(trainer, result, out_path)
