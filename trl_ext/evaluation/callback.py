"""The shared shape of a plugin's evaluation callback: generate on held-out rows while training and log figures.

A plugin subclasses `GenerationEvalCallback` and writes only `evaluate(model, tokenizer) -> {name: figure}`; the base
decides when it runs (each evaluation, every `every_n_steps` optimizer steps when set, and once when training ends
unless it has just run at that step), runs it on the main process only, restores the model's train/eval mode, and
puts the figures in the evaluation's metrics, the trainer state's log history and `history`. When training ends it
draws each figure over the steps it was measured at into `<output_dir>/plots/<label>.png` (with the `eval` extra's
matplotlib; without it, a log line says so). A figure that is a mean over the evaluated items can keep those items'
values (`item_mean`), so `trl-ext compare --eval callback:NAME` gives it an interval. `eval_rows` loads the
held-out rows a callback names (a dataset name, a `datasets.Dataset` or a list of dicts) and checks their columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def eval_rows(
    source: Any, split: str, who: str, required: Sequence[str] = (), limit: int | None = None
) -> list[dict[str, Any]]:
    """The rows of `source` (a dataset name read with `trl_ext.data.load_dataset`, its `split`; a Dataset; or an
    iterable of dicts), the first `limit` of them, refused with `who`'s name when a `required` column is missing."""
    if isinstance(source, str):
        from trl_ext.data import load_dataset

        data = load_dataset(source)
        if split not in data:
            raise ValueError(f"{who}: {source} has no split {split!r}; splits: {list(data)}")
        source = data[split]
    rows = source.to_list() if hasattr(source, "to_list") else [dict(row) for row in source]
    if limit is not None:
        rows = rows[:limit]
    missing = sorted({column for row in rows[:1] for column in required if column not in row})
    if missing:
        raise ValueError(f"{who}: the evaluation rows lack the column(s) {', '.join(missing)}")
    return rows


class GenerationEvalCallback(TrainerCallback):
    """Runs `evaluate` at each evaluation, every `every_n_steps` steps (when set) and at the end of training (when
    `at_train_end`, and not twice at one step). `label` names the callback in what it prints."""

    label = "eval"

    def __init__(self, every_n_steps: int | None = None, at_train_end: bool = True) -> None:
        if every_n_steps is not None and (
            isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1
        ):
            raise ValueError(f"{self.label}: every_n_steps={every_n_steps!r} must be an integer >= 1")
        if not isinstance(at_train_end, bool):
            raise ValueError(f"{self.label}: at_train_end={at_train_end!r} must be true or false")
        self.every_n_steps, self.at_train_end = every_n_steps, at_train_end
        self.history: list[dict[str, float]] = []
        self.item_values: dict[str, list[float]] = {}

    def item_mean(self, figure: str, values: Sequence[float]) -> float:
        """The mean of `values` (one per evaluated item), kept as `item_values[figure]` until the next evaluation
        replaces them, for an interval over the items (`trl-ext compare`); NaN for no item."""
        kept = [float(v) for v in values]
        vars(self).setdefault("item_values", {})[figure] = kept
        return sum(kept) / len(kept) if kept else float("nan")

    def item_means(self, items: dict[str, Sequence[float]]) -> dict[str, float]:
        """`item_mean` of each figure's item values: the figures, their items kept for compare."""
        return {figure: self.item_mean(figure, values) for figure, values in items.items()}

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        raise NotImplementedError

    def printed(self, figures: dict[str, float]) -> dict[str, float]:
        """The figures worth a line on the console (all by default)."""
        return figures

    @property
    def results(self) -> dict[str, float]:
        """The latest figures (empty before the first run)."""
        return {k: v for k, v in self.history[-1].items() if k != "step"} if self.history else {}

    def run(self, state: Any, model: Any, tokenizer: Any, metrics: dict | None = None) -> dict[str, float] | None:
        if model is None or tokenizer is None or not state.is_world_process_zero:
            return None
        was_training = getattr(model, "training", None)
        try:
            figures = self.evaluate(model, tokenizer)
        finally:
            if isinstance(was_training, bool):
                model.train(was_training)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.printed(figures).items())
        print(f"{self.label} at step {state.global_step}: {shown}", flush=True)
        self.history.append({**figures, "step": state.global_step})
        state.log_history.append({**figures, "step": state.global_step})
        if metrics is not None:
            metrics.update(figures)
        return figures

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self.run(state, model, processing_class)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, metrics=None, **kwargs):
        self.run(state, model, processing_class, metrics)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.at_train_end and not (self.history and self.history[-1]["step"] == state.global_step):
            self.run(state, model, processing_class)
        if self.history and state.is_world_process_zero and getattr(args, "output_dir", None):
            self.plot(Path(args.output_dir) / "plots" / f"{self.label}.png")

    def plot(self, path: Path) -> Path | None:
        """Each figure of `history` over its steps, one line per figure, saved as a PNG; None without matplotlib."""
        from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps, series_from_log

        series = {name: series_from_log(self.history, name) for name in self.history[-1] if name != "step"}
        try:
            return plot_over_steps(series, path, title=self.label, ylabel="value")
        except PlotUnavailableError as exc:
            logger.info("%s: no plot written (%s)", self.label, exc)
        except ValueError:  # no figure was a number
            pass
        return None
