"""Several candidate responses per arith question, for GRAPE-style data selection without a download.

The candidates differ in style (the gold worked solution, a verbose rewrite, a terse one) and one is wrong, so a
selector that scores them with the model to be trained has real choices to make and a known wrong answer to avoid.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from . import arith

FORMS = ("grouped", "long")
SOURCES = ("gold", "verbose", "terse", "wrong")
_OPENERS = ["Let's work through this step by step.", "Let me solve this carefully.", "We can reason it out."]
_WORDS = {"+": "add {a} and {b}", "-": "subtract {b} from {a}", "*": "multiply {a} by {b}", "/": "divide {a} by {b}"}


def verbose(problem: arith.Problem, rng: random.Random) -> str:
    """A wordy rewrite of the worked solution with the same correct answer."""
    parts = [rng.choice(_OPENERS)]
    for i, (a, op, b, c) in enumerate(problem.steps):
        lead = "First, we" if i == 0 else "Next, we"
        parts.append(f"{lead} {_WORDS[op].format(a=a, b=b)}, which gives {a} {op} {b} = {c}.")
    parts.append(f"So, putting it all together, the result is {problem.answer}. The answer is {problem.answer}.")
    return " ".join(parts)


def terse(problem: arith.Problem) -> str:
    return " ".join(f"{a}{op}{b}={c}." for a, op, b, c in problem.steps) + f" The answer is {problem.answer}."


def _candidates(problem: arith.Problem, rng: random.Random) -> list[tuple[str, str]]:
    texts = {
        "gold": problem.solution,
        "verbose": verbose(problem, rng),
        "terse": terse(problem),
        "wrong": arith.wrong_solution(problem, rng),
    }
    pairs = [(texts[s], s) for s in SOURCES]
    rng.shuffle(pairs)
    return pairs


def build(form: str = "grouped", seed: int = 0, n_train: int = 300, n_test: int = 50) -> DatasetDict:
    """Form "grouped": one row per question with `candidates` and `candidate_sources`; form "long": one row per
    candidate, `prompt_id` tying the candidates of a question together."""
    if form not in FORMS:
        raise ValueError(f"arith_candidates has no form {form!r}; available: {', '.join(FORMS)}")
    rng = random.Random(seed + 2)
    grouped = []
    for problem in arith.problems(n_train + n_test, seed):
        pairs = _candidates(problem, rng)
        grouped.append(
            {
                "prompt": arith.prompt(problem),
                "candidates": [t for t, _ in pairs],
                "candidate_sources": [s for _, s in pairs],
                "answer": str(problem.answer),
            }
        )
    splits = {"train": grouped[:n_train], "test": grouped[n_train:]}
    if form == "long":
        splits = {
            name: [
                {
                    "prompt_id": i,
                    "prompt": row["prompt"],
                    "completion": text,
                    "source": source,
                    "answer": row["answer"],
                }
                for i, row in enumerate(rows)
                for text, source in zip(row["candidates"], row["candidate_sources"], strict=True)
            ]
            for name, rows in splits.items()
        }
    return DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()})
