"""`peft_budget`: the trainable budget a run really trains, logged once at train start (the survey's point: compare
PEFT methods at stated, equal budgets)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from trl_ext.adapters.zoo import budget_of, category_of
from trl_ext.training.log_figures import add_to_log


class PeftBudgetCallback(TrainerCallback):
    """At train begin: counts the model's trainable parameters and its base model's (a PeftModel's adapter tensors
    are not base), prints them with the adapter's survey category, records `peft/trainable_params`,
    `peft/trainable_frac` (and `peft/category`) in the first log, and raises ValueError when `target_budget` (a
    count, or a fraction below 1) is missed by more than `tol` relative to it."""

    def __init__(self, target_budget: int | float | None = None, tol: float = 0.05):
        if target_budget is not None and (isinstance(target_budget, bool) or target_budget <= 0):
            raise ValueError(f"peft_budget: target_budget must be a positive count or fraction, got {target_budget!r}")
        if tol < 0:
            raise ValueError(f"peft_budget: tol must be >= 0, got {tol}")
        self.target_budget = target_budget
        self.tol = float(tol)
        self.measured: dict[str, Any] = {}
        self._pending = False

    def measure(self, model: Any) -> dict[str, Any]:
        trainable, total = budget_of(model)
        config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
        category = category_of(config) if config is not None else "full"
        return {
            "peft/trainable_params": trainable,
            "peft/total_params": total,
            "peft/trainable_frac": trainable / total,
            "peft/category": category or "unknown",
        }

    def target_count(self, total: int) -> int | None:
        if self.target_budget is None:
            return None
        if isinstance(self.target_budget, float) and self.target_budget < 1:
            return max(1, round(self.target_budget * total))
        return int(self.target_budget)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        self.measured = self.measure(model)
        trainable, total = self.measured["peft/trainable_params"], self.measured["peft/total_params"]
        target = self.target_count(total)
        if state.is_world_process_zero:
            print(
                f"peft_budget: {trainable:,} trainable of {total:,} base parameters "
                f"({trainable / total:.4%}, {self.measured['peft/category']})",
                flush=True,
            )
        if target is not None and abs(trainable - target) > self.tol * target:
            raise ValueError(
                f"peft_budget: {trainable:,} trainable parameters, {abs(trainable - target) / target:.1%} off the "
                f"target {target:,} (tol {self.tol:.0%}); build the config at this budget with `trl-ext peft-zoo`"
            )
        self._pending = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None:
            add_to_log(state, logs, {k: v for k, v in self.measured.items() if k != "peft/category"})
            if state.log_history:  # the category (text) goes to the history only, trackers take numbers
                state.log_history[-1]["peft/category"] = self.measured["peft/category"]
            self._pending = False
