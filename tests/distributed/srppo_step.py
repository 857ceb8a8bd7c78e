"""One SRPPO (RLOO) optimizer step on a fixed global batch of 2 prompts x 2 completions; writes the loss and the
weight update to argv[1].

Usage: `srppo_step.py OUT PER_DEVICE ACCUMULATION ENGINE SFT_DIR BASE_DIR` with ENGINE `none` (DDP under torchrun,
or one process) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu). Sampling differs with the batch layout, so the policy's
`generate` is replaced by canned completions (the k-th occurrence of a prompt in a call gets completion k): the
rollouts are the same in every layout, and what is compared is everything after them (the self-reward scored on each
process's local completions, RLOO's gathered baseline and KL, the loss and the update)."""

import sys

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from trl_ext.testing import SGD_STEP_ARGS, deepspeed_config, save_step_result, tiny_tokenizer, train_one_sharded_step
from trl_ext.training.sharding import form_process_group
from trl_ext_plugins.srppo import SRPPOConfig, SRPPOTrainer

out_path, per_device, accumulation, engine, sft_dir, base_dir = sys.argv[1:7]
per_device, accumulation = int(per_device), int(accumulation)
tokenizer = tiny_tokenizer()
PROMPTS = ["What is 3 + 4?", "A box holds 12 pens. 5 are taken out. How many are left?"]
CANNED = {
    p: [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    for p, texts in zip(
        PROMPTS, [["3 + 4 = 7.", "The answer is 48."], ["12 - 5 = 7. The answer is 7.", "7"]], strict=True
    )
}


def canned_generate(input_ids, attention_mask, **kwargs):
    seen: dict[str, int] = {}
    rows = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
        text = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
        prompt = next(p for p in PROMPTS if p in text)
        rows.append(CANNED[prompt][seen.get(prompt, 0)])
        seen[prompt] = seen.get(prompt, 0) + 1
    width = max(len(r) for r in rows)
    completions = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    return torch.cat([input_ids, completions.to(input_ids.device)], dim=1)


engine_args = {"zero3": {"deepspeed": deepspeed_config(3)}}
config = SRPPOConfig(
    output_dir=f"/tmp/srppo-{engine}",
    base_model_name_or_path=base_dir,
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    num_generations=2,
    max_completion_length=16,
    shuffle_dataset=False,
    **SGD_STEP_ARGS,
    **engine_args.get(engine, {}),
)
form_process_group(config)  # as the CLI does before loading: under ZeRO-3 the policy is partitioned at load
policy = AutoModelForCausalLM.from_pretrained(sft_dir)
policy.generate = canned_generate
trainer = SRPPOTrainer(
    model=policy,
    args=config,
    train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS]),
    processing_class=tokenizer,
)
result = train_one_sharded_step(trainer)
result["reward"] = next(e["srppo/reward_mean"] for e in trainer.state.log_history if "srppo/reward_mean" in e)
result["rewards_std"] = next(e["reward_std"] for e in trainer.state.log_history if "reward_std" in e)
save_step_result(trainer, result, out_path)
