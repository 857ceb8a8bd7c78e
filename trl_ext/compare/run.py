"""`trl-ext compare`: every arm trained as one stage of a recipe (the same model, data, seed, budget and optimiser
settings; a rerun keeps the finished arms), each final model measured on the same held-out rows with the same
generation settings, and one table, plot, JSON and CSV of every number."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl_ext.compare.arms import Arm, referenced_arm, resolve_references
from trl_ext.compare.callback import TRAIN_RECORD, CompareEvalCallback
from trl_ext.compare.metrics import (
    MetricSpec,
    check_metric,
    mean_and_interval,
    measure,
    metric_columns,
    metric_rows,
    paired_difference,
)

FINAL_RECORD = "compare_final.json"
REFERENCE_RECORD = "reference_answers.json"  # the untrained model's answers `unchanged` compares with, by key


@dataclass
class Comparison:
    arms: list[Arm]
    metric: MetricSpec
    also: list[MetricSpec] = field(default_factory=list)  # more metrics of the final models (`--also_eval`)
    output_dir: str = "outputs/compare"
    common: dict[str, Any] = field(default_factory=dict)  # recipe keys every arm shares (a YAML's top level)
    flags: list[str] = field(default_factory=list)  # command-line flags, applied to every arm
    eval_dataset: str | None = None  # default: the arms' dataset_name
    eval_dataset_config: str | None = None
    eval_split: str = "test"
    # transforms applied to the evaluation dataset before its rows are picked (the test part of a split transform)
    eval_transforms: Any = None
    eval_rows: int = 64
    eval_every: int = 0
    max_new_tokens: int = 64
    eval_batch_size: int = 16
    eval_groups: str | None = None  # a column of the rows: the metric per value of it as well
    seed: int = 0

    def recipe(self, model: str) -> dict[str, Any]:
        """The recipe whose stages are the arms' stages: each arm starts from `model`; a chained arm's later stages
        train from the stage before them, in folders under the arm's, and its last stage writes the arm's folder."""
        stages = []
        folders = {arm.label: model for arm in self.arms if arm.untrained}  # `arm:LABEL` -> the arm's model
        for arm, index, values in self.arm_stages():
            folder = Path(self.output_dir) / arm.label
            last = index == len(arm.then)
            folders[arm.label] = str(folder)
            values = resolve_references(values, folders)
            stage = {**values, "output_dir": str(folder if last else folder / f"stage-{index + 1}-{values['method']}")}
            if index == 0 and "model_name_or_path" not in values:  # an arm may start from another arm's model
                stage["model_name_or_path"] = model
            stages.append(stage)
        return {**self.common, "stages": stages}

    def arm_stages(self) -> list[tuple[Arm, int, dict[str, Any]]]:
        """(arm, the stage's index in the arm, the stage's method and options), in training order."""
        return [(arm, i, values) for arm in self.arms for i, values in enumerate(arm.stages())]

    def generation(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "batch_size": self.eval_batch_size, "seed": self.seed}

    def for_arm(self, arm: Arm) -> Comparison:
        """The comparison as `arm` is evaluated: itself, or with the arm's own evaluation transforms, dataset config
        and generation length (its metrics copied, so that answers measured for its rows stay its own)."""
        if not arm.evaluation:
            return self
        import copy

        return dataclasses.replace(
            self,
            metric=copy.copy(self.metric),
            also=[copy.copy(spec) for spec in self.also],
            eval_transforms=arm.evaluation.get("eval_transforms", self.eval_transforms),
            eval_dataset_config=arm.evaluation.get("eval_dataset_config", self.eval_dataset_config),
            max_new_tokens=int(arm.evaluation.get("eval_max_new_tokens", self.max_new_tokens)),
        )


def run_comparison(comparison: Comparison) -> dict[str, Any] | None:
    """Train (or keep) every arm, measure the final models, write compare.{json,csv,png} in the output folder and
    return the report (None on processes other than the main one)."""
    import os

    from trl_ext.plugin.records import Callback
    from trl_ext.run.stage import run_stages

    model, parsed = plan_arms(comparison)
    dataset_name = comparison.eval_dataset or parsed[0].script_args.dataset_name
    plans = evaluation_plans(comparison, dataset_name)  # misspelt metrics fail now, not after training
    rows = plans[""][1]
    if int(os.environ.get("RANK", "0")) == 0:  # only the main process measures
        for view, _, evaluations in {id(plan[0]): plan for plan in plans.values()}.values():
            attach_reference_answers(view, model, evaluations)
    finals = {}
    for (arm, _, _), stage in zip(comparison.arm_stages(), parsed, strict=True):
        finals[arm.label] = stage  # the arm's last stage: its output is the arm's model and folder
    for (arm, index, _), stage in zip(comparison.arm_stages(), parsed, strict=True):
        view, arm_rows, _ = plans[arm.label]
        # not a registered component: compare's own recorder, one per stage, writing the arm's record
        recorder = Callback(
            name="compare_eval",
            factory=lambda folder=finals[arm.label].config.output_dir, index=index, view=view, arm_rows=arm_rows: (
                CompareEvalCallback(
                    view.metric,
                    arm_rows,
                    view.eval_every,
                    **view.generation(),
                    output_dir=folder,
                    stage_index=index,
                )
            ),
        )
        stage.callbacks.append((recorder, {}))
    run_stages(parsed)
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    results = []
    for arm in comparison.arms:
        view, _, evaluations = plans[arm.label]
        results.append(arm_result(view, arm, finals.get(arm.label), evaluations, model))
    report = {
        "metric": comparison.metric.label,
        "also_metrics": [spec.label for spec in comparison.also],
        "higher_is_better": comparison.metric.higher_is_better,
        "eval": {
            "dataset": dataset_name,
            "split": comparison.eval_split,
            "rows": len(rows),
            **comparison.generation(),
        },
        "model": model,
        "arms": results,
    }
    # each trained arm against the starting model, row by row, measured the way the arm is (its own base arm when
    # arms evaluate their own way)
    bases = {_evaluation_of(a): r for a, r in zip(comparison.arms, results, strict=True) if a.untrained}
    if bases:
        report["paired_with"] = next(iter(bases.values()))["arm"] if len(bases) == 1 else "base"
        for arm, result in zip(comparison.arms, results, strict=True):
            base = bases.get(_evaluation_of(arm))
            if not arm.untrained and base is not None:
                delta = paired_difference(result["per_row"], base["per_row"])
                result["vs_base"] = None if delta is None else {**delta, "base": base["arm"]}
    if comparison.eval_groups:
        report["groups_column"] = comparison.eval_groups
        for arm, result in zip(comparison.arms, results, strict=True):
            view, arm_rows, _ = plans[arm.label]
            measured = metric_rows(view.metric, arm_rows)  # the rows behind per_row (`rows=N` keeps the first N)
            result["by_group"] = group_breakdown(result["per_row"], measured, comparison.eval_groups)
    groups: dict[str, list[dict[str, Any]]] = {}
    for arm, result in zip(comparison.arms, results, strict=True):
        if arm.group is not None:
            groups.setdefault(arm.group, []).append(result)
    if groups:
        report["over_seeds"] = [seed_summary(label, runs, report["metric"]) for label, runs in groups.items()]
    write_report(report, Path(comparison.output_dir))
    return report


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


def plan_arms(comparison: Comparison) -> tuple[str, list[Any]]:
    """The model every arm starts from and each arm parsed as a recipe stage (every flag and option checked)."""
    from trl_ext.run.arguments import DEFAULT_MODEL, parse_stage
    from trl_ext.run.recipe import stages as recipe_stages

    model = (
        flag_value(comparison.flags, "model_name_or_path")
        or comparison.common.get("model_name_or_path")
        or DEFAULT_MODEL
    )
    # a chained arm's later stages train from the stage before: a command-line model would restart them from it
    later_flags = without_flag(comparison.flags, "model_name_or_path")
    trained = {arm.label for arm in comparison.arms if not arm.untrained}
    parsed = []
    for i, (values, (_, index, own)) in enumerate(
        zip(recipe_stages(comparison.recipe(model)), comparison.arm_stages(), strict=True)
    ):
        values = dict(values)
        flags = comparison.flags if index == 0 and "model_name_or_path" not in own else later_flags
        trained_before = index == 0 and referenced_arm(own.get("model_name_or_path")) in trained
        start = values.pop("model_name_or_path") if trained_before else None  # not there yet: trained by then
        stage = parse_stage(values.pop("method"), flags, values, first=i == 0, in_recipe=True)
        if start is not None:
            stage.model_args.model_name_or_path, stage.model_given = start, True
            stage.asked = {**stage.asked, "model_name_or_path": start}
        parsed.append(stage)
    return model, parsed


def dry_run(comparison: Comparison) -> str:
    """Everything `run_comparison` checks before a model loads (each arm's flags, options, data and columns, the
    evaluation rows), and the plan as text; nothing is trained or written."""
    from trl_ext.run.stage import describe_budget, load_checked_dataset

    model, parsed = plan_arms(comparison)
    dataset_name = comparison.eval_dataset or parsed[0].script_args.dataset_name
    plans = evaluation_plans(comparison, dataset_name)
    rows = plans[""][1]
    lines = [
        f"trl-ext compare (dry run): {len(comparison.arms)} arms ({len(parsed)} stages) from {model}, measured by {_metric_names(comparison)} on "
        f"{len(rows)} rows of {dataset_name} [{comparison.eval_split}]"
    ]
    for arm in comparison.arms:
        if arm.untrained:
            lines.append(f"  {arm.label}: {model} as it is (untrained), measured like the others")
        if arm.evaluation:
            own = ", ".join(f"{k}={v}" for k, v in arm.evaluation.items())
            lines.append(f"  {arm.label} is evaluated its own way: {own} ({len(plans[arm.label][1])} rows)")
    for (arm, index, values), stage in zip(comparison.arm_stages(), parsed, strict=True):
        if stage.finished_earlier:
            state = "finished earlier: kept"
        else:
            load_checked_dataset(stage)
            state = "to train"
        options = ", ".join(f"{k}={v}" for k, v in values.items() if k != "method") or "defaults"
        name = f"{arm.label}" if not arm.then else f"{arm.label} stage {index + 1}/{len(arm.then) + 1}"
        start = "" if index == 0 else f" from stage {index}'s model,"
        lines.append(
            f"  {name}: {values['method']} ({stage.base.name} base; {options}),{start} {describe_budget(stage.config)}"
            f" on {stage.script_args.dataset_name} -> {stage.config.output_dir} ({state})"
        )
    return "\n".join(lines)


def checked_evaluations(
    comparison: Comparison, dataset_name: str, rows: list[dict[str, Any]]
) -> list[tuple[MetricSpec, list[dict[str, Any]], str]]:
    """(metric, its evaluation rows, its cache key) for `--eval` and every `--also_eval`, each metric checked (a
    misspelt judge or reward fails before any arm trains). Scoring metrics read the rows' completion form, generating
    ones their prompt form, so each metric picks its own rows."""
    specs = [comparison.metric, *comparison.also]
    labels = [spec.label for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"trl-ext compare: the metric {', '.join(repeated)} is asked for twice (--eval, --also_eval)."
        )
    evaluations = []
    for spec in specs:
        check_metric(spec)
        spec_rows = rows if spec is comparison.metric else eval_rows(comparison, dataset_name, spec)
        evaluations.append((spec, spec_rows, _evaluation_key(comparison, dataset_name, spec_rows, spec)))
    return evaluations


def _evaluation_of(arm: Arm) -> str:
    return json.dumps(arm.evaluation, sort_keys=True, default=str)


def evaluation_plans(
    comparison: Comparison, dataset_name: str
) -> dict[str, tuple[Comparison, list[dict[str, Any]], list[tuple[MetricSpec, list[dict[str, Any]], str]]]]:
    """For each arm: the comparison as the arm is evaluated, its evaluation rows and its checked metrics (arms that
    evaluate alike share one); under "" the comparison's own, which the report describes."""
    own = eval_rows(comparison, dataset_name)
    shared: dict[str, Any] = {"{}": (comparison, own, checked_evaluations(comparison, dataset_name, own))}
    plans = {"": shared["{}"]}
    for arm in comparison.arms:
        key = _evaluation_of(arm)
        if key not in shared:
            view = comparison.for_arm(arm)
            rows = eval_rows(view, dataset_name)
            shared[key] = (view, rows, checked_evaluations(view, dataset_name, rows))
        plans[arm.label] = shared[key]
    return plans


