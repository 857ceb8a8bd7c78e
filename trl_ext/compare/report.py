"""The report of a comparison: summaries over seeds and groups of rows, the table (text and Markdown) and the files
(compare.json, compare.csv, compare.md, compare.png)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trl_ext.compare.metrics import mean_and_interval


def group_breakdown(values: list[float], rows: list[dict[str, Any]], column: str) -> dict[str, dict[str, Any]]:
    """The metric's mean and 95% interval over the rows of each value of `column` (a row holding a list of values
    counts in each), in order of first appearance; {} when the metric gave no per-row values."""
    if len(values) != len(rows):
        return {}
    members: dict[str, list[float]] = {}
    for value, row in zip(values, rows, strict=True):
        keys = row[column] if isinstance(row[column], (list, tuple)) else [row[column]]
        for key in keys:
            members.setdefault(str(key), []).append(value)
    out = {}
    for key, group in members.items():
        mean, low, high = mean_and_interval(group)
        out[key] = {"mean": mean, "ci_low": low, "ci_high": high, "rows": len(group)}
    return out


def group_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-group table: one row per arm, one column per value of the groups column, "mean (n)"."""
    keys: list[str] = []
    for arm in report["arms"]:
        keys += [key for key in arm.get("by_group", {}) if key not in keys]
    header = ["arm", *[f"{report['groups_column']}={key}" for key in keys]]
    rows = []
    for arm in report["arms"]:
        cells = [arm["arm"]]
        for key in keys:
            group = arm.get("by_group", {}).get(key)
            cells.append("-" if not group or _missing(group["mean"]) else f"{group['mean']:.4f} ({group['rows']})")
        rows.append(cells)
    return header, rows


def seed_summary(label: str, runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """An arm's metric over its seeds' runs: the mean, the sample standard deviation (NaN for one seed), the range."""
    import statistics

    values = [run[metric] for run in runs]
    finite = [v for v in values if not _missing(v)]
    return {
        "arm": label,
        "method": runs[0]["method"],
        "seeds": len(runs),
        metric: statistics.fmean(finite) if finite else math.nan,
        "sd": statistics.stdev(finite) if len(finite) > 1 else math.nan,
        "min": min(finite, default=math.nan),
        "max": max(finite, default=math.nan),
        "per_seed": values,
    }


def seed_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The over-seeds table as strings (empty without seeds)."""
    metric = report["metric"]
    header = ["arm", "method", "seeds", f"{metric} (mean)", "sd", "min", "max"]
    rows = []
    for summary in report.get("over_seeds", []):
        cells = [summary["arm"], summary["method"], str(summary["seeds"])]
        for key in (metric, "sd", "min", "max"):
            cells.append("-" if _missing(summary[key]) else f"{summary[key]:.4f}")
        rows.append(cells)
    return header, rows


COLUMNS = (
    ("arm", "arm", "{}"),
    ("method", "method", "{}"),
    (None, "{metric}", "{:.4f}"),
    ("ci", "95% CI", "{}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("train_entropy", "entropy", "{:.3f}"),
    ("steps", "steps", "{}"),
    ("tokens", "tokens", "{:,.0f}"),
    ("step_time_s", "s/step", "{:.2f}"),
    ("cpu_s", "CPU-s", "{:.1f}"),
    ("peak_memory_mib", "peak MiB", "{:.0f}"),
    ("trainable_params", "trainable", "{:,}"),
)


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table as strings: the header, then one row per arm (numbers formatted; '-' where unknown); each
    `--also_eval` metric is a column after the main one's interval, "mean [low, high]"."""
    metric = report["metric"]
    also = report.get("also_metrics") or []
    paired = report.get("paired_with")
    header = []
    for key, title, _ in COLUMNS:
        header.append(title.format(metric=metric))
        if key == "ci":
            header += ([f"Δ vs {paired}"] if paired else []) + also
    rows = []
    for arm in report["arms"]:
        cells = []
        for key, _, fmt in COLUMNS:
            if key == "ci" and (also or paired):
                cells.append(_ci_cell(arm["ci_low"], arm["ci_high"]))
                cells += [_delta_cell(arm.get("vs_base"))] if paired else []
                cells += [_also_cell(arm.get("also", {}).get(label)) for label in also]
                continue
            if key is None:
                value = arm[metric]
            elif key == "ci":
                low, high = arm["ci_low"], arm["ci_high"]
                value = None if _missing(low) else f"[{low:.4f}, {high:.4f}]"
                fmt = "{}"
            elif key == "tokens":  # GRPO/RLOO: generated tokens; others: tokens trained on
                value = arm.get("generated_tokens") or arm.get("num_tokens")
                if len(arm.get("per_stage") or []) > 1:  # a chained arm: each stage's own count
                    value, fmt = " + ".join(map(_stage_tokens, arm["per_stage"])), "{}"
            elif key == "steps" and len(arm.get("per_stage") or []) > 1:
                value, fmt = " + ".join(str(stage["steps"]) for stage in arm["per_stage"]), "{}"
            else:
                value = arm.get(key)
            cells.append("-" if _missing(value) else fmt.format(value))
        rows.append(cells)
    return header, rows


def _ci_cell(low: float, high: float) -> str:
    return "-" if _missing(low) else f"[{low:.4f}, {high:.4f}]"


def _also_cell(figure: dict[str, Any] | None) -> str:
    if not figure or _missing(figure["mean"]):
        return "-"
    interval = "" if _missing(figure["ci_low"]) else f" [{figure['ci_low']:.4f}, {figure['ci_high']:.4f}]"
    return f"{figure['mean']:.4f}{interval}"


def _delta_cell(delta: dict[str, Any] | None) -> str:
    if not delta or _missing(delta["mean"]):
        return "-"
    return f"{delta['mean']:+.4f} [{delta['ci_low']:+.4f}, {delta['ci_high']:+.4f}]"


def _stage_tokens(stage: dict[str, Any]) -> str:
    if stage.get("generated_tokens"):
        return f"{stage['generated_tokens']:,.0f} gen"
    return "-" if _missing(stage.get("trained_tokens")) else f"{stage['trained_tokens']:,.0f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def also_delta_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The `--also_eval` metrics' paired differences from the base arm (one row per trained arm; empty without a
    base arm or other metrics): forgetting on a general set beside the task metric's `Δ vs base`."""
    also = report.get("also_metrics") or []
    if not (report.get("paired_with") and also):
        return [], []
    header = ["arm", *[f"{label} Δ vs {report['paired_with']}" for label in also]]
    rows = []
    for arm in report["arms"]:
        deltas = [(arm.get("also") or {}).get(label, {}).get("vs_base") for label in also]
        if any(delta is not None for delta in deltas):
            rows.append([arm["arm"], *map(_delta_cell, deltas)])
    return header, rows


