"""GRAPE selection (arXiv:2502.04194): per instruction, keep the candidate response that best fits the target model.

    score(y) = (1/|y|) sum_t log pi_0(y_t | x, y_<t)        # mean token log-prob of the response, i.e. -log PPL
    GRAPE(x) = argmax_j score(y^(j))                         # ties: fewer tokens, then the lower index

`pi_0` is the base model about to be fine-tuned, before any update. Candidates are rendered exactly as SFT will see
them (`trl_ext.inference.scoring.tokenize_pair`), truncation included.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from datasets import Dataset, DatasetDict
from trl.data_utils import is_conversational

from trl_ext.inference.scoring import sequence_logprobs

logger = logging.getLogger(__name__)

INPUT_FORMATS = ("grouped", "long")
SCORE_COLUMNS = ("grape_score", "grape_rank", "grape_source")

# `scorer(prompts, completions) -> [{"sum_logprob", "num_tokens", "mean_logprob"}, ...]`, one per pair, in order.
Scorer = Callable[[list, list], list[dict[str, float]]]


def select_best(scores: Sequence[float], lengths: Sequence[int], top_k: int = 1) -> list[int]:
    """Indices of the `top_k` best candidates, best first: highest score, ties to fewer tokens, then the lower index.

    Candidates without a finite score (nothing left to score after truncation, or NaN) are never selected.
    """
    finite = [j for j, s in enumerate(scores) if math.isfinite(s)]
    return sorted(finite, key=lambda j: (-scores[j], lengths[j], j))[:top_k]


@dataclass
class _Group:
    prompt: Any
    candidates: list = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # per-prompt columns carried to the output (e.g. `answer`)


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def _require(dataset: Dataset, columns: Sequence[str], input_format: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"grape (input_format={input_format!r}) needs the column(s) {missing}; the dataset has "
            f"{dataset.column_names}."
        )


def _carried(dataset: Dataset, *consumed: str) -> list[str]:
    reserved = {*consumed, "prompt", "completion", *SCORE_COLUMNS}
    return [c for c in dataset.column_names if c not in reserved]


def _groups_from_grouped(
    dataset: Dataset, prompt_column: str, candidates_column: str, sources_column: str
) -> list[_Group]:
    _require(dataset, [prompt_column, candidates_column], "grouped")
    has_sources = sources_column in dataset.column_names
    carried = _carried(dataset, prompt_column, candidates_column, sources_column)
    groups = []
    for row in dataset:
        candidates = list(row[candidates_column] or [])
        sources = list(row[sources_column]) if has_sources else [f"candidate_{j}" for j in range(len(candidates))]
        if len(sources) != len(candidates):
            raise ValueError(
                f"A row has {len(candidates)} {candidates_column} but {len(sources)} {sources_column}; they must pair up."
            )
        groups.append(_Group(row[prompt_column], candidates, sources, {c: row[c] for c in carried}))
    return groups


def _groups_from_long(
    dataset: Dataset, prompt_column: str, completion_column: str, source_column: str, group_column: str
) -> list[_Group]:
    _require(dataset, [prompt_column, completion_column], "long")
    by_id = group_column in dataset.column_names
    has_sources = source_column in dataset.column_names
    carried = _carried(dataset, prompt_column, completion_column, source_column)
    groups: dict[Any, _Group] = {}  # insertion order = first appearance
    for i, row in enumerate(dataset):
        key = row[group_column] if by_id else _prompt_key(row[prompt_column])
        if key not in groups:
            groups[key] = _Group(row[prompt_column], extra={c: row[c] for c in carried})
        group = groups[key]
        group.candidates.append(row[completion_column])
        group.sources.append(row[source_column] if has_sources else f"row_{i}")
    return list(groups.values())


def summarize_selection(
    sources: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], selected: Sequence[Sequence[int]]
) -> dict[str, float]:
    """The card's metrics, from per-instruction candidate sources, scores and selected indices (empty = dropped):
    `grape/source_frac/<name>` (share of the selected responses from each source, 0.0 for a source never picked),
    `grape/score_selected` and `grape/score_rejected` (mean score of the selected vs. the other scored candidates),
    `grape/num_prompts`, `grape/num_kept` and `grape/num_selected`."""
    picked_sources: list[str] = []
    picked_scores: list[float] = []
    rejected_scores: list[float] = []
    for group_sources, group_scores, chosen in zip(sources, scores, selected, strict=True):
        chosen = set(chosen)
        for j, (source, score) in enumerate(zip(group_sources, group_scores, strict=True)):
            if j in chosen:
                picked_sources.append(source)
                picked_scores.append(score)
            elif math.isfinite(score):
                rejected_scores.append(score)
    summary: dict[str, float] = {
        "grape/num_prompts": len(selected),
        "grape/num_kept": sum(1 for chosen in selected if chosen),
        "grape/num_selected": len(picked_sources),
        "grape/score_selected": sum(picked_scores) / len(picked_scores) if picked_scores else math.nan,
        "grape/score_rejected": sum(rejected_scores) / len(rejected_scores) if rejected_scores else math.nan,
    }
    for name in sorted({s for group_sources in sources for s in group_sources}):
        count = sum(1 for s in picked_sources if s == name)
        summary[f"grape/source_frac/{name}"] = count / len(picked_sources) if picked_sources else 0.0
    return summary


def format_summary(summary: dict[str, float]) -> str:
    """One line for logs and the CLI."""
    fracs = ", ".join(
        f"{k.removeprefix('grape/source_frac/')} {v:.0%}" for k, v in summary.items() if "source_frac" in k
    )
    return (
        f"GRAPE kept {summary['grape/num_kept']}/{summary['grape/num_prompts']} prompts "
        f"({summary['grape/num_selected']} responses); mean score selected {summary['grape/score_selected']:.4f} "
        f"vs rejected {summary['grape/score_rejected']:.4f}; sources: {fracs or 'none'}"
    )


def grape_select(
    dataset: Dataset,
    model=None,
    tokenizer=None,
    top_k: int = 1,
    batch_size: int = 8,
    max_length: int | None = 2048,
    input_format: Literal["grouped", "long"] = "grouped",
    return_scores: bool = True,
    min_score: float | None = None,
    prompt_column: str = "prompt",
    candidates_column: str = "candidates",
    sources_column: str = "candidate_sources",
    completion_column: str = "completion",
    source_column: str = "source",
    group_column: str = "prompt_id",
    scorer: Scorer | None = None,
    progress: bool = True,
    return_summary: bool = False,
) -> Dataset | tuple[Dataset, dict[str, float]]:
    """Keep the `top_k` best-fitting responses per instruction, as prompt-completion rows ready for SFT.

    Input: "grouped" (`prompt`, `candidates: list[str]`, optional `candidate_sources`) or "long" (one row per
    `prompt`, `completion`, `source`, grouped by `prompt_id` when present, else by the prompt). Scores come from
    `scorer` when given, else `trl_ext.inference.scoring.sequence_logprobs(model, tokenizer, ...)` with `max_length` (use the SFT
    run's `max_length`, so truncated candidates are scored on the text SFT will see). `min_score` drops the
    instructions whose best candidate scores below it. Output rows: `prompt`, `completion` (an assistant message list
    when the prompt is conversational), the other per-prompt columns, and with `return_scores` `grape_score`,
    `grape_rank` (1 = best) and `grape_source`. With `return_summary`, returns `(dataset, summarize_selection(...))`.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}.")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    if input_format == "grouped":
        groups = _groups_from_grouped(dataset, prompt_column, candidates_column, sources_column)
    else:
        groups = _groups_from_long(dataset, prompt_column, completion_column, source_column, group_column)

    if scorer is None:
        if model is None or tokenizer is None:
            raise ValueError(
                "grape needs the target base model and its tokenizer (or a `scorer`) to score candidates."
            )
        scorer = partial(
            sequence_logprobs, model, tokenizer, batch_size=batch_size, max_length=max_length, progress=progress
        )
    prompts = [g.prompt for g in groups for _ in g.candidates]
    completions = [c for g in groups for c in g.candidates]
    flat = scorer(prompts, completions) if completions else []
    if len(flat) != len(completions):
        raise ValueError(f"The scorer returned {len(flat)} results for {len(completions)} candidates.")

    rows, all_scores, all_selected = [], [], []
    start = 0
    for group in groups:
        results = flat[start : start + len(group.candidates)]
        start += len(group.candidates)
        scores = [r["mean_logprob"] for r in results]
        chosen = select_best(scores, [r["num_tokens"] for r in results], top_k)
        if chosen and min_score is not None and scores[chosen[0]] < min_score:
            chosen = []
        all_scores.append(scores)
        all_selected.append(chosen)
        conversational = is_conversational({"prompt": group.prompt})
        for rank, j in enumerate(chosen, start=1):
            completion = group.candidates[j]
            if conversational and isinstance(completion, str):
                completion = [{"role": "assistant", "content": completion}]
            row = {"prompt": group.prompt, "completion": completion, **group.extra}
            if return_scores:
                row.update(grape_score=scores[j], grape_rank=rank, grape_source=group.sources[j])
            rows.append(row)

    summary = summarize_selection([g.sources for g in groups], all_scores, all_selected)
    logger.info(format_summary(summary))
    if rows:
        selected = Dataset.from_list(rows)
    else:
        columns = ["prompt", "completion", *(groups[0].extra if groups else [])]
        selected = Dataset.from_dict({c: [] for c in columns + (list(SCORE_COLUMNS) if return_scores else [])})
    return (selected, summary) if return_summary else selected


