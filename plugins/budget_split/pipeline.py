"""The card's Python surface: the budget_split recipe for given options, run through the core's recipe runner (the
same path as `trl-ext train`: kept stages on rerun, skipped empty stages), and the sweep over SFT fractions at one
budget that reproduces the paper's "f vs performance" curve."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import BudgetOptions

DEFAULT_MODEL = "smollm2-135m"


def budget_recipe(
    options: BudgetOptions,
    *,
    model_name_or_path: str = DEFAULT_MODEL,
    dataset_name: str = "builtin:budget_arith",
    dataset_config: str | None = "pool",
    output_dir: str = "outputs/budget_split",
    common: dict[str, Any] | None = None,
    sft: dict[str, Any] | None = None,
    dpo: dict[str, Any] | None = None,
    eval_samples: int = 0,
) -> dict[str, Any]:
    """The two-stage recipe mapping (what recipes/budget_split.yaml holds) for `options`: `common` keys apply to both
    stages, `sft` / `dpo` to one; `eval_samples` held-out problems are answered by `budget_metrics` at each stage's
    end."""
    shared = dict(vars(options))
    callback = {"name": "budget_metrics", "num_samples": eval_samples, **shared}
    recipe: dict[str, Any] = {
        "model_name_or_path": model_name_or_path,
        "dataset_name": dataset_name,
        "output_dir": output_dir,
        "report_to": "none",
        "save_strategy": "no",
        **({"dataset_config": dataset_config} if dataset_config else {}),
        **(common or {}),
        "stages": [
            {
                "method": "sft",
                "skip_if_empty": True,
                "transforms": [{"name": "budget_sft", **shared}],
                "callbacks": [dict(callback)],
                **(sft or {}),
            },
            {
                "method": "dpo",
                "skip_if_empty": True,
                "transforms": [{"name": "budget_pref", **shared}],
                "callbacks": [dict(callback)],
                **(dpo or {}),
            },
        ],
    }
    return copy.deepcopy(recipe)


def run_recipe(recipe: dict[str, Any], flags: Sequence[str] = ()) -> str:
    """Run a recipe mapping as `trl-ext train --config` runs a file; the final model's folder (or the base model's
    name when every stage was skipped)."""
    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.recipe import checked_recipe, stages
    from trl_ext.run.stage import run_stages

    plan = stages(checked_recipe(recipe, "budget_split recipe"))
    parsed = []
    for i, values in enumerate(plan):
        values = dict(values)
        parsed.append(parse_stage(values.pop("method"), list(flags), values, first=i == 0, in_recipe=len(plan) > 1))
    return run_stages(parsed)


def run_budgeted_pipeline(options: BudgetOptions, flags: Sequence[str] = (), **recipe_keys: Any) -> str:
    """Spend `options.budget` by its plan: SFT on N_sft demonstrations, then DPO on N_pref pairs from the SFT model
    (stages the plan gives nothing are skipped). `recipe_keys`: `budget_recipe`'s keywords. The final model's
    folder."""
    return run_recipe(budget_recipe(options, **recipe_keys), flags)


def heldout_accuracy(
    model_name_or_path: str,
    dataset_name: str = "builtin:budget_arith",
    split: str = "test",
    num_samples: int = 100,
    max_new_tokens: int = 64,
    batch_size: int = 16,
) -> dict[str, float]:
    """Greedy answers of a saved model (or the built-in alias) on held-out problems: budget_eval/accuracy and
    budget_eval/step_rate, as `budget_metrics` measures them."""
    from trl_ext.models import load_model, load_tokenizer, load_trained

    from .callbacks import BudgetMetricsCallback

    model = load_trained(model_name_or_path) if Path(model_name_or_path).is_dir() else load_model(model_name_or_path)
    tokenizer = load_tokenizer(model_name_or_path)
    model.eval()
    scorer = BudgetMetricsCallback(
        dataset_name=dataset_name,
        eval_split=split,
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        budget=0,
    )
    return scorer.evaluate(model, tokenizer)


def sweep_sft_fraction(
    fractions: Sequence[float | str],
    base: BudgetOptions,
    output_dir: str = "outputs/budget_sweep",
    eval_samples: int = 100,
    flags: Sequence[str] = (),
    **recipe_keys: Any,
) -> list[dict[str, Any]]:
    """One pipeline per SFT fraction at `base`'s budget (each in `output_dir/f=<f>`), each final model measured on
    the same held-out problems. One row per fraction: the plan's figures and budget_eval/*."""
    from dataclasses import replace

    rows = []
    for f in fractions:
        options = replace(base, sft_fraction=f)
        plan = options.plan()
        final = run_budgeted_pipeline(
            options, flags, output_dir=str(Path(output_dir) / f"f={f}"), eval_samples=0, **recipe_keys
        )
        figures = heldout_accuracy(
            final, recipe_keys.get("dataset_name", "builtin:budget_arith"), num_samples=eval_samples
        )
        rows.append({"sft_fraction": f, **plan.metrics(), "model": final, **figures})
    return rows
