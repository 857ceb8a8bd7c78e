"""One VLA-OPD optimizer step on a global batch of 4 prompts; writes the loss and the weight update to argv[1].

Usage: `vla_opd_step.py OUT PER_DEVICE ACCUMULATION ENGINE DIVERGENCE ESTIMATOR` with ENGINE `none` (DDP under
torchrun, or one process with gradient accumulation) or `zero3` (DeepSpeed, DS_ACCELERATOR=cpu). Completions are
greedy (the student's rollouts are then the same whichever process draws them), so one process of 4 rows, one
process accumulating 2 x 2 and 2 processes of 2 see the same completions (tests/test_distributed_vla_opd.py)."""

import sys

from datasets import Dataset

from trl_ext.testing import layout_step_args, save_step_result, tiny_model, tiny_tokenizer, train_one_sharded_step
from trl_ext_plugins.vla_opd import VlaOpdConfig, VlaOpdTrainer

out_path, per_device, accumulation, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
divergence, estimator = sys.argv[5], sys.argv[6]
config = VlaOpdConfig(
    max_completion_length=6,
    generation_kwargs={"do_sample": False},
    divergence=divergence,
    estimator=estimator,
    **layout_step_args("vla-opd", per_device, accumulation, engine),
)
rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}]} for i in range(4)]
trainer = VlaOpdTrainer(
    model=tiny_model(),
    teacher_model=tiny_model(seed=1),
    args=config,
    train_dataset=Dataset.from_list(rows),
    processing_class=tiny_tokenizer(),
)
result = train_one_sharded_step(trainer)
save_step_result(trainer, result, out_path)
