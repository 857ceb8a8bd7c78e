"""How a comparison measures its arms: the evaluation rows of each arm (its own form where it asks for one), every
metric checked before training, the untrained model's reference answers, and each final model measured once (kept in
its folder, so a rerun reuses it) into the arm's row of the report."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from trl_ext.compare.arms import Arm
from trl_ext.compare.callback import TRAIN_RECORD
from trl_ext.compare.comparison import FINAL_RECORD, REFERENCE_RECORD, Comparison
from trl_ext.compare.metrics import MetricSpec, check_metric, mean_and_interval, measure, metric_columns


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
            f"trl-ext compare: the metric {', '.join(repeated)} is asked for twice (--eval, --also_eval); to measure it "
            "twice (on another prompt column or dataset) give one a label=NAME."
        )
    evaluations = []
    for spec in specs:
        check_metric(spec)
        spec_rows = rows if spec is comparison.metric else eval_rows(comparison, dataset_name, spec)
        evaluations.append((spec, spec_rows, _evaluation_key(comparison, dataset_name, spec_rows, spec)))
    return evaluations


def evaluation_of(arm: Arm) -> str:
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
        key = evaluation_of(arm)
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


def eval_rows(comparison: Comparison, dataset_name: str, metric: MetricSpec | None = None) -> list[dict[str, Any]]:
    """The rows `metric` measures: the comparison's evaluation split, or the data the metric names itself
    (`dataset=`, `dataset_config=`, `split=`: general ability measured on data unrelated to the training mix). An
    arm's `eval_transforms` (its own prompt form) apply to the comparison's evaluation data only."""
    from trl_ext.data import load_dataset

    metric = metric or comparison.metric
    elsewhere = "dataset" in metric.options or "dataset_config" in metric.options
    name = str(metric.options.get("dataset", dataset_name))
    config = metric.options.get(
        "dataset_config", None if "dataset" in metric.options else comparison.eval_dataset_config
    )
    split_name = str(metric.options.get("split", comparison.eval_split))
    form = "sft" if metric.name in ("perplexity", "choice") else "grpo"
    if name.startswith("builtin:"):  # a built-in with no prompt-only form: its own rows hold the prompts
        from trl_ext.plugin.registry import get

        forms = get("dataset", name.removeprefix("builtin:")).forms
        form = form if form in forms else forms[0]
    data = load_dataset(name, config, form=form)
    if comparison.eval_transforms and not elsewhere:
        data = _transformed(comparison.eval_transforms, data, name)
    where = f"{name}{f' ({config})' if config else ''}"
    if split_name not in data:
        hint = "the metric's split=" if "split" in metric.options or elsewhere else "--eval_split, or --eval_dataset"
        raise ValueError(
            f"trl-ext compare: {where} has no split {split_name!r} to evaluate {metric.label} on (splits: "
            f"{', '.join(data)}); pass {hint}."
        )
    split = data[split_name]
    rows = split.select(range(min(comparison.eval_rows, len(split)))).to_list()
    if not rows:
        raise ValueError(f"trl-ext compare: {where} [{split_name}] has no rows.")
    need = metric_columns(metric)
    if comparison.eval_groups and metric is comparison.metric:
        need.append(comparison.eval_groups)
    missing = [c for c in need if c not in rows[0]]
    if missing:
        raise ValueError(
            f"trl-ext compare: the rows {metric.label} is measured on ({where} [{split_name}]) lack "
            f"{', '.join(missing)} (have {', '.join(rows[0])})."
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
    # the model's greedy answers and callback evaluations, shared by the metrics that read the same ones
    memo: dict[Any, Any] = {}
    for spec, rows, key in evaluations:
        if stage is None:  # an untrained arm's folder holds no model: its measurements are kept per model measured
            key = f"{key}@{source}"
        if key not in kept:
            if model is None:
                with whole_model_loading():  # after a ZeRO-3 run, the main process measures the saved model alone
                    model = load_trained(source)
                tokenizer = load_tokenizer(source)
            values, figures = measure(spec, model, tokenizer, rows, **comparison.generation(), memo=memo)
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
