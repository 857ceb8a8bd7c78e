"""Knowledge-mode evaluation: forward and backward QA on facts of the documents, greedy answers scored by a
normalised answer match (the gold answer, lower-cased without punctuation, appears as whole words in the first line
of the answer), through `trl_ext.evaluation.metrics.exact_match`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

DIRECTIONS = ("forward", "backward")


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def answer_match(text: str, gold: str) -> bool:
    """Whether the normalised gold answer appears as whole words in the normalised first non-empty line of `text`."""
    lines = [line for line in str(text or "").splitlines() if line.strip()]
    gold_n = normalize(gold)
    if not lines or not gold_n:
        return False
    return f" {gold_n} " in f" {normalize(lines[0])} "


def qa_prompts(qa, conversational: bool = True):
    """QA rows (question, answer, direction) -> rows with `prompt` (a user turn, or the bare question)."""
    return qa.map(
        lambda row: {"prompt": [{"role": "user", "content": row["question"]}] if conversational else row["question"]},
        load_from_cache_file=False,
    )


def qa_accuracy(model, tokenizer, qa, directions: Sequence[str] = DIRECTIONS, max_new_tokens: int = 24,
                conversational: bool = True, batch_size: int = 16) -> dict[str, float]:  # fmt: skip
    """{"eval/qa_acc_forward": ..., "eval/qa_acc_backward": ...} on the QA rows of each direction."""
    items = qa_verdicts(model, tokenizer, qa, directions, max_new_tokens, conversational, batch_size)
    return {figure: sum(values) / len(values) for figure, values in items.items()}


def qa_verdicts(model, tokenizer, qa, directions: Sequence[str] = DIRECTIONS, max_new_tokens: int = 24,
                conversational: bool = True, batch_size: int = 16) -> dict[str, list[float]]:  # fmt: skip
    """Per figure of `qa_accuracy`, 1.0 or 0.0 per question of that direction (directions without rows left out)."""
    from trl_ext.evaluation.metrics import exact_match_items

    rows = qa_prompts(qa, conversational)
    out = {}
    for direction in directions:
        part = rows.filter(lambda r, d=direction: r["direction"] == d, load_from_cache_file=False)
        if len(part):
            out[f"eval/qa_acc_{direction}"] = exact_match_items(
                model, tokenizer, part, answer_match, max_new_tokens, batch_size
            )
    return out


class QAAccuracyCallback(GenerationEvalCallback):
    """Logs `eval/qa_acc_forward` and `eval/qa_acc_backward` on held-out QA rows (`question`, `answer`,
    `direction`) at each evaluation and at the end of training."""

    label = "maskft_qa_eval"

    def __init__(self, qa, max_new_tokens: int = 24, conversational: bool = True):
        super().__init__()
        self.qa = qa
        self.max_new_tokens = max_new_tokens
        self.conversational = conversational

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        items = qa_verdicts(model, tokenizer, self.qa, DIRECTIONS, self.max_new_tokens, self.conversational)
        return self.item_means(items)


def make_qa_callback(dataset: str = "builtin:maskft_bios", split: str = "test", n: int | None = None,
                     max_new_tokens: int = 24, conversational: bool = True) -> QAAccuracyCallback:  # fmt: skip
    """The registry's factory: QA rows of a dataset's `qa` form (default the built-in biographies)."""
    from trl_ext.data import load_dataset

    qa = load_dataset(dataset, "qa")[split]
    if n is not None:
        qa = qa.select(range(min(int(n), len(qa))))
    return QAAccuracyCallback(qa, int(max_new_tokens), bool(conversational))
