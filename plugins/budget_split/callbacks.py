"""`budget_metrics`: the budget plan in every log line of a stage (the card's `budget/*` figures, in cost units and
in examples), the plan written next to the stage's model, and, with `num_samples`, held-out accuracy of greedy
answers (the card's demo metric) at each evaluation and at the end of training."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback, eval_rows
from trl_ext.training.log_figures import add_to_log

from .config import BudgetOptions

PLAN_FILE = "budget_plan.json"
# A worked step as the built-in solutions write it ("12 * 4 = 48."): the "no steps" rejections have none.
_STEP = re.compile(r"\d+\s*[-+*/×x]\s*\d+\s*=\s*\d+")


class BudgetMetricsCallback(GenerationEvalCallback):
    label = "budget_eval"

    def __init__(
        self,
        dataset_name: str = "builtin:budget_arith",
        eval_split: str = "test",
        num_samples: int = 0,
        max_new_tokens: int = 64,
        batch_size: int = 16,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, at_train_end=at_train_end)
        self.options = BudgetOptions.from_options("budget_metrics", options)
        self.plan = self.options.plan()
        for name, value in (
            ("num_samples", num_samples),
            ("max_new_tokens", max_new_tokens),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "num_samples" else 1):
                raise ValueError(
                    f"budget_metrics: {name}={value!r} must be an integer >= {int(name != 'num_samples')}."
                )
        self.dataset_name, self.eval_split, self.num_samples = dataset_name, eval_split, num_samples
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self._rows: list[dict[str, Any]] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and getattr(args, "output_dir", None):
            folder = Path(args.output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            plan = {**asdict(self.plan), "cost_used": self.plan.cost_used}
            record = {"options": asdict(self.options), "plan": plan}
            (folder / PLAN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))

    def on_log(self, args, state, control, logs=None, **kwargs):
        add_to_log(state, logs, self.plan.metrics())

    def run(self, state: Any, model: Any, tokenizer: Any, metrics: dict | None = None) -> dict[str, float] | None:
        return super().run(state, model, tokenizer, metrics) if self.num_samples else None

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        from trl_ext.data.arith import is_correct
        from trl_ext.inference.generation import generate

        if self._rows is None:
            self._rows = eval_rows(
                self.dataset_name, self.eval_split, "budget_metrics", ("prompt", "answer"), self.num_samples
            )
        prompts = [row["prompt"] for row in self._rows]
        texts = generate(model, tokenizer, prompts, self.max_new_tokens, self.batch_size, progress=False)
        correct = [is_correct(text, row["answer"]) for text, row in zip(texts, self._rows, strict=True)]
        worked = [bool(_STEP.search(text)) for text in texts]
        return self.item_means(
            {"budget_eval/accuracy": [float(c) for c in correct], "budget_eval/step_rate": [float(w) for w in worked]}
        )
