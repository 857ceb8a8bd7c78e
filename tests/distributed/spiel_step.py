"""Five SpIEL steps of a tiny Llama (density 0.05, S=3, A=1: drop/regrows at t = 1 with p = 1 and at t = 4) on a
fixed global batch of 4 rows; writes the per-step losses, every layer's final support and deltas, and the replaced
fraction to argv[1].

Usage: `spiel_step.py OUT PER_DEVICE ACCUMULATION` (one process, or DDP under torchrun). Candidate gradients are
averaged over processes inside the selector's hooks, so 2 processes of 2 rows equal 1 process of 4
(tests/plugins/test_spiel.py)."""

import json
import sys
from pathlib import Path

import torch
from datasets import Dataset

from trl_ext.testing import tiny_model, tiny_tokenizer, uneven_rows
from trl_ext_plugins.spiel.config import SpIELConfig
from trl_ext_plugins.spiel.support import spiel_layers
from trl_ext_plugins.spiel.trainer import SpIELTrainer

out_path, per_device, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
config = SpIELConfig(
    output_dir="/tmp/spiel-ddp",
    per_device_train_batch_size=per_device,
    gradient_accumulation_steps=accumulation,
    max_steps=5,
    reselection_steps=3,
    selection_accumulation_steps=1,
    density=0.05,
    learning_rate=1e-2,
    warmup_steps=0,
    lr_scheduler_type="constant",
    max_grad_norm=0.0,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    use_cpu=True,
    seed=0,
    bf16=False,
    gradient_checkpointing=False,
    shuffle_dataset=False,
    dataloader_drop_last=False,
)
trainer = SpIELTrainer(
    model=tiny_model(), args=config, train_dataset=Dataset.from_list(uneven_rows()), processing_class=tiny_tokenizer()
)
trainer.train()
model = trainer.accelerator.unwrap_model(trainer.model)
layers = spiel_layers(model)
result = {
    "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
    "replaced": [e["spiel/replaced_frac"] for e in trainer.state.log_history if "spiel/replaced_frac" in e],
    "indices": {n: layer.supertuning_indices["default"].tolist() for n, layer in layers.items()},
    "values": {n: layer.supertuning_values["default"].detach().tolist() for n, layer in layers.items()},
}
if trainer.is_world_process_zero():
    Path(out_path).write_text(json.dumps(result))
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
