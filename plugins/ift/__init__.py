"""IFT: Intuitive Fine-Tuning, SFT on inputs mixed with the model's own greedy guesses, with relation propagation
(arXiv 2405.11870; official code TsinghuaC3I/Intuitive-Fine-Tuning)."""

from trl_ext import Dataset, Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "IFTConfig": ".config",
        "IFTTrainer": ".trainer",
        "mix_embeddings": ".loss",
        "propagation_weights": ".loss",
        "temporal_residual_ids": ".loss",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="ift",
            trainer="trl_ext_plugins.ift.trainer:IFTTrainer",
            config="trl_ext_plugins.ift.config:IFTConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Response inputs mixed with the model's own greedy guesses ((1-λ)·gold + λ·guess, λ=0.2) and "
            "token losses weighted by γ-discounted future losses (γ=0.95); per-sequence mean.",
            # the no-grad forward that yields the greedy guesses; none while λ stays 0
            extra_forwards=lambda config, model: 1.0 if config.max_lambda > 0 else 0.0,
            example="trl-ext train ift --model_name_or_path smollm2-135m --dataset_name builtin:arith_chains "
            "--ift_lambda 0.2 --ift_gamma 0.95 --max_steps 50",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="arith_chains",
            factory="trl_ext_plugins.ift.data:build",
            forms=("sft",),
            family="sft-loss",
            paper=PAPER,
            description="Arithmetic chains of 3-5 steps, one reasoning line per step and a final answer line (IFT's "
            "exposure-bias demo).",
            columns={"sft": ("prompt", "completion", "answer", "num_steps")},
        )
    )


__all__ = ["IFTConfig", "IFTTrainer", "PAPER", "mix_embeddings", "propagation_weights", "temporal_residual_ids"]
