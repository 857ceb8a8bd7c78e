"""RIF-RFT: the rollout-based instance filter (drop the prompts whose K rollouts all score alike before GRPO) as a
transform, and the continual-learning forgetting metric (AA, FM) as a callback for any run. See README.md."""

from __future__ import annotations

from trl_ext import Callback, Dataset, Paper, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ContinualEvalCallback": ".forgetting",
        "average_accuracy": ".forgetting",
        "forgetting_measure": ".forgetting",
        "make_forgetting_callback": ".forgetting",
        "decide_instance": ".filter",
        "instance_stats": ".filter",
        "make_rif_transform": ".filter",
        "rif_metrics": ".filter",
        "rollout_instance_filter": ".filter",
        "answer_matches": ".data",
        "rif_task_reward": ".data",
    },
)

PAPER = Paper(
    title="Reinforcement Fine-Tuning Naturally Mitigates Forgetting in Continual Post-Training",
    arxiv="2507.05386",
    citation="""@article{rifrft2025,
  title   = {Reinforcement Fine-Tuning Naturally Mitigates Forgetting in Continual Post-Training},
  journal = {arXiv preprint arXiv:2507.05386},
  year    = {2025},
  url     = {https://arxiv.org/abs/2507.05386}
}""",
)

OPTIONS = {
    "rewards": "GRPO reward names scoring each rollout, 'a+b' (registered, TRL's or module.function); summed with "
    "reward_weights as GRPOTrainer sums them.",
    "judge": "A judge (trl_ext.evaluation.judges name or import path) on answer_column as a 0/1 reward (default "
    "numeric_match when no rewards are given).",
    "reward_weights": "One weight per reward, 'w1+w2' (the judge last) (default 1 each).",
    "num_rollouts": "K rollouts per instance (default 8).",
    "temperature": "Sampling temperature: the training temperature (default 1.0).",
    "top_p": "Nucleus sampling, as GRPOConfig.top_p (default 1.0).",
    "max_new_tokens": "Rollout length cap, as max_completion_length (default 256).",
    "drop_all_wrong": "Drop instances whose K rewards are all <= wrong_reward (default true).",
    "drop_all_correct": "Drop instances whose K rewards are all >= correct_reward (default true).",
    "min_acc": "Keep only acc >= min_acc, applied after the rules above (default 0).",
    "max_acc": "Keep only acc <= max_acc (default 1).",
    "eps": "Drop any other instance whose reward variance is <= eps (default 0).",
    "wrong_reward": "A rollout at or below this counts as wrong (ours; default 0).",
    "correct_reward": "A rollout at or above this counts as correct (ours; default 1).",
    "batch_size": "Instances per generation batch (K sequences each); also the unit of resumption (default 8).",
    "seed": "Sampling seed; each batch samples from a seed of its own derived from it (default 0).",
    "prompt_column": "Prompt column (default prompt).",
    "answer_column": "The judge's gold column (default answer).",
    "save_rollouts": "Keep the rollout texts in the saved scores (default true).",
    "source_column": "Column counted per value in the summary (default task).",
    "curation_dir": "Where to keep rollouts, rewards, decisions and finished batches outside `trl-ext transform "
    "--output` (e.g. in a training run, to resume).",
}

__all__ = [
    "OPTIONS",
    "PAPER",
    "ContinualEvalCallback",
    "answer_matches",
    "average_accuracy",
    "decide_instance",
    "forgetting_measure",
    "instance_stats",
    "make_forgetting_callback",
    "make_rif_transform",
    "rif_metrics",
    "rif_task_reward",
    "rollout_instance_filter",
]


def rif_columns(options: dict) -> tuple[str, ...]:
    from .filter import rif_columns as columns

    return columns(options)


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="rif_rft",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="Samples K rollouts per GRPO prompt with the model, scores them with rewards/a judge, and "
            "drops the prompts with no reward variance (all wrong, all correct): zero GRPO advantage. Adds rif_acc, "
            "rif_var; rollouts, rewards and decisions saved; resumable, shardable.",
            required_columns=rif_columns,
            optional_columns={
                "task": "each row's source (the source_column option): the summary counts kept rows per source"
            },
            options=OPTIONS,
            example="trl-ext transform rif_rft --model_name_or_path smollm2-135m --dataset_name builtin:rif_tasks "
            "--split train --rewards rif_task_reward --num_rollouts 4 --max_new_tokens 16 --output kept.jsonl",
            factory="trl_ext_plugins.rif_rft.filter:make_rif_transform",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="rif_forgetting",
            factory="trl_ext_plugins.rif_rft.forgetting:make_forgetting_callback",
            family="data",
            paper=PAPER,
            options={
                "dataset": "Evaluation rows with prompt, answer and a task column (default rif_tasks = "
                "builtin:rif_tasks).",
                "split": "Its split (default test).",
                "form": "A built-in dataset's form (default its first).",
                "task_column": "The task of each row (default task).",
                "tasks": "The task order, 'a+b+c' (default: order of appearance).",
                "current_task": "The task this run trains (default: the first without a row in the history).",
                "history": "JSON file holding the accuracy matrix across runs (default <output_dir>/"
                "rif_forgetting.json); give each run of a sequence the same one.",
                "n": "Rows per task (default 16).",
                "judge": "A judge name or import path (default rif_tasks' answer match).",
                "max_new_tokens": "Greedy answer length (default 16).",
                "batch_size": "Generation batch size (default 16).",
                "every_n_steps": "Also evaluate every this many steps (default: evaluations and the end only).",
                "at_train_begin": "Evaluate the base model once at train begin, for cl/delta (default true).",
                "at_train_end": "Evaluate when training ends and store the run's row (default true).",
            },
            example="trl-ext train grpo --dataset_name builtin:rif_tasks --rewards rif_task_reward "
            "--callbacks rif_forgetting:history=cl.json",
            description="Continual-learning eval: per task greedy accuracy -> cl/acc/<task>, cl/AA (average "
            "accuracy), cl/FM (forgetting, card's formula, across runs via a history file), cl/delta/<task> vs base.",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="rif_task_reward",
            factory="trl_ext_plugins.rif_rft.data:rif_task_reward.from_options",
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer",),
            description="1 if the completion's final answer is the row's `answer` (numbers numerically; words: the "
            "last word, case-sensitive), else 0. For builtin:rif_tasks.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="rif_tasks",
            factory="trl_ext_plugins.rif_rft.data:build",
            forms=("all", "first", "add", "last"),
            family="builtin",
            paper=PAPER,
            description="Toy continual tasks a 135M model partly solves: first (first letter of a word, capital), add "
            "(two one-digit numbers), last (last letter, capital); 48 train / 16 test each (disjoint words). For rif_rft.",
            columns={f: ("prompt", "answer", "task") for f in ("all", "first", "add", "last")},
        )
    )
