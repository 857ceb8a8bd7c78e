"""CLS-RL (arXiv:2503.16188): few-shot classification fine-tuning by rule-based RL, with and without thinking.

Adds the rewards `cls_accuracy_reward` + `cls_format_reward` (CLS-RL) and `cls_equality_reward` (No-Thinking-CLS-RL),
the prompt transform `build_cls_prompts` (`mode=think|no_think`), the baseline transform `cls_clip_zero_shot` (a
user-supplied CLIP-like encoder) and `builtin:cls_animals` (a 10-way text classification task, 4 shots per class).
Training is TRL's GRPOTrainer; examples/recipes/clsrl_think.yaml and clsrl_no_think.yaml run both variants.
"""

from trl_ext import Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import the reward toolkit, `datasets` or torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ClsAccuracyReward": ".rewards",
        "ClsEqualityReward": ".rewards",
        "ClsFormatReward": ".rewards",
        "ClsRLConfig": ".config",
        "build_cls_prompts": ".transforms",
        "build_cls_animals": ".data:build",
        "cls_clip_zero_shot": ".transforms",
        "clip_zero_shot": ".transforms",
    },
)

__all__ = [
    "PAPER",
    "ClsAccuracyReward",
    "ClsEqualityReward",
    "ClsFormatReward",
    "ClsRLConfig",
    "build_cls_animals",
    "build_cls_prompts",
    "clip_zero_shot",
    "cls_clip_zero_shot",
]

_TAG = {"answer_tag": "Tag of the answer span (default answer)."}
_EXAMPLE = "trl-ext train grpo --dataset_name builtin:cls_animals --rewards {} --max_steps 5"


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER}
    register(
        Reward(
            name="cls_accuracy_reward",
            example=_EXAMPLE.format("cls_accuracy_reward,cls_format_reward"),
            factory="trl_ext_plugins.clsrl.rewards:ClsAccuracyReward.from_options",
            required_columns=("solution",),
            options={
                **_TAG,
                "use_symbolic_verify": "Try math-verify's symbolic check first, as the R1-V code (default false; "
                "needs math-verify).",
            },
            description="CLS-RL r_acc: 1 iff the first <answer>…</answer> (no DOTALL; else the completion), stripped, "
            "equals the `solution` class (unwrapped from answer tags) ignoring case. With a `class_names` column, "
            "logs cls/think_answer_mismatch and cls/answer_in_classes; logs cls/completion_tokens.",
            **common,
        )
    )
    register(
        Reward(
            name="cls_format_reward",
            example=_EXAMPLE.format("cls_accuracy_reward,cls_format_reward"),
            factory="trl_ext_plugins.clsrl.rewards:ClsFormatReward.from_options",
            options=_TAG,
            description="CLS-RL r_fmt: 1 iff the completion fully matches <think>.*?</think>\\s*<answer>.*?</answer> "
            "(DOTALL), else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="cls_equality_reward",
            example="trl-ext train grpo --dataset_name builtin:cls_animals --transforms build_cls_prompts:mode=no_think "
            "--rewards cls_equality_reward --max_steps 5",
            factory="trl_ext_plugins.clsrl.rewards:ClsEqualityReward.from_options",
            required_columns=("solution",),
            options={**_TAG, "eq_normalize": "Compare after strip() + casefold() (default false: exact, official)."},
            description="No-Thinking-CLS-RL r_eq: 1 iff the whole completion equals the `solution` class (unwrapped "
            "from answer tags) exactly, else 0. Logs cls/completion_tokens.",
            **common,
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="build_cls_prompts",
            factory="trl_ext_plugins.clsrl.transforms:build_cls_prompts",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("class_names", "label"),
            options={
                "mode": "think (CLS-RL: think/answer tags) or no_think (answer directly); default think.",
                "question_template": "Question with {classes} for the names joined by ', ' (default: the official "
                "'What type of object is in the photo? Please choose one from list [ {classes}]').",
                "answer_tag": "Tag of the answer span in `solution` (default answer).",
                "max_prompt_chars": "Refuse a prompt longer than this (default 8192, ours; GRPO never truncates).",
            },
            description="Labelled rows (`class_names`, `label` index or name; optional `question` used as is, "
            "`context` put before the question, `image` kept for a VLM policy) -> `prompt` (user message: question + "
            "the mode's official instruction) and `solution` '<answer>gold</answer>'.",
        )
    )
    register(
        Transform(
            name="cls_clip_zero_shot",
            factory="trl_ext_plugins.clsrl.transforms:cls_clip_zero_shot",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("image", "class_names"),
            options={
                "encoder_name_or_path": "A CLIP-like dual encoder (local folder or Hub id); required.",
                "template": "Text prompt per class (default 'a photo of a {}.').",
                "column": "Column for the predicted class (default clip_prediction).",
            },
            description="Zero-shot baseline: adds the encoder's predicted class per row (image vs 'a photo of a "
            "{class}.') and clip_correct (1/0 against `label`, when present).",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="cls_animals",
            factory="trl_ext_plugins.clsrl.data:build",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="10-way text classification (an animal described by 2 of its 6 clues, pick it from the list), "
            "4 shots per class: 40 train / 20 held-out test; CLS-RL (think) prompts. For the clsrl rewards.",
            columns={"grpo": ("prompt", "solution", "class_names", "label", "context", "question")},
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="clsrl_think",
            source="trl_ext_plugins.clsrl:recipes/think.yaml",
            paper=PAPER,
            description="CLS-RL: GRPO with think/answer prompts and the accuracy + format rewards, as the official run.",
        )
    )
    register(
        Recipe(
            name="clsrl_no_think",
            source="trl_ext_plugins.clsrl:recipes/no_think.yaml",
            paper=PAPER,
            description="No-Thinking-RL: GRPO with answer-only prompts and the exact-match reward.",
        )
    )
