"""`trl-ext compare`: every arm trained as one stage of a recipe (the same model, data, seed, budget and optimiser
settings; a rerun keeps the finished arms), each final model measured on the same held-out rows with the same
generation settings, and one table, plot, JSON and CSV of every number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trl_ext.compare.arms import referenced_arm
from trl_ext.compare.callback import CompareEvalCallback
from trl_ext.compare.comparison import Comparison, flag_value, without_flag
from trl_ext.compare.evaluation import (
    arm_result,
    attach_reference_answers,
    evaluation_of,
    evaluation_plans,
)
from trl_ext.compare.metrics import head_to_head, metric_rows, paired_difference
from trl_ext.compare.report import group_breakdown, seed_summary, write_report


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
    measured = comparison.arm_models(model)  # what each untrained arm measures
    for arm in comparison.arms:
        view, _, evaluations = plans[arm.label]
        results.append(arm_result(view, arm, finals.get(arm.label), evaluations, measured[arm.label]))
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
    bases = {evaluation_of(a): r for a, r in zip(comparison.arms, results, strict=True) if a.is_start}
    if bases:
        report["paired_with"] = next(iter(bases.values()))["arm"] if len(bases) == 1 else "base"
        for arm, result in zip(comparison.arms, results, strict=True):
            base = bases.get(evaluation_of(arm))
            if not arm.is_start and base is not None:
                delta = paired_difference(result["per_row"], base["per_row"])
                result["vs_base"] = None if delta is None else {**delta, "base": base["arm"]}
                for label, figure in result["also"].items():  # forgetting on a general set reads off its own delta
                    other = paired_difference(figure["per_row"], base["also"][label]["per_row"])
                    figure["vs_base"] = None if other is None else {**other, "base": base["arm"]}
    if comparison.head_to_head:
        report["head_to_head"] = duels(comparison, results)
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


def duels(comparison: Comparison, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each head-to-head pair on every metric (the main one, then each --also_eval), row by row."""
    by_label = {result["arm"]: result for result in results}
    specs = [(comparison.metric, None), *((spec, spec.label) for spec in comparison.also)]
    out = []
    for a, b in comparison.head_to_head:
        for spec, also in specs:
            first, second = (
                (by_label[a], by_label[b]) if also is None else (by_label[a]["also"][also], by_label[b]["also"][also])
            )
            figures = head_to_head(first["per_row"], second["per_row"], spec.higher_is_better)
            out.append({"arm": a, "against": b, "metric": spec.label, **(figures or {})})
    return out


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
    comparison.resolve_metric_references(model)
    comparison.checked_pairs()
    return model, parsed


def dry_run(comparison: Comparison) -> str:
    """Everything `run_comparison` checks before a model loads (each arm's flags, options, data and columns, the
    evaluation rows), and the plan as text; nothing is trained or written."""
    from trl_ext.run.stage import describe_budget, describe_contributions, load_checked_dataset

    model, parsed = plan_arms(comparison)
    dataset_name = comparison.eval_dataset or parsed[0].script_args.dataset_name
    plans = evaluation_plans(comparison, dataset_name)
    rows = plans[""][1]
    own_items = all(spec.name.startswith("callback:") for spec in (comparison.metric, *comparison.also))
    where = (
        "the callbacks' own items" if own_items else f"{len(rows)} rows of {dataset_name} [{comparison.eval_split}]"
    )
    stages = f"{len(parsed)} stage{'s' if len(parsed) != 1 else ''}"
    lines = [
        f"trl-ext compare (dry run): {len(comparison.arms)} arms ({stages}) from {model}, measured by "
        f"{_metric_names(comparison)} on {where}"
    ]
    for arm in comparison.arms:
        if arm.is_start:
            lines.append(f"  {arm.label}: {model} as it is (untrained), measured like the others")
        elif arm.untrained:
            what = arm.options["model_name_or_path"]
            lines.append(f"  {arm.label}: {what} as it is (not trained again), measured like the others")
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
        # the comparison's shared contributions (the arm's own are in its options already)
        extras = "".join(f"; {phrase}" for phrase in describe_contributions(stage, leave_out=values))
        lines.append(
            f"  {name}: {values['method']} ({stage.base.name} base; {options}),{start} {describe_budget(stage.config)}"
            f" on {stage.script_args.dataset_name}{extras} -> {stage.config.output_dir} ({state})"
        )
    lines += [f"  head to head: {a} against {b}, row by row on every metric" for a, b in comparison.head_to_head]
    return "\n".join(lines)


def _metric_names(comparison: Comparison) -> str:
    also = ", ".join(spec.label for spec in comparison.also)
    return comparison.metric.label + (f" (also {also})" if also else "")
