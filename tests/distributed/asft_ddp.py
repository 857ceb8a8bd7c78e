"""One ASFT optimizer step on a fixed global batch of 4; writes the loss and the weight update to argv[1].

Run under `torchrun --nproc_per_node N` (gloo, CPU) with per-device batch 4/N, or as one process with gradient
accumulation; tests/test_distributed.py compares the results."""

import sys

import torch
from datasets import Dataset

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step, uneven_rows
from trl_ext_plugins.asft import ASFTConfig, ASFTTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = uneven_rows()
model = tiny_model()
config = ASFTConfig(
    output_dir="/tmp/asft-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    kl_weight=0.1,
)
trainer = ASFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
# A reference that differs from the policy, so the KL term and its gradient are not zero.
with torch.no_grad():
    for p in trainer.ref_model.parameters():
        p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
save_step_result(trainer, train_one_step(trainer), out_path)
