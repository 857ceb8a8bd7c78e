"""`builtin:explanations`: 80 arithmetic multiple-choice questions with a gold option and a one-sentence reference
explanation, 64 train / 16 held out (test) — the card's demonstration data, generated in code, deterministic.

Form `grpo`: `prompt` (system message with the answer format + user message with the question and options A-D),
`answer` (the gold letter), `reference_explanation`, `explanation_lang` ("en"). GRPO in TRL 1.16 does not truncate
prompts: every prompt is kept within `MAX_PROMPT_CHARS` characters (checked at build time), and a token covers at least
one character, so that bounds a prompt to as many tokens plus the chat template's own.
"""

from __future__ import annotations

import random

NUM_ITEMS, NUM_TEST = 80, 16
MAX_PROMPT_CHARS = 600
LETTERS = "ABCD"
SYSTEM_PROMPT = (
    "Answer the multiple-choice question. Write the letter of the correct option inside <answer> </answer>, then "
    "explain why in one sentence inside <explanation> </explanation>."
)

# (symbol, word, result, reference explanation) per operation; the explanation names the numbers and the reason.
_OPERATIONS = {
    "+": lambda a, b: (
        a + b,
        f"{a} + {b} = {a + b} because adding {b} to {a} counts up {b} steps from {a} to {a + b}.",
    ),
    "-": lambda a, b: (
        a - b,
        f"{a} - {b} = {a - b} because taking {b} away from {a} leaves {a - b}, and {a - b} + {b} = {a}.",
    ),
    "*": lambda a, b: (a * b, f"{a} * {b} = {a * b} because {b} groups of {a} make {a * b} in total."),
}


def _item(rng: random.Random) -> dict:
    op = rng.choice(sorted(_OPERATIONS))
    a, b = rng.randint(2, 20), rng.randint(2, 12)
    if op == "-" and b > a:
        a, b = b, a
    result, reference = _OPERATIONS[op](a, b)
    wrong = set()
    while len(wrong) < 3:
        candidate = result + rng.choice([-3, -2, -1, 1, 2, 3, 10, -10])
        if candidate != result and candidate >= 0:
            wrong.add(candidate)
    options = [result, *sorted(wrong)]
    rng.shuffle(options)
    gold = LETTERS[options.index(result)]
    listed = "\n".join(f"{letter}) {value}" for letter, value in zip(LETTERS, options, strict=True))
    question = f"What is {a} {op} {b}?\n{listed}"
    return {"question": question, "answer": gold, "reference_explanation": reference}


def prompt_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def items(seed: int = 0, n: int = NUM_ITEMS) -> list[dict]:
    """`n` distinct questions (by text) drawn with `seed`: question, answer, reference_explanation."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        item = _item(rng)
        key = item["question"].split("\n")[0]
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _row(item: dict) -> dict:
    prompt = prompt_messages(item["question"])
    size = sum(len(message["content"]) for message in prompt)
    if size > MAX_PROMPT_CHARS:  # a guard on the templates above, not on user data
        raise AssertionError(f"builtin:explanations prompt of {size} characters exceeds {MAX_PROMPT_CHARS}")
    return {
        "prompt": prompt,
        "answer": item["answer"],
        "reference_explanation": item["reference_explanation"],
        "explanation_lang": "en",
    }


def build(form: str = "grpo", seed: int = 0):
    """train (64 questions) / test (16 held out), drawn with `seed`."""
    from datasets import Dataset, DatasetDict

    if form != "grpo":
        raise ValueError(f"builtin:explanations has the form grpo, not {form!r}")
    rows = [_row(item) for item in items(seed)]
    return DatasetDict({"train": Dataset.from_list(rows[NUM_TEST:]), "test": Dataset.from_list(rows[:NUM_TEST])})
