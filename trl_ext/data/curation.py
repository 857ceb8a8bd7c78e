"""The runner behind offline data-curation transforms: score every row in batches, decide which rows stay, and keep
a record of why.

A curation transform supplies two functions:

- `score(rows) -> list[dict]`: the scores of one batch of rows (a list of row dicts), one JSON-serialisable dict
  per row. This is the expensive part (a model forward, a generation, a judge), run batch by batch under a tqdm
  progress bar.
- `decide(rows, scores) -> list[Decision]`: given every row and every score, keep or drop each row (with the reason)
  and optionally rewrite the kept ones. It runs once, over the whole split, and is cheap and deterministic (selection
  rules such as "keep the n hardest" need all the scores at once).

`run_curation` then returns the kept rows as a `datasets.Dataset`, in their original order, and — when it has a
directory to write to — leaves next to the data:

- `batches/NNNNNN.json`: one file per finished batch (written atomically: a temporary file, then `os.replace`),
  with a hash of its input rows. A restarted run skips every batch whose file exists with the same hash, so an
  interruption never costs finished work; a batch whose rows changed is scored again.
- `scores.jsonl`: one line per input row: `index`, `source`, the row's scores, `kept` and `reason`.
- `summary.json`: rows in/out, kept and dropped per source, the drop reasons counted, and a histogram of every
  numeric score.
- `manifest.json`: the transform's key, the row count and the batch size (a change of either starts afresh).

Sharded runs: under `torchrun`/`accelerate launch` (WORLD_SIZE > 1) rank r scores the batches `b` with
`b % world_size == r`, writes them to the same directory, waits at a barrier, and then every rank reads all batches in
their original order, so each process ends with the same scores, decisions and output as one process would. Only
rank 0 writes `scores.jsonl` and `summary.json`. Batches are fixed row ranges whatever the world size, so a batch's
scores do not depend on how many processes ran.

The directory comes from `curation_output(...)` (which `trl-ext transform --output` sets: `<output>.curation/
<transform>/<split>/`) or from the transform's own `curation_dir` option; without either, nothing is written and
nothing resumes, but the progress bar, the decisions and the summary (on the returned function's `summary`) remain.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from tqdm.auto import tqdm

Row = dict[str, Any]
Scores = dict[str, Any]

_OUTPUT_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("curation_output_root", default=None)
_SCOPE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("curation_scope", default=None)


@dataclass
class Decision:
    """Keep or drop one row. `row`, when given, replaces the kept row in the output (e.g. the selected response)."""

    kept: bool
    reason: str = ""
    row: Row | None = None


@dataclass
class CurationResult:
    dataset: Dataset
    scores: list[Scores]
    decisions: list[Decision]
    summary: dict[str, Any]
    directory: Path | None = None
    computed_batches: int = 0  # batches scored by this process in this call (the rest were loaded or another rank's)
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def curation_output(root: str | os.PathLike | None) -> Iterator[None]:
    """Write the curation records of the transforms run inside under `root/<transform>/<split>/`."""
    token = _OUTPUT_ROOT.set(Path(root) if root is not None else None)
    try:
        yield
    finally:
        _OUTPUT_ROOT.reset(token)


@contextlib.contextmanager
def curation_scope(transform: str, split: str) -> Iterator[None]:
    """Name the transform and split being applied (set by `trl_ext.run.stage.apply_transforms`)."""
    token = _SCOPE.set((transform, split))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def current_split() -> str | None:
    """The split a transform is being applied to ("train", "test", ...) while `apply_transforms` runs it (`trl-ext
    train` / `trl-ext transform`); None when called directly. A transform that selects or splits training data
    (budget_split's budget, sft_grpo_overlap's split) reads it to leave held-out splits whole."""
    scope = _SCOPE.get()
    return scope[1] if scope is not None else None


def output_dir_for(default_name: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """The directory a curation run writes to: `explicit` (a transform's `curation_dir` option) first, else
    `<curation_output root>/<transform>/<split>` when a root is set, else None (nothing is written)."""
    scope = _SCOPE.get()
    name, split = scope if scope is not None else (default_name, "data")
    if explicit is not None:
        return Path(explicit) / split if scope is not None else Path(explicit)
    root = _OUTPUT_ROOT.get()
    return None if root is None else root / name / split


def _dist():
    """`torch.distributed` when a launcher started several processes, else None (the process group is formed here
    when the launcher did not; gloo, so it works on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        return None
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return dist if dist.get_world_size() > 1 else None


def _rows_hash(rows: Sequence[Row]) -> str:
    text = json.dumps(rows, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _histogram(values: list[float], bins: int = 10) -> dict[str, Any]:
    finite = [v for v in values if math.isfinite(v)]
    out: dict[str, Any] = {"count": len(values), "non_finite": len(values) - len(finite)}
    if not finite:
        return out
    lo, hi = min(finite), max(finite)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    edges = [lo + i * width for i in range(bins + 1)] if hi > lo else [lo, lo]
    counts = counts if hi > lo else [len(finite)]
    out.update(min=lo, max=hi, mean=sum(finite) / len(finite), edges=edges, counts=counts)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def summarize(
    rows: Sequence[Row], scores: Sequence[Scores], decisions: Sequence[Decision], source_column: str | None = None
) -> dict[str, Any]:
    """Rows in/out, kept/dropped per source, drop reasons counted, and a histogram of every numeric score (over
    all rows and over the kept ones)."""
    sources = [str(r.get(source_column, "")) if source_column else "all" for r in rows]
    kept_per: Counter[str] = Counter(s for s, d in zip(sources, decisions, strict=True) if d.kept)
    total_per: Counter[str] = Counter(sources)
    reasons = Counter(d.reason or "dropped" for d in decisions if not d.kept)
    numeric = sorted(
        {k for s in scores for k, v in s.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    )
    histograms = {}
    for key in numeric:
        # a score missing, None or a bool on some rows is left out of the histogram
        values = [float(s[key]) for s in scores if _is_number(s.get(key))]
        kept_values = [
            float(s[key]) for s, d in zip(scores, decisions, strict=True) if d.kept and _is_number(s.get(key))
        ]
        histograms[key] = {"all": _histogram(values), "kept": _histogram(kept_values)}
    n_out = sum(d.kept for d in decisions)
    return {
        "rows_in": len(rows),
        "rows_out": n_out,
        "kept_fraction": n_out / len(rows) if rows else 0.0,
        "kept_per_source": {s: {"kept": kept_per[s], "total": total_per[s]} for s in sorted(total_per)},
        "drop_reasons": dict(sorted(reasons.items())),
        "score_histograms": histograms,
    }


def run_curation(
    dataset: Dataset,
    score: Callable[[list[Row]], list[Scores]],
    decide: Callable[[list[Row], list[Scores]], list[Decision]],
    *,
    key: str,
    batch_size: int = 16,
    directory: str | os.PathLike | None = None,
    source_column: str | None = None,
    desc: str = "Curating",
    progress: bool = True,
) -> CurationResult:
    """Score `dataset` batch by batch (resuming from `directory`), decide, and return the kept rows in order.

    `key` names the transform and its options: a directory left by a run with another key, row count or batch
    size is not reused (its batches are scored again and overwritten).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    rows: list[Row] = dataset.to_list()
    n = len(rows)
    starts = list(range(0, n, batch_size))
    dist = _dist()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)
    path = Path(directory) if directory is not None else None
    batch_dir = path / "batches" if path is not None else None
    manifest = {"key": key, "rows": n, "batch_size": batch_size}
    if path is not None:
        if rank == 0:
            batch_dir.mkdir(parents=True, exist_ok=True)
            manifest_file = path / "manifest.json"
            old = json.loads(manifest_file.read_text()) if manifest_file.exists() else None
            if old != manifest:
                for stale in batch_dir.glob("*.json"):
                    stale.unlink()
                _write_atomic(manifest_file, json.dumps(manifest, indent=1))
        if dist is not None:
            dist.barrier()

    def batch_file(b: int) -> Path:
        return batch_dir / f"{b:06d}.json"

    def load(b: int, digest: str) -> list[Scores] | None:
        if batch_dir is None or not batch_file(b).exists():
            return None
        try:
            saved = json.loads(batch_file(b).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return saved["scores"] if saved.get("hash") == digest else None

    scores_by_batch: dict[int, list[Scores]] = {}
    mine = [b for b in range(len(starts)) if b % world == rank]
    computed = 0
    bar = tqdm(total=n, desc=desc, unit="row", disable=not progress or rank != 0 and world > 1)
    try:
        for b in mine:
            chunk = rows[starts[b] : starts[b] + batch_size]
            digest = _rows_hash(chunk)
            found = load(b, digest)
            if found is None:
                found = list(score(chunk))
                if len(found) != len(chunk):
                    raise ValueError(f"{desc}: the scorer returned {len(found)} scores for {len(chunk)} rows.")
                computed += 1
                if batch_dir is not None:
                    _write_atomic(batch_file(b), json.dumps({"hash": digest, "scores": found}, default=_jsonable))
            scores_by_batch[b] = found
            bar.update(len(chunk) * world)
    finally:
        bar.close()
    if dist is not None:
        if batch_dir is not None:
            dist.barrier()
            for b in range(len(starts)):
                if b not in scores_by_batch:
                    scores_by_batch[b] = json.loads(batch_file(b).read_text())["scores"]
        else:  # nothing shared on disk: gather the batches through the process group
            gathered: list[dict[int, list[Scores]] | None] = [None] * world
            dist.all_gather_object(gathered, scores_by_batch)
            for part in gathered:
                scores_by_batch.update(part or {})
    # Round-trip through JSON so that a resumed or sharded run sees exactly what a fresh single run sees.
    scores = [json.loads(json.dumps(s, default=_jsonable)) for b in range(len(starts)) for s in scores_by_batch[b]]
    decisions = list(decide(rows, scores))
    if len(decisions) != n:
        raise ValueError(f"{desc}: got {len(decisions)} decisions for {n} rows.")
    summary = summarize(rows, scores, decisions, source_column)
    if path is not None and rank == 0:
        lines = []
        for i, (row, s, d) in enumerate(zip(rows, scores, decisions, strict=True)):
            source = row.get(source_column) if source_column else None
            record = {"index": i, "source": source, **s, "kept": d.kept, "reason": d.reason}
            lines.append(json.dumps(record, default=_jsonable, ensure_ascii=False) + "\n")
        _write_atomic(path / "scores.jsonl", "".join(lines))
        _write_atomic(path / "summary.json", json.dumps(summary, indent=1, default=_jsonable))
    kept_rows = [d.row if d.row is not None else rows[i] for i, d in enumerate(decisions) if d.kept]
    if kept_rows:
        out = Dataset.from_list(kept_rows)
    else:  # no row kept: the same columns, empty
        out = dataset.select([])
    return CurationResult(out, scores, decisions, summary, path, computed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)
