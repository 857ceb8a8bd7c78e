"""SpIEL (arXiv 2401.16405): sparse fine-tuning whose support moves. Per targeted linear, k flat indices and trainable
deltas added to the frozen weight (peft's supertuning tuner); every S steps the smallest |delta| are dropped and as
many entries of largest accumulated gradient regrown. `trl-ext train spiel`; `--adapter spiel` (with `--callbacks
spiel` for the regrowth) on any SFT-based method. Saved adapters load with plain peft. See README.md."""

from trl_ext import Adapter, Callback, Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

_M = "trl_ext_plugins.spiel"

# These import torch, peft and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SpIELConfig": ".config",
        "SpIELTrainer": ".trainer",
        "SpIELCallback": ".callback",
        "SpIELAdamW": ".optimizer",
        "Schedule": ".selection",
        "Selector": ".selection",
        "drop_and_grow": ".selection",
        "reselection_rate": ".selection",
        "spiel_budget": ".support",
        "spiel_layers": ".support",
        "wrap_spiel": ".support",
        "make_spiel_adapter": ".adapter",
    },
)

BUDGET = (
    "Trainable deltas = sum over the targeted linears (q/k/v/o/gate/up/down) of floor(T * n / sum_n), "
    "T = density x ALL the model's parameters (official; 1.267 x density of the targets on SmolLM2-135M): "
    "1,345,050 on SmolLM2-135M (T = 1,345,150) at density 0.01, plus as many int32 indices."
)


@hookimpl
def register_adapters(register):
    register(
        Adapter(
            name="spiel",
            factory=f"{_M}.adapter:make_spiel_adapter",
            family="parameter-efficient",
            paper=PAPER,
            description="SpIEL sparse deltas on a random initial support (peft supertuning, saved with its indices; "
            "mergeable). Add --callbacks spiel for the drop/regrow. " + BUDGET,
            options={
                "density": "T as a fraction of all the model's parameters (0.01)",
                "num_tunable": "T itself (overrides density)",
                "target_modules": "comma-separated linear names (q_proj,...,down_proj)",
                "seed": "seed of the random initial support (0)",
                "adapter_name": "peft adapter name (default)",
            },
            example="trl-ext train sft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--adapter spiel:density=0.01 --callbacks spiel --learning_rate 1e-4 --max_steps 50",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="spiel",
            factory=f"{_M}.callback:SpIELCallback",
            family="parameter-efficient",
            paper=PAPER,
            description="SpIEL's drop/regrow schedule for a model wrapped with --adapter spiel: every S steps drop "
            "the smallest |delta| and regrow the largest accumulated gradient; installs SpIELAdamW (per-entry "
            "ages). Not under DeepSpeed/FSDP.",
            options={
                "reselection_steps": "S (20)",
                "selection_accumulation_steps": "A (5)",
                "initial_reselection_rate": "zeta0 (0.2)",
                "reselection_rate_policy": "linear (default) or cosine",
            },
        )
    )


@hookimpl
def register_methods(register):
    register(
        Method(
            name="spiel",
            trainer=f"{_M}.trainer:SpIELTrainer",
            config=f"{_M}.config:SpIELConfig",
            base="sft",
            family="parameter-efficient",
            paper=PAPER,
            default_dataset="builtin:arith",
            description="SFT of sparse deltas (SpIEL-AG): drop the smallest |delta| and regrow by accumulated "
            "gradient every 20 steps (rate 0.2 decayed linearly, all replaced at the first), AdamW with per-entry "
            "ages. " + BUDGET,
            example="trl-ext train spiel --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--density 0.01 --max_steps 100",
        )
    )


__all__ = ["BUDGET", "PAPER"]
