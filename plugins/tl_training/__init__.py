"""TL-Training (arXiv 2412.15495): a tool-use training recipe in three parts. MAE, the `tl_mae_split` transform (split
trajectories per assistant turn, drop failed calls); PKT, the `pkt` method (CE with the key tool-name tokens weighted
up); IRM, the `tool_call_reward` GRPO reward (graded by error category). See README.md."""

from trl_ext import Dataset, Method, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL, datasets or torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_ERROR_MARKERS": ".mae",
        "DEFAULT_TERMINATORS": ".pkt",
        "PKTConfig": ".config",
        "PKTTrainer": ".trainer",
        "REWARDS": ".irm",
        "ToolCallReward": ".irm",
        "build_tool_calls": ".data:build",
        "call_accuracy": ".data",
        "call_verdict": ".data",
        "first_call_exact_judge": ".data",
        "first_call_name_judge": ".data",
        "pkt_spans": ".pkt",
        "pkt_weights": ".pkt",
        "score_call": ".irm",
        "tl_mae_split": ".mae",
        "tool_call_reward": ".irm",
    },
)

__all__ = [
    "DEFAULT_ERROR_MARKERS",
    "DEFAULT_TERMINATORS",
    "PAPER",
    "PKTConfig",
    "PKTTrainer",
    "REWARDS",
    "ToolCallReward",
    "build_tool_calls",
    "call_accuracy",
    "call_verdict",
    "first_call_exact_judge",
    "first_call_name_judge",
    "pkt_spans",
    "pkt_weights",
    "score_call",
    "tl_mae_split",
    "tool_call_reward",
]


@hookimpl
def register_methods(register):
    register(
        Method(
            name="pkt",
            trainer="trl_ext_plugins.tl_training.trainer:PKTTrainer",
            config="trl_ext_plugins.tl_training.config:PKTConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="TL-Training's PKT: CE over the last assistant turn with the key tool-name tokens weighted "
            "min(|O|/|P|, 9), normalised by the weighted token count.",
            default_dataset="builtin:tool_calls",
            required_columns=lambda config: config.columns,
            extra_forwards=0.0,  # the masks are data; the loss costs what SFT's does
            example="trl-ext train pkt --model_name_or_path smollm2-135m --dataset_name builtin:tool_calls "
            "--dataset_config conversations --transforms tl_mae_split --pkt_max_weight 9",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="tl_mae_split",
            factory="trl_ext_plugins.tl_training.mae:make_mae_transform",
            family="data",
            paper=PAPER,
            required_columns=("messages",),
            options={
                "drop_errors": "Drop assistant turns whose tool output has an error marker (default true; false "
                "only splits).",
                "error_markers": "'|'-separated markers, matched lower-cased on letters and digits only (default: "
                "the official list of 14).",
                "messages_column": "Column with the conversations (default 'messages').",
                "num_proc": "Worker processes for Dataset.map (default: none).",
            },
            description="MAE: one prompt-completion sample per assistant turn (trained on that turn), dropping "
            "turns followed by a non-tool message or by a tool error; the final turn is always kept.",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="tool_call_reward",
            example="trl-ext train grpo --rewards tool_call_reward --dataset_name builtin:tool_calls --max_steps 5",
            factory="trl_ext_plugins.tl_training.irm:ToolCallReward.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("tools", "gold_call"),
            options={
                "strict_parsing": "Parse both quote styles and literal values, with balanced parentheses "
                "(default false: the official single-quote regex)."
            },
            description="IRM: 1 exact call; -0.25 wrong value; -0.5 redundant or missing arg; -0.8 hallucinated; "
            "-1.0 redundant and missing; -1.3 hallucinated and redundant/missing; -1.8 all three; -1.5 wrong tool; "
            "-2 unknown tool or unparsable. Logs irm/frac_<category>.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="tool_calls",
            factory="trl_ext_plugins.tl_training.data:build",
            forms=("sft", "conversations", "grpo"),
            family="builtin",
            paper=PAPER,
            description="Tool-use requests over 5 fake tools with overlapping name prefixes, 10% with a failed first "
            "call (300 train / 100 test trajectories); for tl_mae_split, pkt and tool_call_reward.",
            columns={
                "sft": ("prompt", "completion", "tools", "gold_call", "corrupted", "turn"),
                "conversations": ("messages", "tools", "gold_call", "corrupted"),
                "grpo": ("prompt", "tools", "gold_call"),
            },
        )
    )
