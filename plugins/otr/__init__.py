"""OTR: One-Token Rollout, SFT guided by a token-level policy gradient (arXiv 2509.26313)."""

from trl_ext import Dataset, Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(__name__, {"OTRConfig": ".config", "OTRTrainer": ".trainer", "otr_loss": ".loss"})


@hookimpl
def register_methods(register):
    register(
        Method(
            name="otr",
            trainer="trl_ext_plugins.otr.trainer:OTRTrainer",
            config="trl_ext_plugins.otr.config:OTRConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Token-level REINFORCE: K tokens sampled from softmax(z/τ) per response position, reward 1 "
            "for the dataset token and β<0 otherwise.",
            extra_forwards=0.0,  # rollouts reuse the loss's own projection of each token through the LM head
            example="trl-ext train otr --model_name_or_path smollm2-135m --dataset_name builtin:arith_ood "
            "--otr_num_samples 64 --max_steps 50",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="arith_ood",
            factory="trl_ext_plugins.otr.data:build",
            forms=("sft",),
            family="sft-loss",
            paper=PAPER,
            description="Arithmetic word problems with numbers below 100 (train/test) and an `ood` split of the same "
            "kinds with 3-digit numbers (OTR's generalisation demo).",
            columns={"sft": ("prompt", "completion", "answer")},
        )
    )


__all__ = ["OTRConfig", "OTRTrainer", "PAPER", "otr_loss"]
