"""One PKT optimizer step on a fixed global batch of 4; writes the loss and the weight update to argv[1].

argv: out_path per_device accumulation [normalization]. Run under `torchrun --nproc_per_node N` (gloo, CPU) with
per-device batch 4/N, or as one process with gradient accumulation; tests/plugins/test_tl_training.py compares them.
The rows differ in length and in key-token share, so a weighted mean over the global batch differs from a mean of
per-micro-batch means: only a global denominator gives equal updates."""

import json
import sys

from datasets import Dataset

from trl_ext.testing import SGD_STEP_ARGS, save_step_result, tiny_model, tiny_tokenizer, train_one_step
from trl_ext_plugins.tl_training import PKTConfig, PKTTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
normalization = sys.argv[4] if len(sys.argv) > 4 else "global"
TOOLS = json.dumps([{"name": "get_weather"}, {"name": "get_wind"}, {"name": "search"}])
targets = [
    "get_weather(city='Oslo')",
    "search(query='a long query about many things', limit='3')",
    "get_wind(city='Lima')",
    "It is sunny today in Paris, with a light wind from the west.",
]
rows = [
    {
        "prompt": [{"role": "user", "content": f"Request {i}"}],
        "completion": [{"role": "assistant", "content": t}],
        "tools": TOOLS,
    }
    for i, t in enumerate(targets)
]
model = tiny_model()
config = PKTConfig(
    output_dir="/tmp/pkt-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    **SGD_STEP_ARGS,
    warmup_steps=0,
    shuffle_dataset=False,
    pkt_normalization=normalization,
    weight_decay=0.0,
)
trainer = PKTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
save_step_result(trainer, train_one_step(trainer), out_path)