def attach_reference_answers(
    comparison: Comparison, model_name: str, evaluations: list[tuple[MetricSpec, list[dict[str, Any]], str]]
) -> None:
    """Give every `unchanged` metric the untrained model's greedy answers to its rows, generated before any arm trains
    with the settings the arms are measured with (kept in the output folder, so a rerun does not generate again)."""
    from trl_ext.compare.metrics import reference_answers

    wanted = [(spec, rows, key) for spec, rows, key in evaluations if spec.name == "unchanged"]
    if not wanted:
        return
    path = Path(comparison.output_dir) / REFERENCE_RECORD
    kept = json.loads(path.read_text()) if path.is_file() else {}
    missing = [(spec, rows, key) for spec, rows, key in wanted if key not in kept]
    if missing:
        from trl_ext.compat.sharding import whole_model_loading
        from trl_ext.models import load_tokenizer, load_trained

        with whole_model_loading():
            model = load_trained(model_name)
        tokenizer = load_tokenizer(model_name)
        generation = {k: v for k, v in comparison.generation().items() if k != "seed"}
        for spec, rows, key in missing:
            kept[key] = reference_answers(spec, model, tokenizer, rows, **generation)
        del model
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept))
    for spec, _, key in wanted:
        spec.reference = kept[key]


def _metric_names(comparison: Comparison) -> str:
    also = ", ".join(spec.label for spec in comparison.also)
    return comparison.metric.label + (f" (also {also})" if also else "")


