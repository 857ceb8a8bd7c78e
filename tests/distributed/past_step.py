"""One SFT optimizer step of a tiny Llama with PaST's two callbacks on a fixed global batch of 4: past_extract saves
v = (weights after the step) - (weights before), then past_inject adds 2 w for a fixed vector w. Writes the loss, the
weight update (which includes the injection) and v to argv[1].

Usage: `past_step.py OUT PER_DEVICE ACCUMULATION ENGINE` with ENGINE `none` (DDP under torchrun, or one process with
gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu). tests/plugins/test_past.py compares the layouts."""

import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.testing import (
    layout_step_args,
    save_step_result,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.past import SkillExtractCallback, SkillInjectCallback, SkillVector

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
rank = int(os.environ.get("RANK", "0"))
root = Path(out_path).with_suffix("")
root.mkdir(parents=True, exist_ok=True)
torch.manual_seed(7)  # the injected vector w: the same on every process, each reading its own copy
w = SkillVector({n: 0.01 * torch.randn_like(p) for n, p in tiny_model().named_parameters() if "embed" not in n})
w_path = w.save(root / f"w{rank}.safetensors")
v_path = root / "v.safetensors"
config = SFTConfig(**layout_step_args("past", per_device, accumulation, engine, output_dir=str(root / "stage")))
trainer = SFTTrainer(
    model=tiny_model(),
    args=config,
    train_dataset=Dataset.from_list(uneven_rows()),
    processing_class=tiny_tokenizer(),
    callbacks=[
        SkillExtractCallback(path=str(v_path)),
        SkillInjectCallback(skill_vector=str(w_path), lam=2.0, evaluate=False),
    ],
)
result = train_one_sharded_step(trainer)
if trainer.is_world_process_zero():
    v = SkillVector.load(v_path)
    result["update"].update({f"v:{n}": d.flatten().tolist() for n, d in v.deltas.items()})
save_step_result(trainer, result, out_path)
