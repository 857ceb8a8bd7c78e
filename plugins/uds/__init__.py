"""UDS: Utility-Diversity aware online batch Selection for SFT (arXiv 2510.16882). Each micro-batch is scored with
one no-grad forward (nuclear norm of each sample's logits + distance of a sketch of them to a memory of selected
samples) and only the top-K samples are trained on. See README.md."""

from trl_ext import Method, hookimpl
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
    """One no-grad scoring forward per micro-batch; the training forward + backward then run on K of the b rows,
    so against SFT on the full micro-batch (1 forward + 2 for its backward) the step costs about
    1 + 3 * K / b - 3 = 3 * K / b - 2 forwards more (negative: UDS is cheaper when K / b < 2/3)."""
    k = getattr(config, "uds_k", 1)
    b = getattr(config, "per_device_train_batch_size", 8)
    if k >= b:
        return 0.0  # every row is kept: no scoring pass
    return 1.0 + 3.0 * min(k, b) / b - 3.0


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
