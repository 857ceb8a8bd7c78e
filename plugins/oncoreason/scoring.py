"""OncoReason's parsing and scores as pure functions: the official evaluation regexes, the gold-value readers, the
GRPO reward components (the card's R_fmt, R_cls, R_reg, R_rat) and the evaluation metrics (macro-F1, MAE, RMSE).

Every parse runs in linear time in the text's length: the two official regexes start with a literal prefix and end
in a greedy run that nothing follows (no backtracking), the reasoning span is found by two literal searches, and
ROUGE-L's longest common subsequence is computed bit-parallel (Hyyrö's algorithm over Python integers), so a long
completion costs O(n·m/64) word operations rather than a Python-level n·m table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# The official evaluation regexes (the card's "Parsing"); status: case-insensitive, first match in the text.
STATUS_PATTERN = r"Overall Survival Status:\s*['\"]?(0:LIVING|1:DECEASED|0|1|LIVING|DECEASED)"
MONTHS_PATTERN = r"Estimated Overall Survival \(months\):\s*([0-9]+\.?[0-9]*)"
_STATUS = re.compile(STATUS_PATTERN, re.IGNORECASE)
_MONTHS = re.compile(MONTHS_PATTERN, re.IGNORECASE)
_GOLD_STATUS = re.compile(r"\s*['\"]?(0:LIVING|1:DECEASED|0|1|LIVING|DECEASED)['\"]?\s*\Z", re.IGNORECASE)
_GOLD_MONTHS = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")
_TOKEN = re.compile(r"[a-z0-9]+")

REASONING_TAG = "reasoning"
LABELS = {0: "0:LIVING", 1: "1:DECEASED"}
# ROUGE-L reads at most this many tokens of each side: ample for a rationale, and bounds the bit-parallel LCS.
MAX_ROUGE_TOKENS = 4096


def _status_value(word: str) -> int:
    word = word.upper()
    return 1 if word in ("1:DECEASED", "1", "DECEASED") else 0


def parse_status(text: str) -> int | None:
    """The predicted overall-survival status (0 LIVING, 1 DECEASED) of the first status line, or None."""
    match = _STATUS.search(text)
    return _status_value(match.group(1)) if match else None


def parse_months(text: str) -> float | None:
    """The predicted overall survival in months of the first months line, or None (also for a non-finite number)."""
    match = _MONTHS.search(text)
    if not match:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def parse_prediction(text: str) -> tuple[int | None, float | None]:
    """(status, months) as the official evaluation reads them: "...Status: 1:DECEASED ...(months): 14.5" -> (1, 14.5)."""
    return parse_status(text), parse_months(text)


def reasoning_span(text: str, tag: str = REASONING_TAG) -> tuple[str, int] | None:
    """The text inside the first complete <reasoning>...</reasoning> pair (case-insensitive tags) and the index just
    after its closing tag, or None."""
    opening = re.compile(re.escape(f"<{tag}>"), re.IGNORECASE).search(text)
    if opening is None:
        return None
    closing = re.compile(re.escape(f"</{tag}>"), re.IGNORECASE).search(text, opening.end())
    if closing is None:
        return None
    return text[opening.end() : closing.start()], closing.end()


def format_ok(text: str, tag: str = REASONING_TAG) -> bool:
    """R_fmt's condition: a non-empty reasoning span, and after it a status line and a months line that parse."""
    span = reasoning_span(text, tag)
    if span is None or not span[0].strip():
        return False
    rest = text[span[1] :]
    return _STATUS.search(rest) is not None and parse_months(rest) is not None


def gold_status(value: Any) -> int | None:
    """A gold status ("0:LIVING", "1:DECEASED", "LIVING", "DECEASED", "0", "1" or the int 0/1) as 0/1, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (0, 1) else None
    if isinstance(value, str) and len(value) <= 64:
        match = _GOLD_STATUS.match(value)
        return _status_value(match.group(1)) if match else None
    return None


def gold_months(value: Any) -> float | None:
    """A gold survival time in months: a non-negative finite number, or a string such as "14.5" or ">60" (the
    qualifiers "<", ">", "=" stripped, as the card says) -> 60.0; None when it holds no such number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) and number >= 0 else None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip().lstrip("<>=").strip()
        if _GOLD_MONTHS.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def months_reward(predicted: float | None, gold: float, scale: float = 12.0) -> float:
    """R_reg = exp(-|m̂ - m*| / s); 0 when the months line is missing."""
    if predicted is None:
        return 0.0
    return math.exp(-abs(predicted - gold) / scale)


# --- ROUGE-L ----------------------------------------------------------------------------------------------------------
def rouge_tokens(text: str, limit: int = MAX_ROUGE_TOKENS) -> list[str]:
    """rouge_score's default tokenisation (lower-cased runs of [a-z0-9], no stemming), first `limit` tokens."""
    tokens = []
    for match in _TOKEN.finditer(text.lower()):
        tokens.append(match.group())
        if len(tokens) >= limit:
            break
    return tokens


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (Hyyrö's bit-parallel algorithm over b)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (β = 1) of two texts: LCS over tokens, P = LCS/|candidate|, R = LCS/|reference|."""
    cand, ref = rouge_tokens(candidate), rouge_tokens(reference)
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- evaluation metrics -------------------------------------------------------------------------------------------------
def macro_f1(predicted: Sequence[int | None], gold: Sequence[int]) -> float:
    """Macro-F1 over the labels that occur in gold or predictions; a missing prediction (None) is wrong for its
    gold class and counts for no class."""
    labels = sorted({g for g in gold} | {p for p in predicted if p is not None})
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def survival_metrics(
    predicted_status: Sequence[int | None],
    gold_status_: Sequence[int],
    predicted_months: Sequence[float | None],
    gold_months_: Sequence[float],
) -> dict[str, float]:
    """macro-F1 and accuracy of the status; MAE and RMSE of the months over rows whose months line parsed; the same
    MAE over uncensored (DECEASED) rows only: a LIVING patient's months are right-censored, so MAE on those rows is
    only a lower bound. Rates say how many predictions parsed and how many rows are censored."""
    n = len(gold_status_)
    pairs = [(p, g) for p, g in zip(predicted_months, gold_months_, strict=True) if p is not None]
    uncensored = [
        (p, g)
        for p, g, s in zip(predicted_months, gold_months_, gold_status_, strict=True)
        if p is not None and s == 1
    ]
    errors = [abs(p - g) for p, g in pairs]
    out = {
        "macro_f1": macro_f1(predicted_status, gold_status_),
        "accuracy": sum(p == g for p, g in zip(predicted_status, gold_status_, strict=True)) / n if n else 0.0,
        "status_parse_rate": sum(p is not None for p in predicted_status) / n if n else 0.0,
        "months_parse_rate": len(pairs) / n if n else 0.0,
        "censored_fraction": sum(s == 0 for s in gold_status_) / n if n else 0.0,
    }
    if errors:
        out["mae"] = sum(errors) / len(errors)
        out["rmse"] = math.sqrt(sum(e * e for e in errors) / len(errors))
    if uncensored:
        out["mae_uncensored"] = sum(abs(p - g) for p, g in uncensored) / len(uncensored)
    return out
