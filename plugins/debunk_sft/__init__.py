"""Debunk the Myth of SFT Generalization (arXiv:2510.00237): the paper's data recipe (prompt diversity by
per-example action vocabularies or rule values, CoT targets), its verifier as GRPO rewards, a per-variant evaluation
callback, and built-in Sokoban / 24-style card data. Training is plain SFT (`trl-ext train sft --transforms ...`).
See README.md."""

from trl_ext import Callback, Dataset, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import datasets / transformers: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_POOL": ".words",
        "PRESETS": ".transforms",
        "diversify_action_vocab": ".transforms",
        "diversify_rule_values": ".transforms",
        "to_cot_target": ".transforms",
        "encode_actions": ".transforms",
        "decode_actions": ".transforms",
        "answer_tag_format_reward": ".rewards",
        "remapped_action_reward": ".rewards",
        "points_answer_reward": ".rewards",
        "VariantEvalCallback": ".callbacks",
        "vocab_variant": ".callbacks",
        "success_rate": ".callbacks",
        "Board": ".sokoban",
    },
)

_M = "trl_ext_plugins.debunk_sft"
_SOKOBAN = "builtin:debunk_sokoban"


@hookimpl
def register_transforms(register):
    common = {"family": "recipe", "paper": PAPER}
    register(
        Transform(
            name="debunk_action_vocab",
            factory=f"{_M}.transforms:make_action_vocab_transform",
            required_columns=("prompt", "actions"),
            options={
                "seed": "Base seed; example i draws its 4 words with seed + i (default 42).",
                "word_pool": "Words to draw from, comma- or space-separated (default: ~200 common nouns).",
                "explain": "Add the line 'where w_up is Up, ...' when the words are not the standard ones (default "
                "true).",
                "fixed_words": "4 words (Up, Down, Left, Right order) for every row instead of sampling.",
            },
            description="Transform A: per-example random action vocabulary; rewrites the prompt's answer-format "
            "block, adds the meaning line, re-encodes the target; writes action_mapping and action_words.",
            example=f"trl-ext transform debunk_action_vocab --dataset_name {_SOKOBAN} --output vocab.jsonl",
            **common,
        )
    )
    register(
        Transform(
            name="debunk_rule_values",
            factory=f"{_M}.transforms:make_rule_values_transform",
            required_columns=("prompt", "cards"),
            options={
                "mappings": "A preset name (diverse, standard) or a list of [J, Q, K] value triples (default "
                "diverse).",
                "seed": "Base seed; example i picks its map with seed + i (default 42).",
            },
            description="Transform B: per-example face-card values (J/Q/K) stated in the prompt; the target "
            "expression is recomputed by the solver; writes face_values, card_values, answer.",
            example="trl-ext transform debunk_rule_values --dataset_name builtin:debunk_points --output rules.jsonl",
            **common,
        )
    )
    register(
        Transform(
            name="debunk_cot_target",
            factory=f"{_M}.transforms:make_cot_transform",
            required_columns=("prompt",),
            options={
                "fmt": "think_answer (reasoning, then the answer) or answer (answer only) (default think_answer)."
            },
            description="Transform C: completion = '<think> reasoning </think> <answer> answer </answer>', the "
            "reasoning from a `reasoning` column, the BFS plan of `grid` or the card solver, in the row's own words.",
            example=f"trl-ext transform debunk_cot_target --dataset_name {_SOKOBAN} --output cot.jsonl",
            **common,
        )
    )


@hookimpl
def register_rewards(register):
    common = {"family": "recipe", "paper": PAPER, "options": {}}
    register(
        Reward(
            name="answer_tag_format_reward",
            factory=f"{_M}.rewards:answer_tag_format_reward.from_options",
            required_columns=(),
            description="1.0 if the completion holds exactly one complete <answer> ... </answer> tag, else 0.0.",
            example=f"trl-ext train grpo --dataset_name {_SOKOBAN} --rewards answer_tag_format_reward",
            **common,
        )
    )
    register(
        Reward(
            name="remapped_action_reward",
            factory=f"{_M}.rewards:remapped_action_reward.from_options",
            required_columns=("action_mapping", "actions"),
            description="Last answer tag -> action ids through the row's action_mapping; 1.0 if correct (an optimal "
            "first move, or a solving sequence, when the row has a `grid`; else equal to `actions`).",
            example=f"trl-ext train grpo --dataset_name {_SOKOBAN} --rewards remapped_action_reward",
            **common,
        )
    )
    register(
        Reward(
            name="points_answer_reward",
            factory=f"{_M}.rewards:points_answer_reward.from_options",
            required_columns=("card_values",),
            description="1.0 if the last answer tag's expression uses each of card_values once and equals `target` "
            "(default 24).",
            example="trl-ext train grpo --dataset_name builtin:debunk_points --rewards points_answer_reward",
            **common,
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="debunk_variant_eval",
            factory=f"{_M}.callbacks:make_variant_eval_callback",
            family="recipe",
            paper=PAPER,
            options={
                "variants": "Comma-separated: standard, cardinal, emoji, fake, random, hard, two_boxes (default "
                "standard,cardinal,random).",
                "n": "Rows per variant from the built-in Sokoban test split (default 50).",
                "max_new_tokens": "Generation budget per answer (default 96).",
            },
            description="Logs eval/success/<variant>: greedy success on built-in Sokoban states under unseen "
            "instruction vocabularies or harder instances, at each evaluation and at the end of training.",
        )
    )


@hookimpl
def register_datasets(register):
    cols = ("prompt", "actions", "grid", "action_mapping", "action_words")
    register(
        Dataset(
            name="debunk_sokoban",
            factory=f"{_M}.data:build_sokoban",
            forms=("sft", "grpo"),
            family="builtin",
            paper=PAPER,
            description="One-step Sokoban (next best action by BFS), frozen Up/Down/Left/Right instruction: train "
            "300 / test 100 (6x6, 1 box), hard 60 (7x7), two_boxes 60 (7x7, 2 boxes). For debunk_sft.",
            columns={"sft": (*cols, "completion"), "grpo": cols},
        )
    )
    cols = ("prompt", "cards", "card_values", "face_values", "target", "answer")
    register(
        Dataset(
            name="debunk_points",
            factory=f"{_M}.data:build_points",
            forms=("sft", "grpo"),
            family="builtin",
            paper=PAPER,
            description="24-style card arithmetic (4 cards, J/Q/K count 10), solver-labelled: train 200 / test 50. "
            "For debunk_sft.",
            columns={"sft": (*cols, "completion"), "grpo": cols},
        )
    )


__all__ = ["PAPER"]
