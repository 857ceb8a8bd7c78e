"""SoFT: Sorted Fine-Tuning, nested sub-models from the first n layers with a shared head (arXiv 2309.08968)."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PAPER_THRESHOLDS": ".submodels",
        "EarlyExitOutput": ".submodels",
        "SoFTConfig": ".config",
        "SoFTTrainer": ".trainer",
        "decoder_layers": ".submodels",
        "default_depths": ".config",
        "depth_nll": ".submodels",
        "early_exit_generate": ".submodels",
        "final_norm": ".submodels",
        "truncate_to_submodel": ".submodels",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="soft",
            trainer="trl_ext_plugins.soft.trainer:SoFTTrainer",
            config="trl_ext_plugins.soft.config:SoFTConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Mean SFT loss of nested sub-models (first n layers + the shared final norm and head), so "
            "intermediate depths can serve early exit and self-speculative decoding.",
            extra_forwards="trl_ext_plugins.soft.trainer:extra_head_forwards",  # |B| - 1 extra head projections (forward + backward)
            example="trl-ext train soft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--learning_rate 5e-5 --max_steps 50",
        )
    )


__all__ = [
    "PAPER",
    "PAPER_THRESHOLDS",
    "EarlyExitOutput",
    "SoFTConfig",
    "SoFTTrainer",
    "decoder_layers",
    "default_depths",
    "depth_nll",
    "early_exit_generate",
    "final_norm",
    "truncate_to_submodel",
]
