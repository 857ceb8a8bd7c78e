"""Think2SQL's scores as pure functions: SQL extraction, the QATCH partial-credit score, execution accuracy, the
small-update variant and the two format rewards (the paper card's Algorithm section, the official code's rules).

Every parse here runs in linear time in the completion's length (the toolkit caps it at 65,536 characters): the
official format regex backtracks quadratically over a long whitespace run, so `format_ok` checks the same language
by searching for its one inner separator instead (`FORMAT_PATTERN` is the official regex, kept as the spec).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# The official format regex, matched against o.strip() with DOTALL | IGNORECASE.
FORMAT_PATTERN = r"\s*<{think}>\s*(.*?)\s*</{think}>\s*<{answer}>\s*(.*?)\s*</{answer}>\s*\Z"
_NAN = ("__think2sql_nan__",)  # float('nan') != itself: one hashable stand-in so equal results compare equal


def _tag(name: str, closing: bool = False) -> str:
    return f"</{name}>" if closing else f"<{name}>"


def answer_span(completion: str, answer_tag: str = "answer") -> str | None:
    """The text inside the last complete <answer>...</answer> pair (case-insensitive tags), or None."""
    opening = re.compile(re.escape(_tag(answer_tag)), re.IGNORECASE)
    closing = re.compile(re.escape(_tag(answer_tag, closing=True)), re.IGNORECASE)
    span = None
    position = 0
    while (start := opening.search(completion, position)) is not None:
        end = closing.search(completion, start.end())
        if end is None:
            break
        span = completion[start.end() : end.start()]
        position = end.end()
    return span


def last_sql_block(text: str) -> str | None:
    """The body of the last ```sql ... ``` block of `text` (non-overlapping, first to last, as `re.findall` would
    pair them), or None."""
    opening = re.compile(r"```sql", re.IGNORECASE)
    block = None
    position = 0
    while (start := opening.search(text, position)) is not None:
        end = text.find("```", start.end())
        if end < 0:
            break
        block = text[start.end() : end]
        position = end + 3
    return block


def extract_sql(completion: str, answer_tag: str = "answer") -> str:
    """sql(o): the last ```sql block inside the answer span, else the answer span, else the completion (stripped)."""
    span = answer_span(completion, answer_tag)
    if span is None:
        return completion.strip()
    block = last_sql_block(span)
    return (block if block is not None else span).strip()


def format_ok(completion: str, think_tag: str = "think", answer_tag: str = "answer") -> bool:
    """Whether o.strip() fully matches `FORMAT_PATTERN`: it starts with <think>, ends with </answer>, and between
    them a </think> is followed (after whitespace) by <answer>. Linear time; same verdicts as the regex."""
    text = completion.strip()
    think, end = _tag(think_tag), _tag(answer_tag, closing=True)
    if len(text) < len(think) + len(end):
        return False
    if not re.match(re.escape(think), text, re.IGNORECASE):
        return False
    if not re.compile(re.escape(end) + r"\Z", re.IGNORECASE).search(text, len(text) - len(end)):
        return False
    separator = re.compile(
        re.escape(_tag(think_tag, closing=True)) + r"\s*" + re.escape(_tag(answer_tag)), re.IGNORECASE
    )
    return separator.search(text, len(think), len(text) - len(end)) is not None


def tag_count_score(completion: str, think_tag: str = "think", answer_tag: str = "answer") -> float:
    """The v1 tag-count reward: +0.25 for each of "<think>\\n", "\\n</think>\\n", "\\n<answer>\\n", "\\n</answer>"
    occurring exactly once."""
    markers = (
        f"{_tag(think_tag)}\n",
        f"\n{_tag(think_tag, closing=True)}\n",
        f"\n{_tag(answer_tag)}\n",
        f"\n{_tag(answer_tag, closing=True)}",
    )
    return 0.25 * sum(completion.count(marker) == 1 for marker in markers)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    return value


def hashable_rows(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    """Rows as tuples of hashable cells, NaN replaced by one stand-in (floats otherwise compared as returned)."""
    return [tuple(_cell(value) for value in row) for row in rows]


def execution_accuracy(predicted: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]]) -> float:
    """EX (BIRD style): 1.0 if the two results hold the same set of rows, else 0.0."""
    return float(set(hashable_rows(predicted)) == set(hashable_rows(gold)))


def qatch_score(predicted: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]]) -> float:
    """R_qatch = (cell precision + cell recall + tuple cardinality) / 3, rounded to 3 decimals.

    Cells are compared as sets of all values (flattened rows); tuple cardinality is min/max of the row counts
    (duplicates counted). Both results empty: 1.0; exactly one empty: 0.0.
    """
    if not predicted and not gold:
        return 1.0
    if not predicted or not gold:
        return 0.0
    p_cells = {cell for row in hashable_rows(predicted) for cell in row}
    t_cells = {cell for row in hashable_rows(gold) for cell in row}
    common = len(p_cells & t_cells)
    cell_precision = common / len(p_cells) if p_cells else 0.0
    cell_recall = common / len(t_cells) if t_cells else 0.0
    tuple_cardinality = min(len(predicted), len(gold)) / max(len(predicted), len(gold))
    return round((cell_precision + cell_recall + tuple_cardinality) / 3, 3)


def small_update(score: float, well_formatted: bool) -> float:
    """The later code's dense floor: 1 if the score is 1, else max(score, 0.1) if the format is right, else 0."""
    if score == 1.0:
        return 1.0
    return max(score, 0.1) if well_formatted else 0.0
