"""ASFT: Anchored Supervised Fine-Tuning (arXiv 2509.23753), with DFT (arXiv 2508.05629) as one of its modes."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# The trainer and config import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(__name__, {"ASFTConfig": ".config", "ASFTTrainer": ".trainer"})


@hookimpl
def register_methods(register):
    register(
        Method(
            name="asft",
            trainer="trl_ext_plugins.asft.trainer:ASFTTrainer",
            config="trl_ext_plugins.asft.config:ASFTConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="DFT's probability-weighted NLL plus a per-token KL(initial model || policy) anchor, λ=0.1.",
            extra_forwards=lambda config, model: 1.0 if config.uses_kl else 0.0,  # the reference's no-grad forward
            example="trl-ext train asft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--kl_weight 0.1 --max_steps 50",
        )
    )


__all__ = ["ASFTConfig", "ASFTTrainer", "PAPER"]
