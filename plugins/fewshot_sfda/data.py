"""`builtin:fewshot_sentiment`: a labelled target domain for few-shot adaptation, generated from templates: movie-style
sentences with a sentiment label word (positive / negative / neutral), 60 rows per class. Deterministic."""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

PROMPT = "Review: {text}\nSentiment (positive, negative or neutral):"
_SUBJECTS = ["The film", "This movie", "The sequel", "The director's new picture", "The documentary", "The cast",
             "The screenplay", "The soundtrack", "The final act", "The animation"]  # fmt: skip
_PHRASES = {
    "positive": ["was a delight from start to finish", "moved me to tears in the best way", "is a triumph",
                 "kept me smiling all evening", "deserves every award", "felt fresh and clever"],
    "negative": ["was a tedious mess", "bored me to sleep", "is a waste of two hours", "fell flat at every turn",
                 "made me want my money back", "felt lazy and cheap"],
    "neutral": ["runs about two hours", "was released in the spring", "is set in a small town",
                "was shot in black and white", "follows three siblings", "opens with a long scene at sea"],
}  # fmt: skip
LABELS = tuple(_PHRASES)


def build(form: str = "sft", per_class: int = 60, seed: int = 0) -> DatasetDict:
    if form != "sft":
        raise ValueError(f"fewshot_sentiment has no form {form!r}; available: sft")
    rng, rows, seen = random.Random(seed), [], set()
    for label in LABELS:
        made = 0
        while made < per_class:
            text = f"{rng.choice(_SUBJECTS)} {rng.choice(_PHRASES[label])}, {rng.choice(['honestly', 'I think', 'says my friend', 'overall', 'to be fair', 'in short', 'no doubt', 'as expected', 'sadly', 'luckily'])}."  # fmt: skip
            if text in seen:
                continue
            seen.add(text)
            rows.append({"prompt": PROMPT.format(text=text), "completion": " " + label, "label": label})
            made += 1
    rng.shuffle(rows)
    return DatasetDict({"train": Dataset.from_list(rows)})
