"""branch_filter's trajectory score (card steps 1-3): split the reasoning part of a long CoT into steps on blank
lines, merge short steps into the previous one, mark the steps that start a new solution path (or return from an
abandoned one), and report the branch rate.

The default step classifier is lexical and deterministic: a step is a branch when its first 60 characters,
lower-cased with leading punctuation stripped, start with one of `BRANCH_MARKERS` (or `RETURN_MARKERS` when
`count_returns`). The paper's own segmentation and classifier were not recovered; pass `classifier(step, context)`
(e.g. a wrapper around an LLM annotator) for a closer replication.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from typing import Any

StepClassifier = Callable[[str, list[str]], bool]

BRANCH_MARKERS: tuple[str, ...] = (
    "alternatively",
    "another approach",
    "another way",
    "or maybe",
    "maybe instead",
    "instead,",
    "let me try another",
    "let's try another",
    "let me try a different",
    "what if",
    "on the other hand",
    "let me think differently",
    "perhaps another",
    "let me consider another",
    "wait, maybe",
    "but maybe",
)
RETURN_MARKERS: tuple[str, ...] = ("going back", "back to", "returning to", "let me go back")

MIN_STEP_CHARS = 20
HEAD_CHARS = 60
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LEAD = string.punctuation + string.whitespace + "\u2018\u2019\u201c\u201d\u2013\u2014"


def as_text(value: Any) -> str:
    """The text of a completion given as a string or as messages (the assistant turns joined); "" otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return as_text(value.get("content", ""))
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        parts = [m.get("content") for m in value if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "\n\n".join(p for p in parts if isinstance(p, str))
    return ""


def reasoning_part(text: str) -> str:
    """The text inside <think>...</think> when present (an unclosed <think> runs to the end), else the whole text:
    final-answer sections often say "Alternatively" in their explanations and are not scored."""
    start = text.find("<think>")
    if start < 0:
        end = text.find("</think>")  # chat templates may put the opening tag in the prompt
        return text[:end] if end >= 0 else text
    body = text[start + len("<think>") :]
    end = body.find("</think>")
    return body[:end] if end >= 0 else body


def split_steps(text: str, min_step_chars: int = MIN_STEP_CHARS) -> list[str]:
    """Steps separated by blank lines; a step shorter than `min_step_chars` joins the previous one (a short first
    step stays on its own)."""
    steps: list[str] = []
    for piece in _BLANK_LINE.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if steps and len(piece) < min_step_chars:
            steps[-1] = steps[-1] + "\n\n" + piece
        else:
            steps.append(piece)
    return steps


def step_head(step: str) -> str:
    """A step's first 60 characters, lower-cased, leading punctuation and spaces stripped."""
    return step[:HEAD_CHARS].lower().lstrip(_LEAD)


def marker_of(step: str, count_returns: bool = True) -> str | None:
    """The marker a step starts with (branch markers first, then return markers), or None."""
    head = step_head(step)
    markers = BRANCH_MARKERS + (RETURN_MARKERS if count_returns else ())
    for marker in markers:
        if head.startswith(marker):
            return marker
    return None


def lexical_classifier(count_returns: bool = True) -> StepClassifier:
    """The default step classifier: True when the step starts with a branch (or return) marker."""

    def classify(step: str, context: list[str]) -> bool:
        return marker_of(step, count_returns) is not None

    return classify


def branch_score(
    text: Any,
    classifier: StepClassifier | None = None,
    min_step_chars: int = MIN_STEP_CHARS,
    count_returns: bool = True,
    num_tokens: int | None = None,
) -> dict[str, Any]:
    """n_steps, n_branch, branch_rate = n_branch / max(n_steps, 1) and b_per_1k = 1000 n_branch / tokens of the
    reasoning part of `text` (a string or messages). `num_tokens` defaults to the whitespace word count; pass a
    tokenizer's count for the card's definition. `markers` lists the lexical markers hit (for auditing; empty with a
    custom classifier)."""
    reasoning = reasoning_part(as_text(text))
    steps = split_steps(reasoning, min_step_chars)
    hits: list[str] = []
    n_branch = 0
    for j, step in enumerate(steps):
        if classifier is None:
            marker = marker_of(step, count_returns)
            is_branch = marker is not None
            if marker is not None:
                hits.append(marker)
        else:
            is_branch = bool(classifier(step, steps[:j]))
        n_branch += is_branch
    tokens = len(reasoning.split()) if num_tokens is None else int(num_tokens)
    return {
        "n_steps": len(steps),
        "n_branch": n_branch,
        "branch_rate": n_branch / max(len(steps), 1),
        "b_per_1k": 1000.0 * n_branch / tokens if tokens > 0 else 0.0,
        "num_tokens": tokens,
        "markers": hits,
    }
