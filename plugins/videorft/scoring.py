"""VideoRFT's reward rules as pure functions (the official QiWang98/VideoRFT code's, itself from Video-R1).

- `accuracy(problem_type, completion, solution)`: R_acc of the answer span by question type (see `PROBLEM_TYPES`).
- `format_ok`: the completion is exactly `<think>…</think>\\s*<answer>…</answer>` (DOTALL fullmatch).
- `reasoning_text`: the text the dual encoder reads (the think span without its first sentence).
- `semantic_reward`: R_sem from the per-frame similarities s(f) = u(f)·t(T'): mean of min(1, w·max(s, 0)).
- `length_bonus`: the official `len_control` over one group of completions.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections import Counter
from collections.abc import Sequence

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")
# Answers compared word by word (OCR: edit distance, free-form: ROUGE-L) are cut to this many characters, which
# bounds the quadratic dynamic programs; no real answer is that long.
MAX_ANSWER_CHARS = 8192

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def extract_answer(text: str) -> str:
    """The first answer span, stripped; "" when there is none (official: not a parse error)."""
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else ""


def gold_answer(solution: str) -> str:
    """The gold answer: the solution's answer span, or (ours, the official data always has tags) the stripped
    solution when it has none."""
    match = _ANSWER.search(solution)
    return match.group(1).strip() if match else solution.strip()


def normalize_number(text: str) -> float | None:
    """`float` of the text with thousands commas removed; None when it is not a finite number."""
    try:
        value = float(text.replace(",", ""))
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance / max(1, |reference words|). Exact below 1; when the hypothesis has at least twice
    the words (so the rate is >= 1 and the OCR reward 0 whatever the words), the lower bound (n - m)/max(1, m) is
    returned without the quadratic table."""
    ref, hyp = reference.split(), hypothesis.split()
    m, n = len(ref), len(hyp)
    if n - m >= max(1, m):  # the distance is at least n - m: the rate is >= 1 whatever the words
        return (n - m) / max(1, m)
    previous = list(range(n + 1))
    for i in range(1, m + 1):
        current = [i] + [0] * n
        for j in range(1, n + 1):
            cost = 0 if ref[i - 1] == hyp[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        previous = current
    return previous[n] / max(1, m)


def _rouge_tokens(text: str) -> list[str]:
    # rouge_score's tokenizer: lowercase, anything but [a-z0-9] separates tokens
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _f_measure(overlap: int, n_pred: int, n_ref: int) -> float:
    precision, recall = overlap / max(n_pred, 1), overlap / max(n_ref, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_mean_f(reference: str, hypothesis: str) -> float:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures. With the `rouge-score` package installed this is its
    scorer with the Porter stemmer (the official computation); without it, the same formulas on unstemmed tokens."""
    if importlib.util.find_spec("rouge_score") is not None:
        from rouge_score import rouge_scorer

        scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(
            reference, hypothesis
        )
        return (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3
    ref, hyp = _rouge_tokens(reference), _rouge_tokens(hypothesis)
    fs = []
    for n in (1, 2):
        ref_n = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        hyp_n = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        fs.append(_f_measure(sum((ref_n & hyp_n).values()), sum(hyp_n.values()), sum(ref_n.values())))
    fs.append(_f_measure(_lcs(ref, hyp), len(hyp), len(ref)) if ref and hyp else 0.0)
    return sum(fs) / 3


def accuracy(problem_type: str, completion: str, solution: str) -> float:
    """R_acc of `completion` against `solution` for one of `PROBLEM_TYPES` (an unknown type scores 0)."""
    pred, gold = extract_answer(completion), gold_answer(solution)
    if problem_type == "multiple choice":
        return float(pred.strip() == gold.strip())
    if problem_type == "numerical":
        if ("." in gold or "," in gold) != ("." in pred or "," in pred):
            return 0.0
        x, y = normalize_number(gold), normalize_number(pred)
        return float(x is not None and y is not None and round(x, 2) == round(y, 2))
    if problem_type == "OCR":
        rate = word_error_rate(gold[:MAX_ANSWER_CHARS], pred[:MAX_ANSWER_CHARS])
        return max(0.0, min(1.0, 1.0 - rate))
    if problem_type == "free-form":
        return max(0.0, min(1.0, rouge_mean_f(gold[:MAX_ANSWER_CHARS], pred[:MAX_ANSWER_CHARS])))
    if problem_type == "regression":
        x, y = normalize_number(gold), normalize_number(pred)
        if x is None or y is None:
            return 0.0
        relative = (abs(y - x) + 1e-9) / (abs(x) + 1e-9)
        return 1.0 - min(1.0, max(0.0, relative))
    return 0.0


def format_ok(completion: str) -> bool:
    return _FORMAT.fullmatch(completion) is not None


def drop_first_sentence(text: str) -> str:
    """Everything after the first "." (a decimal point counts, as in the official code), left-stripped; the text
    unchanged when it has no "."."""
    head, dot, tail = text.partition(".")
    return tail.lstrip() if dot else text


def reasoning_text(completion: str, drop_first: bool = True) -> str:
    """T': the first think span (first sentence dropped when asked), or the whole completion, tags included, when it
    has no closed think span."""
    match = _THINK.search(completion)
    if match is None:
        return completion
    return drop_first_sentence(match.group(1)) if drop_first else match.group(1)


def frame_reward(similarity: float, w: float = 2.0) -> float:
    """r(f) = min(1, w·max(s(f), 0))."""
    return min(1.0, w * max(similarity, 0.0))


def semantic_reward(similarities: Sequence[float], w: float = 2.0) -> float:
    """R_sem: the mean of r(f) over the frames (one similarity for an image)."""
    return sum(frame_reward(s, w) for s in similarities) / len(similarities) if similarities else 0.0


def length_bonus(
    lengths: Sequence[int],
    accuracies: Sequence[float],
    bonus: float = 0.2,
    low: int = 320,
    high: int = 512,
    acc_threshold: float = 0.1,
) -> list[float]:
    """The official `len_control` for one group: when at least 2 completions have R_acc > acc_threshold, each of them
    with low <= L <= high gets `bonus`; every other completion gets 0."""
    qualifying = [i for i, acc in enumerate(accuracies) if acc > acc_threshold]
    out = [0.0] * len(lengths)
    if len(qualifying) > 1:
        for i in qualifying:
            if low <= lengths[i] <= high:
                out[i] = bonus
    return out


def groups(prompts: Sequence[object], num_generations: int | None = None) -> list[range]:
    """Index ranges of the groups of a batch: chunks of `num_generations`, or runs of equal consecutive prompts."""
    n = len(prompts)
    if num_generations:
        return [range(i, min(i + num_generations, n)) for i in range(0, n, num_generations)]
    out, start = [], 0
    for i in range(1, n + 1):
        if i == n or prompts[i] != prompts[start]:
            out.append(range(start, i))
            start = i
    return out