def eval_rows(comparison: Comparison, dataset_name: str, metric: MetricSpec | None = None) -> list[dict[str, Any]]:
    from trl_ext.data import load_dataset

    metric = metric or comparison.metric
    form = "sft" if metric.name in ("perplexity", "choice") else "grpo"
    if dataset_name.startswith("builtin:"):  # a built-in with no prompt-only form: its own rows hold the prompts
        from trl_ext.plugin.registry import get

        forms = get("dataset", dataset_name.removeprefix("builtin:")).forms
        form = form if form in forms else forms[0]
    data = load_dataset(dataset_name, comparison.eval_dataset_config, form=form)
    if comparison.eval_transforms:
        data = _transformed(comparison.eval_transforms, data, dataset_name)
    if comparison.eval_split not in data:
        raise ValueError(
            f"trl-ext compare: {dataset_name} has no split {comparison.eval_split!r} to evaluate on (splits: "
            f"{', '.join(data)}); pass --eval_split, or --eval_dataset."
        )
    split = data[comparison.eval_split]
    rows = split.select(range(min(comparison.eval_rows, len(split)))).to_list()
    if not rows:
        raise ValueError(f"trl-ext compare: {dataset_name} [{comparison.eval_split}] has no rows.")
    need = metric_columns(metric)
    if comparison.eval_groups and metric is comparison.metric:
        need.append(comparison.eval_groups)
    missing = [c for c in need if c not in rows[0]]
    if missing:
        raise ValueError(
            f"trl-ext compare: the evaluation rows lack {', '.join(missing)} (have {', '.join(rows[0])})."
        )
    return rows


