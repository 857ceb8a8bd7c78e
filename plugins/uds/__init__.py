"""UDS: Utility-Diversity aware online batch Selection for SFT (arXiv 2510.16882). Each micro-batch is scored with
one no-grad forward (nuclear norm of each sample's logits + distance of a sketch of them to a memory of selected
samples) and only the top-K samples are trained on. See README.md."""

from trl_ext import Dataset, Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "UDSConfig": ".config",
        "UDSSFTTrainer": ".trainer",
        "SketchMemory": ".scoring",
        "UDSScorer": ".scoring",
        "inter_scores": ".scoring",
        "nuclear_norm": ".scoring",
        "sketch_matrices": ".scoring",
    },
)


def _extra_forwards(config, model) -> float:
    """One no-grad scoring forward per micro-batch, then the training forward + backward on K of the b rows instead
    of all b. A training step on a row costs s forwards: 1 + 2 for its backward under full fine-tuning (input and
    weight gradients), 1 + 1 under PEFT (frozen base weights get no weight gradient). So against SFT on the same
    micro-batch: 1 + s * K / b - s extra forwards (negative: UDS is cheaper when K / b < 1 - 1 / s)."""
    k = getattr(config, "uds_k", 1)
    b = getattr(config, "per_device_train_batch_size", 8)
    if k >= b:
        return 0.0  # every row is kept: no scoring pass
    if getattr(config, "uds_random", False):
        return 0.0 + _step_forwards(model) * (k / b - 1)
    return 1.0 + _step_forwards(model) * (k / b - 1)


def _step_forwards(model) -> float:
    return 2.0 if hasattr(model, "peft_config") else 3.0


@hookimpl
def register_methods(register):
    register(
        Method(
            name="uds",
            trainer="trl_ext_plugins.uds.trainer:UDSSFTTrainer",
            config="trl_ext_plugins.uds.config:UDSConfig",
            base="sft",
            family="data",
            paper=PAPER,
            description="Online batch selection: score each micro-batch (nuclear norm of each row's logits + "
            "alpha * distance of its logit sketch to a memory of selected rows) and train on the top K.",
            extra_forwards=_extra_forwards,
            example="trl-ext train uds --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--per_device_train_batch_size 4 --uds_k 1 --use_peft --lora_r 8 --lora_alpha 16 "
            "--lora_target_modules all-linear --max_steps 20",
        )
    )


__all__ = [
    "PAPER",
    "UDSConfig",
    "UDSSFTTrainer",
    "SketchMemory",
    "UDSScorer",
    "inter_scores",
    "nuclear_norm",
    "sketch_matrices",
]


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="uds_mix",
            factory="trl_ext_plugins.uds.data:build",
            forms=("sft",),
            family="builtin",
            paper=PAPER,
            description="400 SFT rows, half builtin:arith problems and half near-duplicates of one template (a museum "
            "greeting whose visitor number changes), shuffled, with their source; test: arith's 200 held-out "
            "problems. For uds' demonstration.",
            columns={"sft": ("prompt", "completion", "source")},
        )
    )
