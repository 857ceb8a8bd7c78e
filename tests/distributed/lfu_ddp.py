"""One LfU optimizer step (LoRA, official gradient, hidden-state MSE) on a fixed global batch of 4; writes the loss,
the consistency term and the weight update to argv[1].

Run under `torchrun --nproc_per_node N` (gloo, CPU) with per-device batch 4/N, or as one process with gradient
accumulation; tests/test_distributed_lfu_poft.py compares the results. The undesirable batch B' is the whole 2-row
aux set in every micro-batch of every layout, so phi' is the same everywhere and only the normalisation of the two
terms can make the layouts differ."""

import sys

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step, uneven_rows
from trl_ext_plugins.lfu import LfUConfig, LfUTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = uneven_rows()
aux = [
    {"prompt": [{"role": "user", "content": "Name a colour."}], "completion": [{"role": "assistant", "content": c}]}
    for c in ("Blue, like the sky.", "Red.")
]
torch.manual_seed(1)
model = get_peft_model(tiny_model(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
with torch.no_grad():  # LoRA B starts at zero; give it values so every LoRA weight has a gradient
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
config = LfUConfig(
    output_dir="/tmp/lfu-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    gradient_checkpointing=False,
    lfu_alpha=0.5,
    lfu_lambda=5.0,
    lfu_aux_batch_size=2,
)
trainer = LfUTrainer(
    model=model,
    args=config,
    train_dataset=Dataset.from_list(rows),
    processing_class=tiny_tokenizer(),
    aux_dataset=Dataset.from_list(aux),
)
save_step_result(trainer, train_one_step(trainer), out_path)
