"""irac_sft's MCQ pieces: option handling, the three response formats (numbered, markdown, JSON) in two orders, their
parsers, seeded option shuffling, stratified per-domain sampling, and the eval metrics (accuracy with unparseable =
wrong, parse rate, per-domain accuracy, predicted-letter fractions and the total-variation position bias)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

LETTERS = ("A", "B", "C", "D")
FORMATS = ("numbered", "markdown", "json")
ORDERS = ("answer_first", "explanation_first")

# The answer line: "Answer: (C)", "**Answer:** C", "1. Answer: D", "answer: `B`".
_ANSWER_LINE = re.compile(r"\banswer\b[\s:*\"'`]*\(?([A-D])\)?(?![A-Za-z0-9])", re.IGNORECASE)
# A standalone letter A-D (not part of a word, not an article before a lower-case word: "A court").
_STANDALONE = re.compile(r"(?<![A-Za-z0-9])\(?([A-D])\)?(?![A-Za-z0-9'])(?!\s+[a-z])")


def option_list(options: Any) -> list[str]:
    """Four option texts from a list of 4 or a dict keyed A-D."""
    if isinstance(options, dict):
        missing = [k for k in LETTERS if k not in options]
        if missing:
            raise ValueError(f"options dict lacks the keys {missing}")
        return [str(options[k]) for k in LETTERS]
    if isinstance(options, Sequence) and not isinstance(options, str) and len(options) == 4:
        return [str(o) for o in options]
    raise ValueError(f"options must be a list of 4 or a dict A-D, got {options!r}")


def letter_of(value: Any) -> str | None:
    """The first standalone A-D letter of a value ("C", "(C)", "C) text"), or None."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if stripped.upper() in LETTERS:
        return stripped.upper()
    m = re.match(r"\(?([A-D])\)?(?![A-Za-z0-9])", stripped)
    return m.group(1) if m else None


def _parse_json(text: str) -> str | None:
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[m.start() :])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for key, value in obj.items():
                if str(key).strip().lower() == "answer":
                    return letter_of(value)
    return None


def _parse_answer_line(text: str) -> str | None:
    m = _ANSWER_LINE.search(text)
    return m.group(1).upper() if m else None


def _last_standalone(text: str) -> str | None:
    found = _STANDALONE.findall(text)
    return found[-1] if found else None


def parse_answer(text: Any, fmt: str | None = None) -> str | None:
    """The predicted letter of a generation, or None (a parse failure). fmt="json": the "answer" key;
    "markdown"/"numbered": the first "Answer:" line; None: both in turn. Fallback: the last standalone A-D."""
    if not isinstance(text, str) or not text.strip():
        return None
    if fmt not in (None, *FORMATS):
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    found = None
    if fmt in (None, "json"):
        found = _parse_json(text)
    if found is None and fmt in (None, "markdown", "numbered"):
        found = _parse_answer_line(text)
    return found or _last_standalone(text)


