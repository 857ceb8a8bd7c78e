"""The card's allocator: a fixed annotation budget B split into N_sft SFT demonstrations and N_pref preference pairs,
and the seeded draw of those rows from a pool (no prompt in both stages by default).

    N_sft = floor(f * B / c_s),  N_pref = floor((1 - f) * B / c_p)

`f = "auto"` turns the paper's headline findings into a rule: below about 1,000 equivalent examples (B / c_s) SFT
alone is best (f = 1); above it most of the budget goes to preference data (f = f_large), and on reasoning tasks at
least f_min_sft goes to SFT, since DPO straight from the base model suffers a cold start there.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

TASK_TYPES = ("general", "reasoning")
SftFraction = float | Literal["auto"]


@dataclass(frozen=True)
class BudgetPlan:
    """How a budget is spent: `n_sft` demonstrations and `n_pref` pairs at SFT fraction `f`, in the costs' units."""

    budget: float
    cost_sft: float
    cost_pref: float
    f: float
    n_sft: int
    n_pref: int
    warnings: tuple[str, ...] = ()

    @property
    def cost_used(self) -> float:
        """What the two stages' data costs (<= budget: the counts are floored)."""
        return float(_exact(self.n_sft) * _exact(self.cost_sft) + _exact(self.n_pref) * _exact(self.cost_pref))

    def metrics(self) -> dict[str, float]:
        """The card's `budget/*` figures, both units: cost units and annotated examples."""
        return {
            "budget/budget": float(self.budget),
            "budget/f": float(self.f),
            "budget/n_sft": float(self.n_sft),
            "budget/n_pref": float(self.n_pref),
            "budget/cost_used": self.cost_used,
            "budget/examples_used": float(self.n_sft + self.n_pref),
        }


def _exact(value: float | int) -> Fraction:
    """The decimal as written: 0.29 * 100 is 29 examples, not floor(28.999999999999996) = 28."""
    return Fraction(str(value))


def _check_unit(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"budget_split: {name}={value!r} must be a number in [0, 1].")
    return float(value)


def allocate_budget(
    budget: float,
    cost_sft: float = 1.0,
    cost_pref: float = 1.0,
    sft_fraction: SftFraction = "auto",
    task_type: str = "general",
    low_budget_threshold: float = 1000,
    f_large: float = 0.25,
    f_min_sft: float = 0.1,
) -> BudgetPlan:
    """Split `budget` (cost units) between SFT examples (`cost_sft` each) and preference pairs (`cost_pref` each).

    `sft_fraction`: f in [0, 1], or "auto" (f = 1 below `low_budget_threshold` equivalent examples B / c_s, else
    `f_large`, raised to `f_min_sft` on a `task_type="reasoning"` task). f = 0 on a reasoning task is kept but
    warned about (the cold start)."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0 or not math.isfinite(budget):
        raise ValueError(f"budget_split: budget={budget!r} must be a finite number >= 0 (in the costs' units).")
    for name, cost in (("cost_sft", cost_sft), ("cost_pref", cost_pref)):
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not cost > 0 or not math.isfinite(cost):
            raise ValueError(f"budget_split: {name}={cost!r} must be a finite number > 0.")
    if task_type not in TASK_TYPES:
        raise ValueError(f"budget_split: task_type={task_type!r}; one of {', '.join(TASK_TYPES)}.")
    if isinstance(low_budget_threshold, bool) or not isinstance(low_budget_threshold, (int, float)):
        raise ValueError(f"budget_split: low_budget_threshold={low_budget_threshold!r} must be a number.")
    f_large, f_min_sft = _check_unit("f_large", f_large), _check_unit("f_min_sft", f_min_sft)
    warnings: list[str] = []
    if sft_fraction == "auto":
        if _exact(budget) / _exact(cost_sft) < _exact(low_budget_threshold):
            f = 1.0  # small budgets: SFT alone beats any split
        else:
            f = max(f_large, f_min_sft) if task_type == "reasoning" else f_large
    else:
        f = _check_unit("sft_fraction", sft_fraction)
        if f == 0.0 and task_type == "reasoning":
            warnings.append(
                "cold start: sft_fraction=0 on a reasoning task trains DPO straight from the base model, whose "
                f"solutions are off the pairs' distribution; the paper finds even f >= {f_min_sft:g} of the budget "
                "on SFT first recovers most of the gap."
            )
    n_sft = math.floor(_exact(f) * _exact(budget) / _exact(cost_sft))
    n_pref = math.floor((1 - _exact(f)) * _exact(budget) / _exact(cost_pref))
    if n_sft == 0 and n_pref == 0:
        warnings.append(f"budget {budget:g} buys no example at these costs: neither stage will train.")
    return BudgetPlan(float(budget), float(cost_sft), float(cost_pref), f, n_sft, n_pref, tuple(warnings))


@dataclass(frozen=True)
class BudgetSelection:
    """The pool rows each stage trains on (indices into the pool, in training order)."""

    sft: list[int]
    pref: list[int]


def prompt_key(prompt: Any) -> str:
    """A hashable form of a prompt (text or chat messages), for telling prompts apart."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def select_budget_rows(
    prompts: Sequence[Any], plan: BudgetPlan, seed: int = 0, disjoint_prompts: bool = True
) -> BudgetSelection:
    """Draw `plan.n_sft` SFT rows and `plan.n_pref` preference rows from a pool whose rows have these `prompts`.

    One seeded shuffle of the pool: SFT takes its first n_sft rows; the preference rows follow in the same order,
    skipping (with `disjoint_prompts`) every row whose prompt SFT used, or (without) come from a second shuffle of
    the whole pool. Both stages' transforms call this with the same arguments and get the same split."""
    rng = random.Random(seed)
    order = list(range(len(prompts)))
    rng.shuffle(order)
    if plan.n_sft > len(order):
        raise ValueError(
            f"budget_split: the plan needs {plan.n_sft} SFT examples but the pool has {len(order)} rows; lower the "
            "budget or give a larger pool."
        )
    sft = order[: plan.n_sft]
    if disjoint_prompts:
        used = {prompt_key(prompts[i]) for i in sft}
        candidates = [i for i in order[plan.n_sft :] if prompt_key(prompts[i]) not in used]
    else:
        candidates = list(range(len(prompts)))
        rng.shuffle(candidates)
    if plan.n_pref > len(candidates):
        which = " whose prompts SFT does not use" if disjoint_prompts else ""
        raise ValueError(
            f"budget_split: the plan needs {plan.n_pref} preference pairs but the pool has {len(candidates)} rows"
            f"{which}; lower the budget, give a larger pool, or set disjoint_prompts=false."
        )
    return BudgetSelection(sft=sft, pref=candidates[: plan.n_pref])
