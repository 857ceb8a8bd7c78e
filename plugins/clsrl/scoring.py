"""CLS-RL's rule-based rewards as pure functions of one completion string (the official R1-V/CLS-RL code's rules).

- `accuracy`: the answer a (first `<answer>(.*?)</answer>` of the completion, no DOTALL, stripped; the whole
  stripped completion when there is none) equals the gold g case-insensitively. The gold may itself be wrapped in
  answer tags; it is unwrapped and stripped the same way first.
- `format_ok`: the completion is exactly `<think>…</think>\\s*<answer>…</answer>` (DOTALL fullmatch).
- `equality`: No-Thinking-CLS-RL's reward, the completion equals the (unwrapped) gold exactly: no strip, case
  counts (`normalize=True`: both stripped and casefolded, ours).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence


@functools.lru_cache(maxsize=16)
def answer_pattern(tag: str = "answer") -> re.Pattern[str]:
    # No DOTALL, as the official code: an answer spanning lines is not found, and the completion is used whole.
    return re.compile(f"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>")


@functools.lru_cache(maxsize=16)
def format_pattern(tag: str = "answer") -> re.Pattern[str]:
    return re.compile(rf"<think>.*?</think>\s*<{re.escape(tag)}>.*?</{re.escape(tag)}>", re.DOTALL)


def extract_answer(text: str, tag: str = "answer") -> str:
    """The stripped first answer span of `text`, or the stripped text when it has none."""
    match = answer_pattern(tag).search(text)
    return match.group(1).strip() if match else text.strip()


def unwrap_solution(solution: str, tag: str = "answer") -> str:
    """The gold class: the first answer span of the solution, stripped, or the stripped solution."""
    return extract_answer(solution, tag)


def accuracy(completion: str, solution: str, tag: str = "answer") -> float:
    """r_acc: 1.0 iff the completion's answer equals the gold class ignoring case, else 0.0."""
    return float(extract_answer(completion, tag).lower() == unwrap_solution(solution, tag).lower())


def symbolic_match(completion: str, solution: str) -> bool:
    """The R1-V code's first check, `verify(parse(completion), parse(solution))` with math-verify; False on any
    error (math-verify is imported here, only when the option asks for it)."""
    from math_verify import parse, verify

    try:
        return float(verify(parse(completion), parse(solution))) > 0
    except Exception:  # the official code swallows every parse/verify failure the same way
        return False


def format_ok(completion: str, tag: str = "answer") -> bool:
    """r_fmt: the whole completion is a think span then an answer span (whitespace between allowed)."""
    return format_pattern(tag).fullmatch(completion) is not None


def equality(completion: str, solution: str, tag: str = "answer", normalize: bool = False) -> float:
    """r_eq: 1.0 iff the completion equals the gold class exactly (normalize: after strip + casefold)."""
    gold = unwrap_solution(solution, tag)
    if normalize:
        return float(completion.strip().casefold() == gold.casefold())
    return float(completion == gold)


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def think_answer_mismatch(completion: str, class_names: Sequence[str], tag: str = "answer") -> float | None:
    """1.0 when the thinking names a class last that is not the answer given, 0.0 when it agrees, None when it does not
    apply (no think span, no class named in it, or an answer outside the class list). Ours: the paper reports such
    inconsistencies without defining a measure; "last named" stands for the class the reasoning concludes on."""
    think = _THINK.search(completion)
    if think is None:
        return None
    names = [n for n in class_names if isinstance(n, str) and n.strip()]
    answer = extract_answer(completion[think.end() :], tag).lower()
    if answer not in {n.strip().lower() for n in names}:
        return None
    text = think.group(1).lower()
    last, last_pos = None, -1
    for name in names:
        key = name.strip().lower()
        for match in re.finditer(rf"(?<!\w){re.escape(key)}(?!\w)", text):
            # the mention ending last wins; on a tie the longer name ("golden retriever" over "retriever")
            if match.end() > last_pos or (match.end() == last_pos and last is not None and len(key) > len(last)):
                last, last_pos = key, match.end()
    if last is None:
        return None
    return float(last != answer)
