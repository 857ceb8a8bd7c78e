"""LT-SFT (arXiv 2110.07560): Lottery-Ticket Sparse Fine-Tuning. Full fine-tuning, keep the K entries that moved
most, rewind, fine-tune only those: a sparse difference phi added to the frozen weights, composable by addition with
other diffs (a language diff + a task diff). `trl-ext train lt_sft` (also `lt-sft`); `--adapter sparse_diff:path=...`
adds saved diffs to a model; `trl_ext.adapters.sparse.SparseDiff` is the utility. See README.md."""

from trl_ext import Adapter, Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

_M = "trl_ext_plugins.lt_sft"

# These import torch and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LTSFTConfig": ".config",
        "LTSFTTrainer": ".trainer",
        "maskable_names": ".trainer",
        "budget": ".trainer",
        "l1_penalty": ".trainer",
        "make_sparse_diff_adapter": ".adapter",
        "load_diffs": ".adapter",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="lt_sft",
            trainer=f"{_M}.trainer:LTSFTTrainer",
            config=f"{_M}.config:LTSFTConfig",
            base="sft",
            family="parameter-efficient",
            paper=PAPER,
            description="Lottery-Ticket Sparse Fine-Tuning: full phase -> the K entries with largest |theta - theta0| "
            "(global, ties kept) -> rewind -> masked sparse phase, fresh optimizer per phase; saves phi as "
            "sparse_diff.safetensors. Trainable entries K = num_tunable, else floor(density x maskable entries): "
            "floor(0.01 x 106,168,320) = 1,061,683 on SmolLM2-135M (all-linear, 7 linears x 30 layers).",
            example="trl-ext train lt_sft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--full_ft_steps 150 --sparse_ft_steps 150 --density 0.01",
        )
    )


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="sparse_diff",
            factory=f"{_M}.adapter:make_sparse_diff_adapter",
            family="parameter-efficient",
            paper=PAPER,
            description="Adds saved sparse diffs (LT-SFT's sparse_diff.safetensors: indices + values per tensor) to "
            "the model in place; several compose by addition (theta0 + phi_lang + phi_task). No new parameters.",
            options={
                "path": "a sparse_diff.safetensors file or a folder holding one; several joined with +",
                "scale": "multiplier of the added values (1.0; -1 subtracts)",
            },
            example="trl-ext train sft --dataset_name builtin:arith --adapter sparse_diff:path=lang_out+task_out",
        )
    )


__all__ = ["PAPER"]
