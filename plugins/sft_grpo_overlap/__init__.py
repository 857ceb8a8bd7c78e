"""sft_grpo_overlap (arXiv:2604.13515): SFT-GRPO prompt overlap as a post-training hyperparameter. Adds the
overlap-controlled split (`overlap_split`, as the transforms `overlap_sft_rows` / `overlap_grpo_rows`), the verifier
reward r = c · (w_c + w_s · s) (`make_verifier_reward`; registered as `formal_verifier` for the built-in task), the
two-metric pass@k evaluator (`evaluate_pass_at_k`, the callback `overlap_pass_at_k`), `builtin:formal_arith` (English
arithmetic statements -> a mini formal syntax) and the recipe `sft_grpo_overlap` (SFT -> GRPO). See README.md."""

from __future__ import annotations

from trl_ext import Callback, Dataset, Recipe, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import datasets, torch or transformers: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "OverlapPassAtKCallback": ".evaluation",
        "VerifierReward": ".rewards",
        "build_formal_arith": ".formal:build",
        "compile_check": ".formal",
        "evaluate_pass_at_k": ".evaluation",
        "formal_checks": ".evaluation",
        "make_verifier_reward": ".rewards",
        "normalized_key": ".split",
        "overlap_metrics": ".rewards",
        "overlap_split": ".split",
        "pass_at_k_figures": ".evaluation",
        "pass_at_k_items": ".evaluation",
        "sampled_verdicts": ".evaluation",
        "semantic_check": ".formal",
    },
)

__all__ = [
    "PAPER",
    "OverlapPassAtKCallback",
    "VerifierReward",
    "build_formal_arith",
    "compile_check",
    "evaluate_pass_at_k",
    "formal_checks",
    "make_verifier_reward",
    "normalized_key",
    "overlap_metrics",
    "overlap_split",
    "pass_at_k_figures",
    "pass_at_k_items",
    "sampled_verdicts",
    "semantic_check",
]

_SPLIT_OPTIONS = {
    "n_sft": "N_sft, SFT items (default 300, ours).",
    "n_grpo": "N_grpo, GRPO prompts (default 300, ours).",
    "overlap": "o in [0, 1]: round(o * N_grpo) GRPO prompts come from the SFT set (default 0.0, the paper's advice).",
    "seed": "Seed of the split; give both transforms the same options (default 0).",
    "overlap_key": "Column whose normalised value (whitespace collapsed) is an item's identity (default prompt).",
    "hashed": "Key items by the SHA-1 of the normalised text (default false).",
    "drop_columns": "Columns to remove from the output (overlap_grpo_rows: default completion).",
}
_SPLIT_NOTE = (
    " Only the train split is split (duplicates dropped first); held-out splits pass through. Give "
    "overlap_sft_rows (stage 1) and overlap_grpo_rows (stage 2) the same options: the same seeded split."
)


@hookimpl
def register_transforms(register):
    common = {"family": "data", "paper": PAPER, "options": _SPLIT_OPTIONS}
    register(
        Transform(
            name="overlap_sft_rows",
            factory="trl_ext_plugins.sft_grpo_overlap.split:make_sft_rows",
            required_columns=lambda options: (options.get("overlap_key", "prompt"),),
            description="The SFT side of the overlap-controlled split: the first N_sft items of the seeded, "
            "deduplicated pool." + _SPLIT_NOTE,
            example="trl-ext transform overlap_sft_rows --dataset_name builtin:formal_arith --split train "
            "--n_sft 300 --n_grpo 300 --overlap 0.3 --output sft.jsonl",
            **common,
        )
    )
    register(
        Transform(
            name="overlap_grpo_rows",
            factory="trl_ext_plugins.sft_grpo_overlap.split:make_grpo_rows",
            required_columns=lambda options: (options.get("overlap_key", "prompt"),),
            description="The GRPO side: round(o * N_grpo) items of the SFT set plus fresh ones, shuffled, with an "
            "`in_sft` column (ValueError when the pool has too few fresh items)." + _SPLIT_NOTE,
            example="trl-ext transform overlap_grpo_rows --dataset_name builtin:formal_arith --split train "
            "--n_sft 300 --n_grpo 300 --overlap 0.3 --output grpo.jsonl",
            **common,
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="formal_verifier",
            factory="trl_ext_plugins.sft_grpo_overlap.rewards:formal_verifier",
            family="grpo-reward",
            paper=PAPER,
            options={
                "w_compile": "w_c of r = c * (w_c + w_s * s) (default 1.0).",
                "w_semantic": "w_s (default 0.0: compile only, the card's default; the judge is then never called).",
            },
            description="r = c * (w_c + w_s * s) for builtin:formal_arith: c = the statement parses, s = it says what "
            "the prompt's English statement says (string rules standing in for Lean and the judge). Logs "
            "grpo/compile_rate, grpo/semantic_rate, overlap/actual, grpo/reward_in_sft_rows vs "
            "grpo/reward_fresh_rows and grpo/zero_variance_group_fraction (also _in_sft / _fresh).",
            example="trl-ext train grpo --dataset_name builtin:formal_arith --rewards formal_verifier:w_semantic=1 "
            "--max_steps 5",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="overlap_pass_at_k",
            factory="trl_ext_plugins.sft_grpo_overlap.evaluation:OverlapPassAtKCallback",
            family="recipe",
            paper=PAPER,
            options={
                "dataset_name": "Problems with a 'prompt' column (default builtin:formal_arith).",
                "split": "Their split (default test).",
                "num_problems": "Problems per evaluation (default 32).",
                "n": "Samples per problem (default 8; needs n >= every k).",
                "k_list": "k values joined by + (default 1+8).",
                "temperature": "Sampling temperature (default 0.8).",
                "max_new_tokens": "Completion length (default 32).",
                "batch_size": "Rows per generate call, problems x n (default 16).",
                "seed": "Sampling seed; the training RNG is not touched (default 0).",
                "compile_check": "package.module:function, text -> bool (default: the formal_arith grammar).",
                "semantic_judge": "package.module:function, (prompt, text) -> bool (default: the formal_arith "
                "faithfulness rule).",
                "every_n_steps": "Also evaluate every this many optimizer steps.",
                "at_train_end": "Also evaluate when training ends (default true).",
                "progress": "Show the generation progress bar (default false).",
            },
            description="n samples per held-out problem -> unbiased eval/compile_pass@k, eval/semantic_pass@k and "
            "eval/compile_semantic_gap@k (the core's pass_at_k); a plot over steps at train end.",
            example="trl-ext evaluate --model_name_or_path outputs/sft_grpo_overlap/stage-2-grpo "
            "--callbacks overlap_pass_at_k:num_problems=16",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="formal_arith",
            factory="trl_ext_plugins.sft_grpo_overlap.formal:build",
            forms=("sft", "grpo"),
            family="builtin",
            paper=PAPER,
            description="Synthetic autoformalization: English arithmetic statements ('the sum of 3 and 4 is 7') -> "
            "'theorem : 3 + 4 = 7'; 1000 train / 100 test distinct statements, checked by string rules.",
            columns={
                "sft": ("prompt", "completion", "reference", "statement"),
                "grpo": ("prompt", "reference", "statement"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="sft_grpo_overlap",
            source="trl_ext_plugins.sft_grpo_overlap:recipes/sft_grpo_overlap.yaml",
            paper=PAPER,
            description="The overlap-controlled split of builtin:formal_arith, SFT on its SFT side, then GRPO with "
            "the verifier reward on its GRPO side (overlap 0.0 by default), pass@k evaluated at the end.",
        )
    )