def make_grape_transform(
    model=None, tokenizer=None, model_name_or_path: str | None = None, **options: Any
) -> Callable[[Dataset | DatasetDict], Dataset | DatasetDict]:
    """The `grape` transform's factory: `fn(dataset) -> dataset` scoring with `model` (the target base model, passed
    by the runner) or, when it is None, the model loaded from `model_name_or_path`. Options are `grape_select`'s;
    the last selection's summary is kept on `fn.summary`."""
    options = _coerce(options)
    if options.get("input_format", "grouped") not in INPUT_FORMATS:
        raise ValueError(f"grape: input_format must be one of {INPUT_FORMATS}, got {options['input_format']!r}.")
    if options.get("top_k", 1) < 1:
        raise ValueError(f"grape: top_k must be >= 1, got {options['top_k']}.")
    if model is None:
        if model_name_or_path is None:
            raise ValueError("grape needs the target base model: pass `model` or `model_name_or_path`.")
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_name_or_path)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path or model.name_or_path)

    def grape(dataset: Dataset | DatasetDict) -> Dataset | DatasetDict:
        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: grape(ds) for split, ds in dataset.items()})
        selected, grape.summary = grape_select(dataset, model, tokenizer, return_summary=True, **options)
        return selected

    grape.summary = {}
    return grape


_INT_OPTIONS = ("top_k", "batch_size", "max_length")
_FLOAT_OPTIONS = ("min_score",)
_OPTIONAL_OPTIONS = ("max_length", "min_score")
_BOOL_OPTIONS = ("return_scores", "progress")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(options: dict[str, Any]) -> dict[str, Any]:
    """Options may arrive as strings from the command line or a recipe."""
    out = dict(options)
    for name, value in options.items():
        if not isinstance(value, str):
            continue
        if name in _OPTIONAL_OPTIONS and value.lower() in ("none", "null", ""):
            out[name] = None
        elif name in _INT_OPTIONS:
            out[name] = int(value)
        elif name in _FLOAT_OPTIONS:
            out[name] = float(value)
        elif name in _BOOL_OPTIONS:
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError(f"grape: {name} must be true or false, got {value!r}.")
            out[name] = value.lower() in _TRUE
    return out
