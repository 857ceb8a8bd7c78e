"""`builtin:calib_sentiment`: short product and place reviews labelled positive or negative, generated in code.

Most reviews are plain ("The soup was delicious."), a share is harder on purpose (negation: "The staff was not
rude."; contrast: "The room was dirty, but the view was wonderful.", whose label follows the clause after "but";
hedges), so a 135M model is right often but not always: the regime where its confidence can be checked.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

LABELS = ("positive", "negative")
FORMS = ("sft", "cls")
# The prompt the sft form trains on: the calibration templates' first, zero-shot.
SFT_TEMPLATE = "Review: {input}\nSentiment:"

_SUBJECTS = (
    "the pizza", "the soup", "the hotel room", "the service", "the staff", "the movie", "the book", "the phone",
    "the laptop", "the concert", "the coffee", "the delivery", "the app", "the tour", "the haircut", "the shoes",
    "the headphones", "the museum", "the flight", "the bakery", "the game", "the sofa", "the camera", "the course",
)  # fmt: skip
_POSITIVE = (
    "delicious", "wonderful", "excellent", "great", "fantastic", "friendly", "lovely", "amazing", "superb",
    "comfortable", "reliable", "impressive", "pleasant", "brilliant", "perfect",
)  # fmt: skip
_NEGATIVE = (
    "awful", "terrible", "disappointing", "bad", "horrible", "rude", "boring", "broken", "dirty", "slow",
    "overpriced", "noisy", "useless", "bland", "poor",
)  # fmt: skip
_INTENSIFIERS = ("", "", "really ", "very ", "quite ", "truly ", "absolutely ")
_ENDINGS = {
    "positive": ("I would come back.", "Highly recommended.", "Worth every penny.", "I loved it.", ""),
    "negative": ("Never again.", "Avoid it.", "What a waste of money.", "I want a refund.", ""),
}


def _word(label: str, rng: random.Random) -> str:
    return rng.choice(_POSITIVE if label == "positive" else _NEGATIVE)


def _other(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def review(label: str, rng: random.Random) -> str:
    """One review whose sentiment is `label`."""
    subject = rng.choice(_SUBJECTS)
    kind = rng.random()
    if kind < 0.55:  # plain
        text = f"{subject.capitalize()} was {rng.choice(_INTENSIFIERS)}{_word(label, rng)}."
        ending = rng.choice(_ENDINGS[label])
        return f"{text} {ending}".strip()
    if kind < 0.75:  # negation of the opposite word
        return f"{subject.capitalize()} was not {_word(_other(label), rng)} at all."
    if kind < 0.92:  # contrast: the clause after "but" carries the label
        first, second = rng.sample(_SUBJECTS, 2)
        return f"{first.capitalize()} was {_word(_other(label), rng)}, but {second} was {_word(label, rng)}."
    hedge = "I expected worse, and" if label == "positive" else "I expected more, and"
    return f"{hedge} {subject} was {_word(label, rng)}."


def rows(n: int, seed: int) -> list[dict[str, str]]:
    """`n` rows, half of each label (in random order), seeded."""
    rng = random.Random(seed)
    labels = [LABELS[i % 2] for i in range(n)]
    rng.shuffle(labels)
    return [{"text": review(label, rng), "label": label} for label in labels]


def build(form: str = "sft", seed: int = 0, n_train: int = 200, n_test: int = 200) -> DatasetDict:
    """train / test rows (`text`, `label`; the sft form adds `prompt` and `completion`: the review in the first
    calibration template and " label"). The test reviews are drawn with another seed and none repeats a train one."""
    if form not in FORMS:
        raise ValueError(f"builtin:calib_sentiment has the forms {', '.join(FORMS)}, not {form!r}")
    train = rows(n_train, seed)
    seen = {r["text"] for r in train}
    test: list[dict[str, str]] = []
    extra = seed + 1
    while len(test) < n_test:  # draw again until the held-out rows are new texts
        test += [
            r for r in rows(n_test, extra) if r["text"] not in seen and r["text"] not in {t["text"] for t in test}
        ]
        extra += 1000
    test = test[:n_test]
    if form == "sft":
        train, test = ([{**r, "prompt": SFT_TEMPLATE.replace("{input}", r["text"]), "completion": f" {r['label']}"}
                        for r in part] for part in (train, test))  # fmt: skip
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
