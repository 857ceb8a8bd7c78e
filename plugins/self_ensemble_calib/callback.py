"""`self_ensemble_calib`: during training (or on a saved model, through `trl-ext evaluate`), classify held-out rows
with the self-ensembled classifier and log accuracy and calibration as `calib/<figure>`, the single prompt beside
the ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback, eval_rows

from .classifier import TEMPLATES, SelfEnsembleClassifier, check_settings
from .strategies import ensemble

PLOTTED = ("acc", "ece", "single_acc", "single_ece")
ENSEMBLE_FIGURES = ("acc", "ece", "mce", "macro_f1", "conf_mean", "brier", "nll")
SINGLE_FIGURES = ("acc", "ece", "conf_mean")


class CalibrationCallback(GenerationEvalCallback):
    """Classifies the first `num_rows` rows of `dataset_name`'s `split` (`text_column`, `label_column`) with
    `SelfEnsembleClassifier` (demos drawn from `demo_split`) and logs `calibration_report` of the ensemble as
    calib/acc, ece, mce, macro_f1, conf_mean, brier, nll, and of the first variant alone (the single prompt, no extra
    forward) as calib/single_acc, single_ece, single_conf_mean, with n, n_bins and k."""

    label = "self_ensemble_calib"

    def __init__(
        self,
        dataset_name: str = "builtin:calib_sentiment",
        split: str = "test",
        demo_split: str = "train",
        num_rows: int = 200,
        text_column: str = "text",
        label_column: str = "label",
        labels: Sequence[str] | str | None = None,
        templates: Sequence[str] | None = None,
        variation: str = "ic",
        k: int = 5,
        strategy: str = "max",
        n_demos: int = 4,
        renormalize: bool = False,
        n_bins: int = 10,
        seed: int = 0,
        batch_size: int = 32,
        progress: bool = True,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
    ) -> None:
        for name, value, low in (("num_rows", num_rows, 1), ("n_bins", n_bins, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"self_ensemble_calib: {name}={value!r} must be an integer >= {low}")
        super().__init__(every_n_steps, at_train_end)
        self.dataset_name = dataset_name if ":" in dataset_name or "/" in dataset_name else f"builtin:{dataset_name}"
        self.split, self.demo_split, self.num_rows = split, demo_split, num_rows
        self.text_column, self.label_column = text_column, label_column
        self.labels = labels.split("+") if isinstance(labels, str) else list(labels) if labels is not None else None
        self.n_bins = n_bins
        self.classifier_kwargs: dict[str, Any] = {
            "templates": list(templates) if templates is not None else TEMPLATES,
            "variation": variation,
            "k": k,
            "strategy": strategy,
            "n_demos": n_demos,
            "renormalize": renormalize,
            "seed": seed,
            "batch_size": batch_size,
            "progress": progress,
        }
        try:  # refused now, not after training
            settings = ("templates", "variation", "k", "strategy", "n_demos", "batch_size")
            check_settings(**{name: self.classifier_kwargs[name] for name in settings})
        except ValueError as exc:
            raise ValueError(f"self_ensemble_calib: {exc}") from None
        self._rows: list[dict[str, Any]] | None = None
        self._pool: list[dict[str, Any]] | None = None
        self.last_predictions: list[str] = []

    def data(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(held-out rows, demo pool) as `{text, label}` rows, loaded once."""
        if self._rows is None:
            required = (self.text_column, self.label_column)
            who = self.label
            held_out = eval_rows(self.dataset_name, self.split, who, required, limit=self.num_rows)
            needs_pool = self.classifier_kwargs["n_demos"] > 0
            pool = eval_rows(self.dataset_name, self.demo_split, who, required) if needs_pool else []
            self._rows, self._pool = (
                [{"text": str(r[self.text_column]), "label": str(r[self.label_column])} for r in part]
                for part in (held_out, pool)
            )
        return self._rows, self._pool or []

    def classifier(self, model: Any, tokenizer: Any) -> SelfEnsembleClassifier:
        rows, pool = self.data()
        labels = self.labels or sorted({r["label"] for r in rows + pool})
        return SelfEnsembleClassifier(model, tokenizer, labels, demo_pool=pool or None, **self.classifier_kwargs)

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        import torch

        from trl_ext.evaluation.calibration import calibration_report

        rows, _ = self.data()
        clf = self.classifier(model, tokenizer)
        y_true = [r["label"] for r in rows]
        with torch.no_grad():
            p = clf.variant_proba([r["text"] for r in rows])
        figures: dict[str, float] = {}
        for prefix, probs in (("", p), ("single_", p[:, :1])):
            pred, conf, dist = ensemble(probs, clf.strategy, clf.renormalize)
            y_pred = [clf.classes[i] for i in pred.tolist()]
            if not prefix:
                self.last_predictions = y_pred
            report = calibration_report(y_true, y_pred, conf.tolist(), self.n_bins, dist.tolist(), clf.classes)
            report["acc"] = report.pop("accuracy")
            for key in ENSEMBLE_FIGURES if not prefix else SINGLE_FIGURES:
                figures[f"calib/{prefix}{key}"] = float(report[key])
        figures.update({"calib/n": float(len(rows)), "calib/n_bins": float(self.n_bins), "calib/k": float(clf.k)})
        return figures

    def printed(self, figures: dict[str, float]) -> dict[str, float]:
        return {f"calib/{k}": figures[f"calib/{k}"] for k in PLOTTED if f"calib/{k}" in figures}

    def plot(self, path: Path) -> Path | None:
        """Accuracy and ECE of the ensemble and of the single prompt over steps."""
        from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps, series_from_log

        kw = self.classifier_kwargs
        series = {name: series_from_log(self.history, f"calib/{name}") for name in PLOTTED}
        n = int(self.history[-1].get("calib/n", 0))
        title = f"{self.label} ({kw['variation']}, K={kw['k']}, {kw['strategy']}; n={n}, M={self.n_bins})"
        try:
            return plot_over_steps(series, path, title=title, ylabel="accuracy / ECE")
        except (PlotUnavailableError, ValueError):
            return None
