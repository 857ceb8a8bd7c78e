"""`builtin:budget_arith`: one pool of arithmetic word problems, each with a worked SFT answer and a preference pair,
so one budget can be spent on either kind of annotation of the same problems.

chosen = the worked solution (the SFT answer); rejected = the card's two failure kinds, alternating by a seeded coin:
a worked solution with an arithmetic slip (a wrong answer) or the bare answer line without steps.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data.arith import Problem, problems, prompt, wrong_solution

FORMS = ("pool", "sft", "dpo")
COLUMNS = {
    "pool": ("id", "prompt", "completion", "chosen", "rejected", "rejected_kind", "answer"),
    "sft": ("id", "prompt", "completion", "answer"),
    "dpo": ("id", "prompt", "chosen", "rejected", "answer"),
}


def _rejected(problem: Problem, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return "wrong_answer", wrong_solution(problem, rng)
    return "no_steps", f"The answer is {problem.answer}."


def pool_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct problems as pool rows (the same rows for the same seed)."""
    rng = random.Random(seed + 1)
    rows = []
    for i, problem in enumerate(problems(n, seed)):
        kind, rejected = _rejected(problem, rng)
        solution = [{"role": "assistant", "content": problem.solution}]
        rows.append(
            {
                "id": i,
                "prompt": prompt(problem),
                "completion": solution,
                "chosen": solution,
                "rejected": [{"role": "assistant", "content": rejected}],
                "rejected_kind": kind,
                "answer": str(problem.answer),
            }
        )
    return rows


def build(form: str = "pool", seed: int = 7, n_train: int = 1500, n_test: int = 200) -> DatasetDict:
    """Train (the pool a budget is drawn from) and test (held-out problems) splits in the shape of `form`."""
    if form not in FORMS:
        raise ValueError(f"budget_arith has no form {form!r}; available: {', '.join(FORMS)}")
    rows = [{k: row[k] for k in COLUMNS[form]} for row in pool_rows(n_train + n_test, seed)]
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
