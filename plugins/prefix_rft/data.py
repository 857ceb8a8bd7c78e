"""Built-in data with a demonstration column, generated in code.

- `builtin:prefix_arith`: the arith word problems (`trl_ext.data.arith`) with their worked solution as the
  demonstration ("... The answer is N.") and the answer.
- `builtin:prefix_reverse`: "Reverse the digits of 483920." -> "The answer is 029384.", a task a 135M model does not
  solve unaided (the card's demonstration task), with the reversed string as the demonstration's answer.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data import arith

FORMS = ("grpo",)
REVERSE_INSTRUCTION = "Reverse the order of the digits. End with 'The answer is N.'"


def _check(name: str, form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"builtin:{name} has the forms {', '.join(FORMS)}, not {form!r}")


def build_arith(form: str = "grpo", seed: int = 0, n_train: int = 2000, n_test: int = 200) -> DatasetDict:
    _check("prefix_arith", form)
    rows = [
        {"prompt": arith.prompt(p), "demonstration": p.solution, "answer": str(p.answer)}
        for p in arith.problems(n_train + n_test, seed)
    ]
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})


def reverse_rows(n: int, seed: int = 0, digits: int = 6) -> list[dict]:
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        number = "".join(rng.choice("0123456789") for _ in range(digits))
        if number in seen or number == number[::-1]:
            continue
        seen.add(number)
        answer = number[::-1]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"{number}. {REVERSE_INSTRUCTION}"}],
                "demonstration": f"The answer is {answer}.",
                "answer": answer,
            }
        )
    return rows


def build_reverse(form: str = "grpo", seed: int = 0, n_train: int = 512, n_test: int = 64) -> DatasetDict:
    _check("prefix_reverse", form)
    rows = reverse_rows(n_train + n_test, seed)
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
