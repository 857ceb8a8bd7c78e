"""Calibration of a classifier's confidences: expected and maximum calibration error over equal-width bins, with
accuracy, macro-F1 and, given the predicted distributions, the multi-class Brier score and NLL.

Confidence is the probability the model gives its own prediction; a calibrated model is right that often. ECE
depends on the number of bins and on the number of items, so the report carries `n` and `n_bins` beside it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any


def bin_index(confidence: float, n_bins: int) -> int:
    """Bin b covers [b/M, (b+1)/M); a confidence of exactly 1.0 goes in the last bin."""
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence!r} is outside [0, 1]")
    return min(int(math.floor(confidence * n_bins)), n_bins - 1)


def calibration_bins(correct: Sequence[bool], confidences: Sequence[float], n_bins: int = 10) -> list[dict[str, Any]]:
    """One dict per non-empty bin, by bin: `bin`, `count`, `accuracy`, `confidence` (the mean in the bin), `gap`
    (|accuracy - confidence|): what a reliability diagram draws."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r} must be an integer >= 1")
    if len(correct) != len(confidences):
        raise ValueError(f"Got {len(correct)} correctness flags and {len(confidences)} confidences.")
    sums: dict[int, list[float]] = {}
    for ok, conf in zip(correct, confidences, strict=True):
        entry = sums.setdefault(bin_index(float(conf), n_bins), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += float(bool(ok))
        entry[2] += float(conf)
    return [
        {"bin": b, "count": int(n), "accuracy": hits / n, "confidence": conf / n, "gap": abs(hits / n - conf / n)}
        for b, (n, hits, conf) in sorted(sums.items())
    ]


def expected_calibration_error(correct: Sequence[bool], confidences: Sequence[float], n_bins: int = 10) -> float:
    """ECE = sum_b |B_b|/n |acc(B_b) - conf(B_b)| over `n_bins` equal-width bins (nan without items)."""
    bins = calibration_bins(correct, confidences, n_bins)
    n = sum(b["count"] for b in bins)
    return sum(b["count"] / n * b["gap"] for b in bins) if n else math.nan


def macro_f1(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> float:
    """Unweighted mean over `labels` (default: every label seen in either sequence) of 2TP / (2TP + FP + FN), a
    class with no true and no predicted item counting 0."""
    classes = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred), key=str)
    if not classes:
        return math.nan
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


def calibration_report(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    conf: Sequence[float],
    n_bins: int = 10,
    proba: Sequence[Sequence[float]] | None = None,
    labels: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """accuracy, macro_f1, ece, mce (the largest bin gap), conf_mean, n and n_bins; with `proba` (one distribution
    over `labels` per item, `labels` then required) also brier (sum over classes of (p_c - 1[y = c])^2, averaged
    over items) and nll (-mean log p_y)."""
    if not len(y_true) == len(y_pred) == len(conf):
        raise ValueError(f"Got {len(y_true)} labels, {len(y_pred)} predictions and {len(conf)} confidences.")
    correct = [t == p for t, p in zip(y_true, y_pred, strict=True)]
    bins = calibration_bins(correct, conf, n_bins)
    n = len(correct)
    report = {
        "accuracy": sum(correct) / n if n else math.nan,
        "macro_f1": macro_f1(y_true, y_pred, labels),
        "ece": expected_calibration_error(correct, conf, n_bins),
        "mce": max((b["gap"] for b in bins), default=math.nan),
        "conf_mean": sum(float(c) for c in conf) / n if n else math.nan,
        "n": float(n),
        "n_bins": float(n_bins),
    }
    if proba is not None:
        if labels is None:
            raise ValueError("calibration_report: proba needs labels (the class of each column)")
        if len(proba) != n:
            raise ValueError(f"Got {len(proba)} distributions for {n} items.")
        index = {c: i for i, c in enumerate(labels)}
        brier = nll = 0.0
        for t, row in zip(y_true, proba, strict=True):
            brier += sum((float(p) - (index[t] == i)) ** 2 for i, p in enumerate(row))
            p_true = float(row[index[t]])
            nll += -math.log(p_true) if p_true > 0 else math.inf
        report["brier"] = brier / n if n else math.nan
        report["nll"] = nll / n if n else math.nan
    return report
