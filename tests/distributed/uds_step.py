"""Two UDS optimizer steps on 2 processes of 2 rows each with per-process selection (K = 1); writes the loss, the
weight update and every process's selections, scores and memory to argv[1].

Usage: `uds_step.py OUT ENGINE` with ENGINE `none` (DDP under torchrun), `zero3` (DeepSpeed, DS_ACCELERATOR=cpu) or
`fsdp2` (torch `fully_shard`). The LM head is trained, so the second step's scores must come from the updated head
(the Gram factor recomputed from the gathered weight, not a cached one), and the second step's inter scores read the
memory each process filled at the first (tests/test_distributed_uds.py). The DDP reference never caches the Gram terms,
so a cache key that missed the head's update under a sharded engine shows as other scores."""

import sys

import torch
from datasets import Dataset

from trl_ext.testing import (
    SGD_STEP_ARGS,
    deepspeed_config,
    save_step_result,
    shard_trainer_with_fsdp2,
    tiny_model,
    tiny_tokenizer,
    train_one_sharded_step,
    uneven_rows,
)
from trl_ext_plugins.uds import UDSConfig, UDSSFTTrainer

out_path, engine = sys.argv[1], sys.argv[2]
rows = uneven_rows()
rows += [
    {"prompt": [{"role": "user", "content": f"Say {w}."}], "completion": [{"role": "assistant", "content": w * n}]}
    for w, n in [("yes ", 3), ("no ", 7), ("maybe ", 1), ("seven ", 5)]
]
config = UDSConfig(
    output_dir=f"/tmp/uds-{engine}",
    per_device_train_batch_size=2,
    gradient_accumulation_steps=1,
    gradient_checkpointing=False,
    shuffle_dataset=False,
    **{**SGD_STEP_ARGS, "max_steps": 2, "learning_rate": 0.1},
    **({"deepspeed": deepspeed_config(3)} if engine == "zero3" else {}),
    uds_k=1,
    uds_alpha=1.0,  # the memory's inter score weighs in at the second step
    uds_memory_size=4,
    uds_r_vocab=16,
    uds_per_process_selection=True,
)
trainer = UDSSFTTrainer(
    model=tiny_model(), args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
)
if engine == "fsdp2":
    shard_trainer_with_fsdp2(trainer)
if engine == "none":  # the reference recomputes the Gram terms at every scoring pass: no cache key involved
    scorer = trainer.scorer
    uncached = scorer.score
    scorer.score = lambda hidden, rows, head, head_key=None: uncached(hidden, rows, head, head_key=None)

seen = []
uds_scores = trainer.uds_scores


def recording(inputs, model=None):
    intra, inter, sketches = uds_scores(inputs, model)
    seen.append({"ids": inputs["input_ids"].sum().item(), "intra": intra.tolist(), "inter": inter.tolist()})
    return intra, inter, sketches


trainer.uds_scores = recording
result = train_one_sharded_step(trainer)
mine = {
    "history": trainer.uds_history,
    "scores": seen,
    "slots": trainer.uds_memory.filled().tolist(),  # one sketch per row
    "sharded": type(trainer.model_wrapped).__name__,
}
ranks = [None] * trainer.accelerator.num_processes
torch.distributed.all_gather_object(ranks, mine)
result["ranks"] = ranks
save_step_result(trainer, result, out_path)
