"""One IFT optimizer step on a fixed global batch of 4; writes the loss and the weight update to argv[1].

Run under `torchrun --nproc_per_node N` (gloo, CPU) with per-device batch 4/N, or as one process with gradient
accumulation; tests/plugins/test_ift.py compares the results."""

import sys

from datasets import Dataset

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step, uneven_rows
from trl_ext_plugins.ift import IFTConfig, IFTTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = uneven_rows()
model = tiny_model(tie_word_embeddings=True)
config = IFTConfig(
    output_dir="/tmp/ift-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    ift_lambda=0.5,
    ift_gamma=0.9,
)
trainer = IFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_step(trainer), out_path)
