"""branch_filter: score each long-CoT trajectory's branching frequency (new solution paths started, abandoned
ones returned from) and drop the most branch-heavy ones before SFT; an eval callback logs the branch rate of a
student's generations. A data transform on the curation runner; see README.md."""

from __future__ import annotations

from trl_ext import Callback, Dataset, Paper, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets/transformers: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BRANCH_MARKERS": ".score",
        "RETURN_MARKERS": ".score",
        "branch_score": ".score",
        "lexical_classifier": ".score",
        "reasoning_part": ".score",
        "split_steps": ".score",
        "branch_filter": ".select",
        "branch_summary": ".select",
        "make_branch_filter_transform": ".select",
        "select_rows": ".select",
        "BranchRateCallback": ".callbacks",
        "generation_item_values": ".callbacks",
        "generation_metrics": ".callbacks",
        "numeric_judge": ".callbacks",
    },
)

PAPER = Paper(
    title="On the Role of Reasoning Patterns in the Generalization Discrepancy of Long Chain-of-Thought SFT",
    arxiv="2604.01702",
    citation="""@article{branchfilter2026,
  title   = {On the Role of Reasoning Patterns in the Generalization Discrepancy of Long Chain-of-Thought SFT},
  journal = {arXiv preprint arXiv:2604.01702},
  year    = {2026},
  url     = {https://arxiv.org/abs/2604.01702}
}""",
)

OPTIONS = {
    "drop_frac": "mode=quantile: drop this fraction of the most branching trajectories (default 0.5; 0 = keep all).",
    "mode": "'quantile' (drop the top drop_frac) or 'threshold' (keep metric <= max_rate) (default quantile).",
    "max_rate": "mode=threshold: the largest metric value kept.",
    "metric": "What to rank by: branch_rate (default), b_per_1k (branches per 1000 tokens) or n_branch.",
    "per_problem": "Keep only the least branching trajectory of each problem_id (default false).",
    "classifier": "A step classifier 'module:function' (step, previous_steps) -> bool; default: the lexical markers.",
    "min_step_chars": "Steps shorter than this join the previous step (default 20).",
    "count_returns": "Count 'going back'-style steps as branches too (default true).",
    "completion_column": "The trajectory column (default completion).",
    "problem_column": "The problem id column for per_problem and the coverage count (default problem_id).",
    "source_column": "Column counted per value in the summary (default style).",
    "tokenizer": "A tokenizer name for b_per_1k's token count (default: whitespace words).",
    "batch_size": "Rows per scored batch (default 64).",
    "curation_dir": "Where to keep scores and decisions outside `trl-ext transform --output`.",
}

__all__ = [
    "BRANCH_MARKERS",
    "OPTIONS",
    "PAPER",
    "RETURN_MARKERS",
    "BranchRateCallback",
    "branch_filter",
    "branch_score",
    "branch_summary",
    "generation_item_values",
    "generation_metrics",
    "lexical_classifier",
    "make_branch_filter_transform",
    "numeric_judge",
    "reasoning_part",
    "select_rows",
    "split_steps",
]


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="branch_filter",
            family="data",
            paper=PAPER,
            description="Scores each long-CoT trajectory's branch rate (steps on blank lines; lexical branch/return "
            "markers or a pluggable step classifier) and drops the most branch-heavy (top drop_frac, a threshold, or "
            "all but the least branching per problem); adds branch_rate, n_branch, n_steps; scores saved.",
            required_columns=lambda options: (options.get("completion_column", "completion"),),
            optional_columns={
                "style": "each trajectory's source (the source_column option): the summary counts kept rows per source"
            },
            options=OPTIONS,
            example="trl-ext transform branch_filter --dataset_name builtin:branch_traces --split train "
            "--drop_frac 0.5 --output branch_filtered.jsonl",
            factory="trl_ext_plugins.branch_filter.select:make_branch_filter_transform",
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="branch_rate",
            factory="trl_ext_plugins.branch_filter.callbacks:BranchRateCallback",
            family="data",
            paper=PAPER,
            options={
                "eval_prompts": "A dataset with prompt (and answer) (default builtin:branch_traces).",
                "split": "Its split (default test).",
                "num_samples": "Prompts per evaluation (default all).",
                "max_new_tokens": "Greedy generation length (default 2048).",
                "every_n_steps": "Also evaluate every this many optimizer steps (default: only at evaluations).",
                "batch_size": "Generation batch size (default 8).",
                "at_train_end": "Also evaluate when training ends (default true).",
            },
            description="Greedy generations on held-out prompts -> eval/branch_rate (mean branch rate of the "
            "generations), eval/accuracy (final number == answer) and eval/len (generated tokens).",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="branch_traces",
            factory="trl_ext_plugins.branch_filter.data:build",
            forms=("mixed", "convergent", "branchy"),
            family="builtin",
            paper=PAPER,
            description="200 arithmetic word problems (4 families), each with a convergent gold CoT and a branchy "
            "one (1-3 templated 'Alternatively ... / Going back ...' detours), same answer; 50 test problems. For "
            "branch_filter.",
            columns={
                f: ("prompt", "completion", "problem_id", "style", "answer", "n_detours")
                for f in ("mixed", "convergent", "branchy")
            },  # fmt: skip
        )
    )
