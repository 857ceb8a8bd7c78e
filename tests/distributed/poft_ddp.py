"""One PoFT optimizer step on a fixed global batch of 6 sequences; writes the loss and the weight update to argv[1].

Layouts: one process with a batch of 6; one process accumulating micro-batches of 4 and 2 (the last, shorter one);
`torchrun --nproc_per_node 2` (gloo, CPU) with 3 per process. PoFT's loss is a mean over sequences, so a per-micro-batch
mean divided by the accumulation steps would weight the 2 sequences double; tests/test_distributed_lfu_poft.py checks
that all layouts give the same loss and update."""

import sys

from datasets import Dataset

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step
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
config = PoFTConfig(
    output_dir="/tmp/poft-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    gradient_checkpointing=False,  # DDP then searches for unused parameters (transformers default)
)
trainer = PoFTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_step(trainer), out_path)
