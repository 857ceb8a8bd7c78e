"""`budget_sft` and `budget_pref`: each stage's training data drawn from one annotation pool under one budget plan.

Both transforms compute the same plan and the same seeded draw (`select_budget_rows`) from the same options, so the
SFT stage and the DPO stage of a recipe agree on which rows each takes without passing anything between them. On the
budget's split the rows are cut to the plan (an empty result when the plan gives the stage nothing: pair it with the
stage's `skip_if_empty: true`); other splits (held-out evaluation rows) are reshaped to the stage's columns, whole.
Each output row keeps `budget_id`, its index in the pool, so the draw is on record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from datasets import Dataset

from trl_ext.data.curation import current_split

from .allocation import BudgetPlan, BudgetSelection, select_budget_rows
from .config import BudgetOptions

logger = logging.getLogger(__name__)

SFT_COLUMNS = ("prompt", "completion")
PREF_COLUMNS = ("prompt", "chosen", "rejected")


class BudgetTransform:
    """The stage's rows of the pool: `stage` "sft" keeps prompt/completion, "pref" prompt/chosen/rejected."""

    def __init__(self, stage: str, options: BudgetOptions) -> None:
        self.stage, self.options = stage, options
        self.plan: BudgetPlan = options.plan()
        self.selection: BudgetSelection | None = None  # of the budget's split, once transformed
        for message in self.plan.warnings:
            logger.warning("budget_split: %s", message)

    @property
    def columns(self) -> tuple[str, ...]:
        return SFT_COLUMNS if self.stage == "sft" else PREF_COLUMNS

    def __call__(self, dataset: Dataset) -> Dataset:
        split = current_split()
        if split is not None and split != self.options.split:
            rows = list(range(len(dataset)))  # held-out rows: reshaped, all kept
        else:
            self.selection = select_budget_rows(
                dataset["prompt"], self.plan, seed=self.options.seed, disjoint_prompts=self.options.disjoint_prompts
            )
            rows = self.selection.sft if self.stage == "sft" else self.selection.pref
            logger.info(
                "budget_split: %s rows %d of %d (B=%g, f=%g, n_sft=%d, n_pref=%d, cost used %g)",
                self.stage,
                len(rows),
                len(dataset),
                self.plan.budget,
                self.plan.f,
                self.plan.n_sft,
                self.plan.n_pref,
                self.plan.cost_used,
            )
        kept = dataset.select(rows).select_columns(list(self.columns))
        return kept.add_column("budget_id", rows)


def make_sft_transform(**options: Any) -> Callable[[Dataset], Dataset]:
    return BudgetTransform("sft", BudgetOptions.from_options("budget_sft", options))


def make_pref_transform(**options: Any) -> Callable[[Dataset], Dataset]:
    return BudgetTransform("pref", BudgetOptions.from_options("budget_pref", options))
