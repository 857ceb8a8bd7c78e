"""redone2 (arXiv:2511.07070): RedOne 2.0's RL-first domain post-training, GRPO -> SFT -> GRPO.

Adds `select_weak_tasks`, `mix_general`, `route_rewards` (the card's data plumbing), the transforms
`redone_diagnose_sft` (stage 2: score each task of the stage-1 model and the base, keep the weak tasks' SFT rows, mix
general data at share r, write redone_diagnosis.json) and `refine_weak_upsample` (stage 3: repeat the weak tasks' RL
rows), the routed reward `redone_sns_reward`, `builtin:redone_sns` (three toy SNS tasks and generic chat pairs) and
the recipe `redone2` (`trl-ext train redone2`). See README.md.
"""

from trl_ext import Callback, Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER
from .selection import RoutedReward, WeakSelection, general_count, route_rewards, select_weak_tasks, upsample_rows

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mix_general": ".selection",
        "DiagnoseSFT": ".transforms",
        "RefineUpsample": ".transforms",
        "RedoneMetricsCallback": ".callbacks",
        "general_nll": ".callbacks",
        "task_scores": ".transforms",
        "build_redone_sns": ".data:build",
        "make_sns_reward": ".rewards",
    },
)

__all__ = [
    "PAPER",
    "DiagnoseSFT",
    "RedoneMetricsCallback",
    "RefineUpsample",
    "RoutedReward",
    "WeakSelection",
    "build_redone_sns",
    "general_count",
    "general_nll",
    "make_sns_reward",
    "mix_general",
    "route_rewards",
    "select_weak_tasks",
    "task_scores",
    "upsample_rows",
]

_SELECTION = {
    "weak_selection": "fraction (default: the bottom weak_frac of tasks by score), threshold (score below "
    "weak_thresholds[task], else default_threshold) or gain (gain over the base below gain_delta, else the bottom "
    "weak_frac by gain).",
    "weak_frac": "Share of tasks called weak in fraction/gain mode (default 0.5).",
    "weak_thresholds": "Per-task score thresholds for threshold mode (a mapping; default none).",
    "default_threshold": "Threshold of tasks weak_thresholds leaves out (default 0.5).",
    "gain_delta": "gain mode: weak when the gain over the base is below this (default: use weak_frac).",
}


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="redone_diagnose_sft",
            factory="trl_ext_plugins.redone2.transforms:make_diagnose_sft",
            family="recipe",
            paper=PAPER,
            needs_model=True,
            required_columns=("task", "prompt", "completion"),
            options={
                "base_model_name_or_path": "The base model M0, scored beside the stage's input model (default none: "
                "no baseline; gain mode needs it).",
                "eval_dataset": "Held-out rows with task, prompt and the reward's columns (default builtin:redone_sns).",
                "eval_config": "Its config (default rl).",
                "eval_split": "Its split (default test).",
                "num_eval": "Rows per task scored (default 16; 0: all).",
                "max_new_tokens": "Greedy answer length while scoring (default 32).",
                "batch_size": "Generation batch size (default 16).",
                "reward": "The registered routed reward that grades them (default redone_sns_reward).",
                **_SELECTION,
                "general_mix_ratio": "Share r of general rows in the SFT mixture, in examples (default 0.1).",
                "general_dataset": "General chat data (default builtin:redone_sns).",
                "general_config": "Its config (default general).",
                "general_split": "Its split (default train).",
                "seed": "Seed of the general draw and the shuffle (default 42).",
                "diagnosis_path": "Where the diagnosis JSON goes (default: redone_diagnosis.json above the input "
                "model's folder, the recipe's root).",
            },
            example="trl-ext train redone2",
            description="RedOne 2.0's stage-2 data: scores each task of the stage's input model (and of the base) on "
            "held-out rows, picks the weak tasks, writes redone_diagnosis.json, keeps the SFT rows of weak tasks and "
            "mixes in general data as a share r of the rows (`source` column domain|general).",
        )
    )
    register(
        Transform(
            name="refine_weak_upsample",
            factory="trl_ext_plugins.redone2.transforms:make_refine_upsample",
            family="recipe",
            paper=PAPER,
            needs_model=True,
            required_columns=("task",),
            options={
                "refine_weak_upsample": "Expected copies of each weak task's row (default 1.0: unchanged).",
                "diagnosis_path": "The diagnosis JSON redone_diagnose_sft wrote (default: above the input model's "
                "folder).",
                "seed": "Seed of the fractional draw and the shuffle (default 42).",
            },
            example="trl-ext train redone2",
            description="RedOne 2.0's stage-3 data: the RL rows with the diagnosed weak tasks' rows repeated "
            "refine_weak_upsample times (floor copies + a seeded fractional share); held-out splits unchanged.",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="redone_metrics",
            factory="trl_ext_plugins.redone2.callbacks:RedoneMetricsCallback",
            family="recipe",
            paper=PAPER,
            options={
                "stage": "The stage's name in the metric names (default: the stage's output folder name).",
                "base_model_name_or_path": "The base model, for redone/general_delta (default none: not logged).",
                "eval_dataset": "Held-out task rows (default builtin:redone_sns).",
                "eval_config": "Its config (default rl).",
                "eval_split": "Its split (default test).",
                "num_eval": "Rows per task (default 16; 0: all).",
                "max_new_tokens": "Greedy answer length (default 32).",
                "batch_size": "Generation batch size (default 16).",
                "reward": "The registered routed reward that grades them (default redone_sns_reward).",
                "general_dataset": "Held-out general chat pairs (default builtin:redone_sns; empty: no general NLL).",
                "general_config": "Its config (default general).",
                "general_split": "Its split (default test).",
                "num_general": "General pairs scored (default 32).",
                "every_n_steps": "Also evaluate every N optimizer steps (default: at evaluations and the end).",
                "at_train_end": "Evaluate when training ends (default true).",
            },
            example="trl-ext train redone2",
            description="RedOne 2.0's per-stage report: redone/<stage>/<task> and redone/<stage>/mean (mean rule "
            "reward of greedy answers on held-out task rows), redone/general_nll (per-token NLL of held-out general "
            "answers) and, with a base model, redone/general_delta (this model's general NLL minus the base's).",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="redone_sns_reward",
            factory="trl_ext_plugins.redone2.rewards:make_sns_reward",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("task", "answer"),
            example="trl-ext train redone2",
            description="builtin:redone_sns's rule rewards routed by the `task` column (None for other tasks): "
            "hashtags = F1 of the hashtag sets, sentiment = 1 if the first label named is the gold one, tone_reply = "
            "0.5 for ending with 'Cheers!' + 0.5 for at most 20 words.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="redone_sns",
            factory="trl_ext_plugins.redone2.data:build",
            forms=("rl", "sft", "general"),
            family="builtin",
            paper=PAPER,
            description="Three toy SNS tasks (hashtags, sentiment, tone_reply; 120 train / 30 test rows each, "
            "interleaved) with rule-graded answers, and 200 generic chat pairs (160 train / 40 test) as general data.",
            columns={
                "rl": ("task", "prompt", "answer"),
                "sft": ("task", "prompt", "completion", "answer"),
                "general": ("task", "prompt", "completion"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="redone2",
            source="trl_ext_plugins.redone2:recipes/redone2.yaml",
            paper=PAPER,
            description="RL first: GRPO on the domain tasks, SFT on the diagnosed weak tasks mixed with 10% general "
            "data, GRPO again (optionally upsampling weak tasks).",
        )
    )
