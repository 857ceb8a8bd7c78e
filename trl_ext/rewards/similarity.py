"""Text similarity for rewards that grade free text against a gold reference: SQuAD-style token F1 (no model), and
the batched, clipped cosine of sentence embeddings for rewards with an encoder option."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from trl_ext.rewards.toolkit import Scored

_TOKEN = re.compile(r"\w+")


def flat_text(value: Any) -> str:
    """A value's text for comparison: strings as they are, lists and dicts flattened to their items' (values') text
    joined by spaces, booleans as JSON writes them, None as "", anything else `str()`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(flat_text(item) for item in value)
    if isinstance(value, dict):
        return " ".join(flat_text(item) for item in value.values())
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def token_f1(prediction: Any, reference: Any) -> float:
    """SQuAD-style token F1 between two values (lists and dicts are flattened to their text; tokens are lowercased
    word characters, `\\w+`). Two empty values score 1, one empty value scores 0."""
    pred = _TOKEN.findall(flat_text(prediction).lower())
    ref = _TOKEN.findall(flat_text(reference).lower())
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def clipped_cosine_scores(encoder: Any, pending: Sequence[tuple[int, str, str]], metric: str) -> dict[int, Scored]:
    """Batched embedding similarity for a reward: `pending` holds (item, text, reference) triples; one
    `encoder.cosines` call (a `LazyTextEncoder`) scores them all. Each item scores its cosine clipped at 0, so the
    reward stays in [0, 1] like the token-overlap scores it replaces, and logs it as `metric`."""
    if not pending:
        return {}
    values, _ = encoder.cosines([text for _, text, _ in pending], [ref for _, _, ref in pending])
    return {
        item: Scored(max(0.0, value), {metric: max(0.0, value)})
        for (item, _, _), value in zip(pending, values, strict=True)
    }
