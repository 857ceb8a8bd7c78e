"""The options every budget_split component shares (the two transforms, the callback and the Python pipeline): one
typed, validated place, so the SFT stage and the DPO stage draw their rows from the same plan."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .allocation import BudgetPlan, SftFraction, allocate_budget


@dataclass(frozen=True)
class BudgetOptions:
    """The annotation budget, its split (the card's allocator, at its defaults) and how rows are drawn."""

    budget: float = field(metadata={"help": "Annotation budget B in cost units (required; count-based by default)."})
    cost_sft: float = field(default=1.0, metadata={"help": "Cost of one SFT demonstration c_s (default 1.0)."})
    cost_pref: float = field(default=1.0, metadata={"help": "Cost of one preference pair c_p (default 1.0)."})
    sft_fraction: SftFraction = field(
        default="auto",
        metadata={
            "help": "Share f of the budget spent on SFT, in [0, 1], or auto (default): 1.0 below "
            "low_budget_threshold equivalent examples, else f_large (at least f_min_sft on reasoning tasks)."
        },
    )
    task_type: str = field(
        default="general", metadata={"help": "general (default) or reasoning (enforces f >= f_min_sft under auto)."}
    )
    low_budget_threshold: float = field(
        default=1000, metadata={"help": "Below this many equivalent examples B/c_s, auto spends all on SFT (1000)."}
    )
    f_large: float = field(default=0.25, metadata={"help": "auto's SFT share for larger budgets (default 0.25)."})
    f_min_sft: float = field(
        default=0.1, metadata={"help": "auto's least SFT share on reasoning tasks, against the cold start (0.1)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the draw from the pool (default 0)."})
    disjoint_prompts: bool = field(
        default=True, metadata={"help": "No prompt in both the SFT and the preference rows (default true)."}
    )
    split: str = field(
        default="train",
        metadata={"help": "The split the budget is drawn from (default train); other splits are reshaped, not cut."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"budget_split: seed={self.seed!r} must be an integer.")
        if not isinstance(self.disjoint_prompts, bool):
            raise ValueError(f"budget_split: disjoint_prompts={self.disjoint_prompts!r} must be true or false.")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(f"budget_split: split={self.split!r} must name a split.")
        self.plan()  # the allocation's own checks, now rather than when the data arrives

    def plan(self) -> BudgetPlan:
        return allocate_budget(
            self.budget,
            cost_sft=self.cost_sft,
            cost_pref=self.cost_pref,
            sft_fraction=self.sft_fraction,
            task_type=self.task_type,
            low_budget_threshold=self.low_budget_threshold,
            f_large=self.f_large,
            f_min_sft=self.f_min_sft,
        )

    @classmethod
    def from_options(cls, who: str, options: dict[str, Any]) -> BudgetOptions:
        if "budget" not in options:
            raise ValueError(f"{who}: give the annotation budget, e.g. {who}:budget=1200.")
        return cls(**options)


OPTIONS_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(BudgetOptions)}
