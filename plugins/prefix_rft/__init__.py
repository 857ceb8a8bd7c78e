"""Prefix-RFT (arXiv 2507.01679): demonstration prefixes inside GRPO groups. Some rollouts of each group start from a
prefix of the row's demonstration (cut at a scheduled random ratio); the prefix tokens are completion tokens, trained
with their own advantage, and only the highest-entropy ones keep it. See README.md."""

from trl_ext import Dataset, Method, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PrefixRFTConfig": ".config",
        "PrefixRFTTrainer": ".trainer",
        "band_high": ".prefix",
        "draw_plan": ".prefix",
        "official_advantages": ".prefix",
        "prefix_length": ".prefix",
    },
)

_MODULE = "trl_ext_plugins.prefix_rft"


def _required_columns(config) -> list[str]:
    if getattr(config, "num_prefixed_per_group", 1) == 0:
        return []
    return [getattr(config, "demo_column", "demonstration")]


@hookimpl
def register_methods(register):
    register(
        Method(
            name="prefix_rft",
            trainer=f"{_MODULE}.trainer:PrefixRFTTrainer",
            config=f"{_MODULE}.config:PrefixRFTConfig",
            base="grpo",
            family="rl-demonstration",
            paper=PAPER,
            default_dataset="builtin:prefix_arith",
            required_columns=_required_columns,
            description="GRPO whose groups hold m rollouts started from a demonstration prefix (scheduled ratio "
            "band 0.95 -> 0.05); prefix tokens trained with the official sub-group advantage, only the top-20% "
            "entropy ones kept; Dr.GRPO aggregation.",
            example="trl-ext train prefix_rft --model_name_or_path smollm2-135m --dataset_name builtin:prefix_arith "
            "--rewards prefix_answer --num_generations 8 --num_prefixed_per_group 2 --max_completion_length 48 "
            "--max_steps 20",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="prefix_answer",
            factory=f"{_MODULE}.rewards:prefix_answer.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer",),
            example="trl-ext train prefix_rft --dataset_name builtin:prefix_reverse --rewards prefix_answer "
            "--max_steps 5",
            description="1 when the completion's final answer ('The answer is N', else its last number) equals the "
            "row's `answer` as text, else 0.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="prefix_arith",
            factory=f"{_MODULE}.data:build_arith",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="builtin:arith's problems (2000 train / 200 test) with the worked solution as `demonstration`.",
            columns={"grpo": ("prompt", "demonstration", "answer")},
        )
    )
    register(
        Dataset(
            name="prefix_reverse",
            factory=f"{_MODULE}.data:build_reverse",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="Reverse a 6-digit string (512 train / 64 test), demonstration 'The answer is N.'.",
            columns={"grpo": ("prompt", "demonstration", "answer")},
        )
    )


__all__ = [
    "PAPER",
    "PrefixRFTConfig",
    "PrefixRFTTrainer",
    "band_high",
    "draw_plan",
    "official_advantages",
    "prefix_length",
]
