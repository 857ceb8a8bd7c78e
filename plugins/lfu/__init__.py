"""LfU: Learning-from-the-Undesirable (arXiv 2511.13052): SFT plus consistency of the hidden states under a
normalised gradient-ascent ("undesirable") step on the trainable parameters. See README.md."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LfUConfig": ".config",
        "LfUTrainer": ".trainer",
        "hidden_consistency": ".trainer",
        "hidden_squared_error": ".trainer",
        "record_hidden_states": ".trainer",
        "response_positions": ".trainer",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="lfu",
            trainer="trl_ext_plugins.lfu.trainer:LfUTrainer",
            config="trl_ext_plugins.lfu.config:LfUConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="SFT + lambda * MSE between the hidden states at phi and after a normalised gradient-ascent "
            "step phi + alpha g/||g|| (g from an independent batch); alpha 0.1, lambda 5, LoRA.",
            # An extra forward + backward for the ascent gradient on B' and an extra forward + backward through the
            # perturbed pass on B: about 2 x (1 forward + 2 for its backward) = 6 forwards, i.e. ~3x an SFT step.
            extra_forwards=lambda config, model: 6.0 if getattr(config, "lfu_lambda", 5.0) > 0 else 0.0,
            example="trl-ext train lfu --model_name_or_path smollm2-135m --dataset_name builtin:arith --use_peft "
            "--lora_r 8 --lora_alpha 16 --lora_target_modules all-linear --max_steps 50",
        )
    )


__all__ = [
    "PAPER",
    "LfUConfig",
    "LfUTrainer",
    "hidden_consistency",
    "hidden_squared_error",
    "record_hidden_states",
    "response_positions",
]
