"""budget_split (arXiv:2502.11284): a fixed annotation budget split between SFT demonstrations and preference pairs,
then SFT -> DPO from the SFT model.

Adds the allocator `allocate_budget` (the card's rule: SFT only below ~1,000 examples, else f_large = 0.25 of the
budget on SFT, at least f_min_sft = 0.1 on reasoning tasks), the transforms `budget_sft` / `budget_pref` (each
stage's rows drawn from one pool under one plan, no prompt in both), the callback `budget_metrics` (budget/* in the
logs, held-out accuracy), `builtin:budget_arith` (problems with worked answers and preference pairs) and the recipe
`budget_split` (`trl-ext train budget_split`; a stage the plan gives nothing is skipped). See README.md.
"""

from trl_ext import Callback, Dataset, Recipe, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .allocation import BudgetPlan, BudgetSelection, allocate_budget, select_budget_rows
from .config import OPTIONS_HELP, BudgetOptions
from .paper import PAPER

# These import datasets, torch or transformers: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BudgetMetricsCallback": ".callbacks",
        "BudgetTransform": ".transforms",
        "budget_recipe": ".pipeline",
        "build_budget_arith": ".data:build",
        "heldout_accuracy": ".pipeline",
        "run_budgeted_pipeline": ".pipeline",
        "sweep_sft_fraction": ".pipeline",
    },
)

__all__ = [
    "PAPER",
    "BudgetMetricsCallback",
    "BudgetOptions",
    "BudgetPlan",
    "BudgetSelection",
    "BudgetTransform",
    "allocate_budget",
    "budget_recipe",
    "build_budget_arith",
    "heldout_accuracy",
    "run_budgeted_pipeline",
    "select_budget_rows",
    "sweep_sft_fraction",
]

_DRAW = (
    "Both transforms compute the same plan and seeded draw from the same options: give them (and budget_metrics) the "
    "same values. Other splits than `split` are reshaped, not cut."
)


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="budget_sft",
            factory="trl_ext_plugins.budget_split.transforms:make_sft_transform",
            family="recipe",
            paper=PAPER,
            required_columns=("prompt", "completion"),
            options=OPTIONS_HELP,
            example="trl-ext transform budget_sft --budget 400 --sft_fraction 0.1 --dataset_name builtin:budget_arith "
            "--dataset_config pool --output sft.jsonl",
            description="The SFT stage's rows of an annotation pool: N_sft = floor(f·B/c_s) seeded draws, as "
            "prompt/completion (+ budget_id, the pool index); empty when the plan gives SFT nothing. " + _DRAW,
        )
    )
    register(
        Transform(
            name="budget_pref",
            factory="trl_ext_plugins.budget_split.transforms:make_pref_transform",
            family="recipe",
            paper=PAPER,
            required_columns=("prompt", "chosen", "rejected"),
            options=OPTIONS_HELP,
            example="trl-ext transform budget_pref --budget 1200 --dataset_name builtin:budget_arith "
            "--dataset_config pool --output pairs.jsonl",
            description="The DPO stage's rows of an annotation pool: N_pref = floor((1-f)·B/c_p) pairs whose prompts "
            "the SFT draw did not use, as prompt/chosen/rejected (+ budget_id); empty when the plan gives "
            "preference data nothing. " + _DRAW,
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="budget_metrics",
            factory="trl_ext_plugins.budget_split.callbacks:BudgetMetricsCallback",
            family="recipe",
            paper=PAPER,
            options={
                **OPTIONS_HELP,
                "dataset_name": "Held-out problems with `prompt` and `answer` (default builtin:budget_arith).",
                "eval_split": "Their split (default test).",
                "num_samples": "Held-out problems answered greedily per evaluation (default 0: only the budget "
                "figures are logged).",
                "max_new_tokens": "Answer length (default 64).",
                "batch_size": "Generation batch size (default 16).",
                "every_n_steps": "Also evaluate every N optimizer steps (default: at evaluations and the end).",
                "at_train_end": "Evaluate when training ends (default true).",
            },
            description="Adds budget/budget, budget/f, budget/n_sft, budget/n_pref, budget/cost_used (cost units) and "
            "budget/examples_used to every log, writes budget_plan.json next to the model, and with num_samples "
            "logs budget_eval/accuracy (final answer right) and budget_eval/step_rate (worked steps shown).",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="budget_arith",
            factory="trl_ext_plugins.budget_split.data:build",
            forms=("pool", "sft", "dpo"),
            family="builtin",
            paper=PAPER,
            description="1,700 arithmetic word problems (1,500 train pool / 200 test), each annotated both ways: a "
            "worked solution (SFT answer, chosen) and a rejected answer (an arithmetic slip or the bare answer "
            "without steps, by a seeded coin).",
            columns={
                "pool": ("id", "prompt", "completion", "chosen", "rejected", "rejected_kind", "answer"),
                "sft": ("id", "prompt", "completion", "answer"),
                "dpo": ("id", "prompt", "chosen", "rejected", "answer"),
            },
        )
    )


@hookimpl
def register_recipes(register):
    register(
        Recipe(
            name="budget_split",
            source="trl_ext_plugins.budget_split:recipes/budget_split.yaml",
            paper=PAPER,
            description="An annotation budget split by the card's rule into SFT demonstrations and preference pairs "
            "of one pool, then SFT -> DPO from the SFT model (a stage the plan gives nothing is skipped).",
        )
    )