def _transformed(spec: Any, data: Any, dataset_name: str) -> Any:
    """`data` after the evaluation transforms (each checked as `trl-ext train` checks a stage's); a transform that
    needs the model cannot run here, before any arm has trained."""
    from trl_ext.run.arguments import resolve_steps
    from trl_ext.run.stage import apply_transforms

    steps = resolve_steps("transform", spec)
    for record, _ in steps:
        if getattr(record, "needs_model", False):
            raise ValueError(
                f"trl-ext compare: --eval_transforms {record.name} needs a model; evaluation rows are picked before "
                "any arm trains, so only model-free transforms apply (a split, a filter by column)."
            )
    return apply_transforms(steps, data, dataset_name)


def _evaluation_key(
    comparison: Comparison, dataset_name: str, rows: list[dict[str, Any]], metric: MetricSpec | None = None
) -> str:
    """What a cached final measurement must match: the metric, its options, the rows and the generation settings."""
    metric = metric or comparison.metric
    text = json.dumps(
        [metric.name, metric.options, dataset_name, rows, comparison.generation()],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached_finals(path: Path) -> dict[str, Any]:
    """The final measurements kept in an arm's folder, by evaluation key (a file from before `--also_eval` held
    one: {"key", "values", "figures"})."""
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    if "key" in record:
        return {record["key"]: {"values": record["values"], "figures": record["figures"]}}
    return record.get("finals", {})


def _summary(final: dict[str, Any]) -> tuple[float, float, float]:
    """(mean, 95% low, 95% high) of a final measurement; a callback's figure that keeps no item values has no
    interval."""
    if final["values"]:
        return mean_and_interval(final["values"])
    return next(iter(final["figures"].values())), math.nan, math.nan


def arm_result(
    comparison: Comparison,
    arm: Arm,
    stage: Any,
    evaluations: list[tuple[MetricSpec, list[dict[str, Any]], str]],
    start_model: str = "",
) -> dict[str, Any]:
    """The arm's row of the table: its final model measured by every metric of `evaluations` (or the cached
    measurement of the same evaluation; the model loads once, only when one is missing); the untrained arm (no
    `stage`) measures `start_model`, the model every arm starts from."""
    from trl_ext.compat.sharding import whole_model_loading
    from trl_ext.models import load_tokenizer, load_trained

    folder = Path(comparison.output_dir) / arm.label if stage is None else Path(stage.config.output_dir)
    source = start_model if stage is None else str(folder)
    cached = folder / FINAL_RECORD
    kept = _cached_finals(cached)
    finals, model = {}, None
    for spec, rows, key in evaluations:
        if key not in kept:
            if model is None:
                with whole_model_loading():  # after a ZeRO-3 run, the main process measures the saved model alone
                    model = load_trained(source)
                tokenizer = load_tokenizer(source)
            values, figures = measure(spec, model, tokenizer, rows, **comparison.generation())
            kept[key] = {"values": values, "figures": figures}
        finals[spec.label] = kept[key]
    if model is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"finals": kept}))
        del model
    train = json.loads((folder / TRAIN_RECORD).read_text()) if (folder / TRAIN_RECORD).is_file() else {}
    label = comparison.metric.label
    final = finals[label]
    mean, low, high = _summary(final)
    also = {}
    for spec in comparison.also:
        extra_mean, extra_low, extra_high = _summary(finals[spec.label])
        also[spec.label] = {
            "mean": extra_mean,
            "ci_low": extra_low,
            "ci_high": extra_high,
            "per_row": finals[spec.label]["values"],
        }
    history = [(h["step"], h[label]) for h in train.get("history", []) if label in h]
    history.append((train.get("steps", 0 if stage is None else stage.config.max_steps), mean))
    return {
        "arm": arm.label,
        "method": arm.methods,
        "options": arm.options if not arm.then else [values for values in arm.stages()],
        label: mean,
        "ci_low": low,
        "ci_high": high,
        "per_row": final["values"],
        "also": also,
        "history": history,
        **({"steps": 0} if stage is None else {}),
        **{k: v for k, v in train.items() if k != "history"},
        "output_dir": str(folder),
        **({"evaluation": arm.evaluation} if arm.evaluation else {}),
    }


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


