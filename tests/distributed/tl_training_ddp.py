"""One PKT optimizer step on a fixed global batch of 4; writes the loss and the weight update to argv[1].

argv: out_path per_device accumulation [normalization]. Run under `torchrun --nproc_per_node N` (gloo, CPU) with
per-device batch 4/N, or as one process with gradient accumulation; tests/plugins/test_tl_training.py compares them.
The rows differ in length and in key-token share, so a weighted mean over the global batch differs from a mean of
per-micro-batch means: only a global denominator gives equal updates."""

import json
import sys

from datasets import Dataset

from trl_ext.testing import tiny_model, tiny_tokenizer
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
initial = {n: p.detach().clone() for n, p in model.named_parameters()}
config = PKTConfig(
    output_dir="/tmp/pkt-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    max_steps=1,
    optim="sgd",
    learning_rate=1.0,
    lr_scheduler_type="constant",
    warmup_steps=0,
    max_grad_norm=0.0,
    report_to="none",
    bf16=False,
    save_strategy="no",
    logging_steps=1,
    use_cpu=True,
    seed=0,
    dataloader_drop_last=False,
    shuffle_dataset=False,
    pkt_normalization=normalization,
    weight_decay=0.0,
)
trainer = PKTTrainer(
    model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
trainer.train()
if trainer.is_world_process_zero():
    update = {n: (initial[n] - p.detach()).flatten().tolist() for n, p in trainer.model.named_parameters()}
    loss = [e["loss"] for e in trainer.state.log_history if "loss" in e][0]
    json.dump({"loss": loss, "update": update}, open(out_path, "w"))