def duel_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per head-to-head pair and metric: A's wins / ties / losses against B, its win rate and A - B."""
    header = ["arm", "against", "metric", "wins", "ties", "losses", "win rate", "mean A - B [paired 95%]"]
    rows = []
    for duel in report.get("head_to_head") or []:
        if "rows" not in duel:
            rows.append([duel["arm"], duel["against"], duel["metric"], *["-"] * 5])
            continue
        rows.append(
            [
                duel["arm"],
                duel["against"],
                duel["metric"],
                *(str(duel[k]) for k in ("wins", "ties", "losses")),
                f"{duel['wins']}/{duel['rows']} = {duel['win_rate']:.3f}",
                _delta_cell(duel),
            ]
        )
    return header, rows


def format_table(report: dict[str, Any]) -> str:
    text = _aligned(*table_rows(report))
    header, rows = also_delta_rows(report)
    if rows:
        text += "\n\nother metrics against the base arm (paired 95% intervals)\n" + _aligned(header, rows)
    if report.get("head_to_head"):
        text += "\n\nhead to head (the same rows)\n" + _aligned(*duel_rows(report))
    if report.get("groups_column"):
        text += f"\n\n{report['metric']} by {report['groups_column']} (rows)\n" + _aligned(*group_rows(report))
    if report.get("over_seeds"):
        text += "\n\nover seeds\n" + _aligned(*seed_rows(report))
    return text


def _aligned(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def write_report(report: dict[str, Any], folder: Path) -> None:
    """compare.json (every number), compare.csv (the table's numbers, unformatted), compare.png (the metric over
    steps per arm) and compare.md (the table as Markdown, for a README)."""
    import csv

    from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(json.dumps(report, indent=2, default=str))
    metric = report["metric"]
    keys = [
        "arm",
        "method",
        metric,
        "ci_low",
        "ci_high",
        "train_loss",
        "train_entropy",
        "steps",
        "num_tokens",
        "generated_tokens",
        "step_time_s",
        "cpu_s",
        "peak_memory_mib",
        "trainable_params",
    ]
    also = report.get("also_metrics") or []
    extra = [f"{label}{suffix}" for label in also for suffix in ("", "_ci_low", "_ci_high")]
    if report.get("paired_with"):
        extra[:0] = ["vs_base", "vs_base_ci_low", "vs_base_ci_high"]
        extra += [f"{label}_vs_base{suffix}" for label in also for suffix in ("", "_ci_low", "_ci_high")]
    keys[5:5] = extra  # after the main metric's interval, as in the table
    fields = (("", "mean"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high"))

    def value(arm: dict[str, Any], key: str) -> Any:
        if key.startswith("vs_base"):
            field_name = {"vs_base": "mean"}.get(key, key.removeprefix("vs_base_"))
            return (arm.get("vs_base") or {}).get(field_name)
        for label in also:
            figure = (arm.get("also") or {}).get(label, {})
            for suffix, field_name in fields:
                if key == f"{label}{suffix}":
                    return figure.get(field_name)
                if key == f"{label}_vs_base{suffix}":
                    return (figure.get("vs_base") or {}).get(field_name)
        return arm.get(key)

    with (folder / "compare.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(keys)
        for arm in report["arms"]:
            writer.writerow(["" if _missing(value(arm, k)) else value(arm, k) for k in keys])
    markdown = _markdown(*table_rows(report))
    header, rows = also_delta_rows(report)
    if rows:
        markdown += ["", "Other metrics against the base arm (paired 95% intervals):", "", *_markdown(header, rows)]
    if report.get("head_to_head"):
        markdown += ["", "Head to head (the same rows):", "", *_markdown(*duel_rows(report))]
    if report.get("groups_column"):
        markdown += ["", f"{metric} by {report['groups_column']} (rows):", "", *_markdown(*group_rows(report))]
    if report.get("over_seeds"):
        markdown += ["", "Over seeds:", "", *_markdown(*seed_rows(report))]
    (folder / "compare.md").write_text("\n".join(markdown) + "\n")
    try:
        plot_over_steps(
            {arm["arm"]: arm["history"] for arm in report["arms"]},
            folder / "compare.png",
            title=f"{metric} on {report['eval']['dataset']} [{report['eval']['split']}], {report['eval']['rows']} rows",
            ylabel=metric,
        )
    except PlotUnavailableError as exc:
        print(f"trl-ext compare: no plot ({exc})")


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