def format_table(report: dict[str, Any]) -> str:
    text = _aligned(*table_rows(report))
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
    keys[5:5] = extra  # after the main metric's interval, as in the table

    def value(arm: dict[str, Any], key: str) -> Any:
        if key.startswith("vs_base"):
            field_name = {"vs_base": "mean"}.get(key, key.removeprefix("vs_base_"))
            return (arm.get("vs_base") or {}).get(field_name)
        for label in also:
            for suffix, field_name in (("", "mean"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                if key == f"{label}{suffix}":
                    return (arm.get("also") or {}).get(label, {}).get(field_name)
        return arm.get(key)

    with (folder / "compare.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(keys)
        for arm in report["arms"]:
            writer.writerow(["" if _missing(value(arm, k)) else value(arm, k) for k in keys])
    markdown = _markdown(*table_rows(report))
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


def without_flag(flags: list[str], name: str) -> list[str]:
    """`flags` less `--name V` / `--name=V`."""
    out, skip = [], False
    for i, flag in enumerate(flags):
        if skip:
            skip = False
        elif flag == f"--{name}":
            skip = i + 1 < len(flags)
        elif not flag.startswith(f"--{name}="):
            out.append(flag)
    return out


def flag_value(flags: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` among command-line flags (None when absent)."""
    for i, flag in enumerate(flags):
        if flag == f"--{name}" and i + 1 < len(flags):
            return flags[i + 1]
        if flag.startswith(f"--{name}="):
            return flag.split("=", 1)[1]
    return None
