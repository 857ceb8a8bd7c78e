"""branch_filter's selection (card step 4) and the `branch_filter` transform on the curation runner.

Rules, over the trajectories' `metric` (branch_rate by default; b_per_1k or n_branch also work):
- mode="quantile": drop the floor(drop_frac x n) highest-scoring trajectories (a stable ranking: equal scores keep
  the earlier row), i.e. keep the more convergent part; drop_frac=0 keeps everything (plain SFT data).
- mode="threshold": keep the trajectories with metric <= max_rate.
- per_problem=True: instead, keep the least branching trajectory of each problem (`problem_id`; the earliest on a
  tie; a row without a problem id is a problem of its own), which keeps the problem coverage fixed.

The transform scores every row through `trl_ext.data.curation.run_curation`, so `scores.jsonl` (the per-row scores,
the markers hit, kept/dropped and why) and `summary.json` land next to `trl-ext transform --output`, and the kept
rows get the columns `branch_rate`, `n_branch` and `n_steps`.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation

from .score import MIN_STEP_CHARS, as_text, branch_score, reasoning_part

MODES = ("quantile", "threshold")
METRICS = ("branch_rate", "b_per_1k", "n_branch")


def select_rows(
    values: Sequence[float],
    drop_frac: float = 0.5,
    mode: str = "quantile",
    max_rate: float | None = None,
    per_problem: bool = False,
    problems: Sequence[Any] | None = None,
) -> list[tuple[bool, str]]:
    """(kept, reason) per trajectory from its metric value."""
    n = len(values)
    if per_problem:
        groups: dict[Any, int] = {}
        for i in range(n):
            pid = problems[i] if problems is not None and problems[i] is not None else ("row", i)
            if pid not in groups or values[i] < values[groups[pid]]:
                groups[pid] = i
        best = set(groups.values())
        return [
            (True, "kept") if i in best else (False, "a less branching trajectory of the problem") for i in range(n)
        ]
    if mode == "threshold":
        if max_rate is None:
            raise ValueError("branch_filter: mode='threshold' needs max_rate.")
        return [(True, "kept") if v <= max_rate else (False, f"above max_rate {max_rate:g}") for v in values]
    if mode != "quantile":
        raise ValueError(f"branch_filter: mode must be one of {MODES}, got {mode!r}.")
    if not 0.0 <= drop_frac <= 1.0:
        raise ValueError(f"branch_filter: drop_frac must be in [0, 1], got {drop_frac!r}.")
    n_drop = math.floor(drop_frac * n + 1e-9)
    ranked = sorted(range(n), key=lambda i: (values[i], i))  # stable: ties keep the earlier row
    dropped = set(ranked[n - n_drop :]) if n_drop else set()
    return [(False, f"in the top {drop_frac:g} by branching") if i in dropped else (True, "kept") for i in range(n)]


def resolve_classifier(classifier: Any) -> Callable[[str, list[str]], bool] | None:
    """A step classifier given as a callable or as an import path "package.module:name" (from the CLI)."""
    if classifier is None or callable(classifier):
        return classifier
    if isinstance(classifier, str) and ":" in classifier:
        module, _, name = classifier.partition(":")
        return getattr(importlib.import_module(module), name)
    raise ValueError(f"branch_filter: classifier must be a callable or 'module:function', got {classifier!r}.")


def _token_counter(tokenizer: Any) -> Callable[[str], int] | None:
    if tokenizer is None:
        return None
    if isinstance(tokenizer, str):
        from trl_ext.models import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_branch_filter_transform(
    drop_frac: float = 0.5,
    mode: str = "quantile",
    max_rate: float | None = None,
    metric: str = "branch_rate",
    per_problem: bool = False,
    classifier: Any = None,
    min_step_chars: int = MIN_STEP_CHARS,
    count_returns: bool = True,
    completion_column: str = "completion",
    problem_column: str = "problem_id",
    source_column: str | None = "style",
    tokenizer: Any = None,
    batch_size: int = 64,
    curation_dir: str | None = None,
):
    """The `branch_filter` transform: score each trajectory's branching and drop the most branch-heavy ones."""
    if metric not in METRICS:
        raise ValueError(f"branch_filter: metric must be one of {METRICS}, got {metric!r}.")
    if mode not in MODES:
        raise ValueError(f"branch_filter: mode must be one of {MODES}, got {mode!r}.")
    if mode == "threshold" and max_rate is None and not per_problem:
        raise ValueError("branch_filter: mode='threshold' needs max_rate.")
    if not 0.0 <= float(drop_frac) <= 1.0:
        raise ValueError(f"branch_filter: drop_frac must be in [0, 1], got {drop_frac!r}.")
    step_classifier = resolve_classifier(classifier)
    count_tokens = _token_counter(tokenizer)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            text = as_text(row.get(completion_column))
            tokens = count_tokens(reasoning_part(text)) if count_tokens is not None else None
            out.append(branch_score(text, step_classifier, min_step_chars, count_returns, num_tokens=tokens))
        return out

    def decide(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        problems = [row.get(problem_column) for row in rows] if per_problem else None
        verdicts = select_rows([float(s[metric]) for s in scores], float(drop_frac), mode, max_rate, per_problem,
                               problems)  # fmt: skip
        decisions = []
        for row, s, (kept, reason) in zip(rows, scores, verdicts, strict=True):
            new = {**row, "branch_rate": s["branch_rate"], "n_branch": s["n_branch"], "n_steps": s["n_steps"]}
            decisions.append(Decision(kept, reason, new if kept else None))
        return decisions

    name = (
        classifier
        if isinstance(classifier, str)
        else getattr(classifier, "__qualname__", type(classifier).__qualname__)
    )
    key = "|".join(
        map(str, ("branch_filter", name, min_step_chars, count_returns, completion_column, tokenizer is not None))
    )

    def transform(dataset):
        source = source_column if source_column and source_column in dataset.column_names else None
        result = run_curation(
            dataset,
            score,
            decide,
            key=key,
            batch_size=batch_size,
            directory=output_dir_for("branch_filter", curation_dir),
            source_column=source,
            desc="branch_filter",
        )
        rows = dataset.to_list()
        transform.summary = branch_summary(rows, result.scores, result.decisions, problem_column)
        transform.result = result
        if len(result.dataset) == 0:
            return (
                dataset.select([]).add_column("branch_rate", []).add_column("n_branch", []).add_column("n_steps", [])
            )
        return result.dataset

    transform.summary = {}
    return transform


def branch_filter(
    ds,
    drop_frac: float = 0.5,
    mode: str = "quantile",
    max_rate: float | None = None,
    metric: str = "branch_rate",
    per_problem: bool = False,
    classifier: Any = None,
    **options: Any,
):
    """The card's surface: `ds` (with `completion`, optionally `problem_id`) -> the kept rows with `branch_rate`,
    `n_branch` and `n_steps` added. Other options as `make_branch_filter_transform`."""
    return make_branch_filter_transform(drop_frac, mode, max_rate, metric, per_problem, classifier, **options)(ds)


def branch_summary(
    rows: Sequence[dict[str, Any]],
    scores: Sequence[dict[str, Any]],
    decisions: Sequence[Decision],
    problem_column: str = "problem_id",
) -> dict[str, Any]:
    """The figures the transform prints: rows in/kept, unique problems in/kept (filtering changes the coverage),
    mean branch rate of all/kept rows, and the lexical marker hits (to audit and tune the markers)."""
    kept = [i for i, d in enumerate(decisions) if d.kept]

    def mean(idx: Sequence[int]) -> float:
        return sum(scores[i]["branch_rate"] for i in idx) / len(idx) if idx else float("nan")

    out: dict[str, Any] = {
        "branch_filter/rows": len(rows),
        "branch_filter/kept": len(kept),
        "branch_filter/mean_branch_rate": mean(range(len(rows))),
        "branch_filter/mean_branch_rate_kept": mean(kept),
    }
    if rows and problem_column in rows[0]:
        out["branch_filter/problems"] = len({str(r.get(problem_column)) for r in rows})
        out["branch_filter/problems_kept"] = len({str(rows[i].get(problem_column)) for i in kept})
    hits = Counter(m for s in scores for m in s.get("markers") or ())
    for marker, count in sorted(hits.items()):
        out[f"branch_filter/marker_hits/{marker}"] = count
    return out
