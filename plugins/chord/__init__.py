"""CHORD (arXiv 2508.11408): an expert-SFT term mixed into GRPO with a global weight mu(t) (cosine with warm-up)
and the per-token weight phi(p) = p (1 - p) on expert tokens. `trl-ext train chord` runs it on the sft_grpo base:
the prompt dataset is --dataset_name, the demonstrations --expert_dataset_name. See README.md."""

from trl_ext import Method, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ChordConfig": ".config",
        "ChordTrainer": ".trainer",
        "mu_schedule": ".losses",
        "expert_token_loss": ".losses",
        "token_weights": ".losses",
    },
)


def _extra_forwards(config, model) -> float:
    """One expert forward + backward per micro-batch (the SFT term) beside GRPO's step; none when mu stays 0."""
    if getattr(config, "mu_peak", 0.1) == 0 and getattr(config, "mu_valley", 0.1) == 0:
        return 0.0
    return 2.0 if hasattr(model, "peft_config") else 3.0


@hookimpl
def register_methods(register):
    register(
        Method(
            name="chord",
            trainer="trl_ext_plugins.chord.trainer:ChordTrainer",
            config="trl_ext_plugins.chord.config:ChordConfig",
            base="sft_grpo",
            family="rl-demonstration",
            paper=PAPER,
            description="GRPO with an expert-SFT term: L = (1 - mu_t) L_GRPO + mu_t L_SFT on demonstrations "
            "(--expert_dataset_name), mu_t cosine with warm-up, L_SFT weighted per token by phi = p(1 - p).",
            extra_forwards=_extra_forwards,
            default_dataset="builtin:arith",
            example="trl-ext train chord --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--expert_dataset_name builtin:arith --rewards chord_answer --num_generations 4 "
            "--per_device_train_batch_size 4 --max_completion_length 64 --max_steps 10",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="chord_answer",
            factory="trl_ext_plugins.chord.rewards:chord_answer.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer",),
            description="1 if the completion's final number ('The answer is N.', else the last number) equals the "
            "row's `answer`, else 0 (CHORD's arithmetic demonstration).",
            example="trl-ext train chord --dataset_name builtin:arith --expert_dataset_name builtin:arith "
            "--rewards chord_answer --max_steps 5",
        )
    )


__all__ = ["PAPER", "ChordConfig", "ChordTrainer", "expert_token_loss", "mu_schedule", "token_weights"]
