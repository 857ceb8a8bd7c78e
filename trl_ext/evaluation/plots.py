"""PNG plots of figures over training steps: what an evaluation callback, `trl-ext evaluate` and `trl-ext compare`
draw next to a run's logs. matplotlib comes with the `eval` extra (`pip install "trl-ext[eval]"`); it draws off-screen
(the Agg backend), so no display is needed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Series = Sequence[tuple[float, float]]  # (step, value) pairs


class PlotUnavailableError(ImportError):
    pass


def series_from_log(log_history: Iterable[Mapping[str, Any]], metric: str) -> list[tuple[float, float]]:
    """The (step, value) pairs of `metric` in a Trainer's `state.log_history` (entries without it, or with a value
    that is not a finite number, are skipped; a step logged twice keeps its last value)."""
    by_step: dict[float, float] = {}
    for entry in log_history:
        value, step = entry.get(metric), entry.get("step")
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and step is not None
        ):
            by_step[float(step)] = float(value)
    return sorted(by_step.items())


def plot_over_steps(
    series: Mapping[str, Series], path: str | Path, *, title: str = "", ylabel: str = "", xlabel: str = "step"
) -> Path:
    """Draw each named series (a line with markers) on one set of axes and save a PNG at `path`; returns the path.
    Raises PlotUnavailableError without matplotlib, and ValueError when no series has a point."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(
            'Plots need matplotlib: pip install "trl-ext[eval]" (or pip install matplotlib).'
        ) from None
    drawn = {name: list(points) for name, points in series.items() if points}
    if not drawn:
        raise ValueError(f"Nothing to plot for {title or path}: every series is empty.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for name, points in drawn.items():
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, marker="o", markersize=3, label=name)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        if title:
            axes.set_title(title)
        axes.grid(alpha=0.3)
        if len(drawn) > 1:
            axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