def render_response(answer: str, explanation: str, fmt: str = "json", order: str = "explanation_first") -> str:
    """The SFT target: the answer line and the explanation in `order`, in `fmt` (JSON via json.dumps)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    first = order == "answer_first"
    if fmt == "json":
        pairs = [("answer", answer), ("explanation", explanation)]
        return json.dumps(dict(pairs if first else pairs[::-1]), ensure_ascii=False)
    if fmt == "markdown":
        parts = [f"**Answer:** {answer}", f"**Explanation:** {explanation}"]
        return "\n\n".join(parts if first else parts[::-1])
    parts = [f"Answer: ({answer})", f"Explanation: {explanation}"]
    parts = parts if first else parts[::-1]
    return f"1. {parts[0]}\n2. {parts[1]}"


def format_instruction(fmt: str = "json", order: str = "explanation_first") -> str:
    first, second = ("answer", "explanation") if order == "answer_first" else ("explanation", "answer")
    if fmt == "json":
        return f'Reply with a JSON object with the keys "{first}" then "{second}"; "answer" is one letter A-D.'
    if fmt == "markdown":
        return f"Reply in Markdown: **{first.capitalize()}:** first, then **{second.capitalize()}:**."
    return f"Reply as a numbered list: 1. {first.capitalize()}: ... 2. {second.capitalize()}: ..."


def question_block(question: str, options: Any) -> str:
    return (
        str(question).strip()
        + "\n"
        + "\n".join(f"{k}. {o}" for k, o in zip(LETTERS, option_list(options), strict=True))
    )


def render_prompt(question: str, options: Any, fmt: str = "json", order: str = "explanation_first",
                  shots: Sequence[tuple[str, str]] = ()) -> str:  # fmt: skip
    """The user message: optional worked examples (question block, response), the question with options A-D, and
    the format instruction."""
    parts = ["Answer the multiple-choice question about law. " + format_instruction(fmt, order)]
    for block, response in shots:
        parts.append(f"Example question:\n{block}\nExample reply:\n{response}")
    parts.append("Question:\n" + question_block(question, options))
    return "\n\n".join(parts)


def remap_letters(text: str, mapping: dict[str, str]) -> str:
    """Rewrite the parenthesised letters "(X)" of a text with `mapping` (old -> new), in one pass."""
    return re.sub(r"\(([A-D])\)", lambda m: f"({mapping.get(m.group(1), m.group(1))})", text)


def shuffle_options(options: Any, answer: str, rng: random.Random) -> tuple[list[str], str, dict[str, str]]:
    """A seeded permutation of the options, the gold letter remapped, and the old -> new letter map."""
    opts = option_list(options)
    order = list(range(4))
    rng.shuffle(order)  # new position j holds old option order[j]
    mapping = {LETTERS[old]: LETTERS[new] for new, old in enumerate(order)}
    return [opts[i] for i in order], mapping[answer], mapping


def sample_per_domain(ds, k: int, seed: int = 0, domain_column: str = "domain"):
    """Stratified sampling: k rows of each domain (all of a domain smaller than k), seeded; the rows keep their
    original order. `split_per_domain` also returns the held-out rest."""
    return split_per_domain(ds, k, seed, domain_column)[0]


def split_per_domain(ds, k: int, seed: int = 0, domain_column: str = "domain"):
    """(the k-per-domain sample, the rest) of `ds`, both in original order."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    by_domain: dict[str, list[int]] = {}
    for i, d in enumerate(ds[domain_column]):
        by_domain.setdefault(str(d), []).append(i)
    rng = random.Random(seed)
    chosen: set[int] = set()
    for domain in sorted(by_domain):
        idx = by_domain[domain]
        chosen.update(idx if len(idx) <= k else rng.sample(idx, k))
    keep = sorted(chosen)
    rest = [i for i in range(len(ds)) if i not in chosen]
    return ds.select(keep), ds.select(rest)


def letter_tv(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    """Total-variation distance between the predicted-letter distribution (over the parsed predictions) and the
    gold-letter distribution: ½ Σ_L |p_pred(L) − p_gold(L)|; 0 when nothing parsed."""
    preds = [p for p in predicted if p in LETTERS]
    golds = [g for g in gold if g in LETTERS]
    if not preds or not golds:
        return 0.0
    cp, cg = Counter(preds), Counter(golds)
    return 0.5 * sum(abs(cp[L] / len(preds) - cg[L] / len(golds)) for L in LETTERS)


def mcq_metrics(predicted: Sequence[str | None], gold: Sequence[str], domains: Sequence[Any] | None = None,
                prefix: str = "eval/") -> dict[str, float]:  # fmt: skip
    """mcq_acc (an unparseable prediction counts as wrong), parse_rate, letter_tv, acc/<domain>, pred_frac/<L>."""
    n = len(gold)
    if n == 0:
        return {}
    correct = [p is not None and p == g for p, g in zip(predicted, gold, strict=True)]
    parsed = [p for p in predicted if p in LETTERS]
    out = {
        f"{prefix}mcq_acc": sum(correct) / n,
        f"{prefix}parse_rate": len(parsed) / n,
        f"{prefix}letter_tv": letter_tv(predicted, gold),
    }
    counts = Counter(parsed)
    for L in LETTERS:
        out[f"{prefix}pred_frac/{L}"] = counts[L] / len(parsed) if parsed else 0.0
    if domains is not None:
        per: dict[str, list[bool]] = {}
        for d, c in zip(domains, correct, strict=True):
            per.setdefault(str(d), []).append(c)
        for d in sorted(per):
            out[f"{prefix}acc/{d}"] = sum(per[d]) / len(per[d])
    return out
