"""One Prefix-RFT optimizer step on a fixed generation batch of 8 rows (2 prompts x 4 rollouts, the last 2 of each
group prefixed); writes the loss, the weight update, the completions and the prefix statistics to argv[1].

Usage: `prefix_rft_step.py OUT PER_DEVICE ENGINE` with ENGINE `none` (one process of 8 rows, or DDP of 4 + 4 under
torchrun) or `zero3` (DeepSpeed ZeRO-3, DS_ACCELERATOR=cpu). Greedy decoding, so every layout generates the same
rollouts; the prefix plan comes from the trainer's own generator (the same on every process), the entropy rule's
quantile is taken over every process's prefix tokens, and the official aggregation sums over every process's rows,
so 2 processes of 4 rows must equal one process of 8 (tests/plugins/test_prefix_rft.py)."""

import sys

import torch
from accelerate.utils import gather_object
from datasets import Dataset

from trl_ext.testing import (
    SGD_STEP_ARGS,
    deepspeed_config,
    save_step_result,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
)
from trl_ext_plugins.prefix_rft import PrefixRFTConfig, PrefixRFTTrainer
from trl_ext_plugins.prefix_rft.data import reverse_rows

torch.set_num_threads(1)
out_path, per_device, engine = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen: list[str] = []


def char_reward(completions, **kwargs):
    texts = [c[0]["content"] for c in completions]
    seen.extend(texts)
    return [float(sum(map(ord, t)) % 5) for t in texts]


engine_args = {"zero3": {"deepspeed": deepspeed_config(3)}}
config = PrefixRFTConfig(
    output_dir=f"/tmp/prefix-rft-{engine}",
    per_device_train_batch_size=per_device,
    num_generations=4,
    num_prefixed_per_group=2,
    max_completion_length=8,
    generation_kwargs={"do_sample": False},
    shuffle_dataset=False,
    **SGD_STEP_ARGS,
    **engine_args.get(engine, {}),
)
config.learning_rate = 0.1  # lr 1 on a tiny model: an update of ~10; 0.1 keeps it O(1)
trainer = PrefixRFTTrainer(
    model=tiny_model(),
    reward_funcs=char_reward,
    args=config,
    train_dataset=Dataset.from_list(reverse_rows(8)),
    processing_class=tiny_tokenizer(),
)
result = train_one_sharded_step(trainer)
result["completions"] = gather_object(seen)
log = next(e for e in trainer.state.log_history if "loss" in e)
result["prefix_tokens"] = log["prefix/tokens"]
result["kept_frac"] = log["prefix/kept_tokens_frac"]
save_step_result(trainer, result, out_path)
