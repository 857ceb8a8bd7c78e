"""`builtin:branch_traces`: multi-step arithmetic word problems (GSM8K-like, generated in code) each with two
verified long-CoT trajectories: "convergent" (the gold solution, one deductive path) and "branchy" (the same solution
with 1-3 inserted detours: an "Alternatively, ..." step with a wrong attempt followed by a "Going back, ..." step that
returns to the gold path), the card's small-scale construction. Both end with the same correct answer.

Forms: "mixed" (both trajectories of every training problem, the card's 50/50 mix), "convergent", "branchy".
Columns: prompt (conversational), completion (assistant message: <think>steps</think> + "The answer is N."),
problem_id, style, answer, n_detours. The test split holds other problems with their convergent solution.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

FORMS = ("mixed", "convergent", "branchy")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Goro", "Hana", "Ivan", "Jia")
DETOUR_OPEN = ("Alternatively, ", "Wait, maybe ", "What if ", "Let me try another way: ", "But maybe ")
DETOUR_BACK = ("Going back, ", "Back to the first approach: ", "Returning to the plan, ", "Let me go back: ")


def _problem(kind: int, rng: random.Random) -> tuple[str, list[str], list[str], int]:
    """(question, gold steps, wrong attempts, answer)."""
    name = rng.choice(NAMES)
    if kind == 0:
        a, b = rng.randint(3, 12), rng.randint(4, 15)
        c = rng.randint(1, a * b - 1)
        r = a * b - c
        q = f"A shop has {a} boxes with {b} apples in each box. It sells {c} apples. How many apples are left?"
        steps = [
            "We need the number of apples left after the sale, so first count all the apples.",
            f"There are {a} boxes of {b} apples, so the shop has {a} x {b} = {a * b} apples.",
            f"It sells {c} apples, so {a * b} - {c} = {r} apples are left.",
        ]
        wrong = [f"we add the boxes and the apples per box: {a} + {b} = {a + b} apples in total, which is too few.",
                 f"we subtract the sale from the boxes: {a} - {c} does not make sense for apples."]  # fmt: skip
    elif kind == 1:
        a, b, c = rng.randint(8, 30), rng.randint(2, 8), rng.randint(2, 6)
        r = a * b * c
        q = f"{name} earns ${a} per hour and works {b} hours a day for {c} days. How many dollars does {name} earn?"
        steps = [
            f"The pay is per hour, so find the pay for one day first and then for all {c} days.",
            f"In one day {name} earns {a} x {b} = {a * b} dollars.",
            f"Over {c} days that is {a * b} x {c} = {r} dollars.",
        ]
        wrong = [f"we multiply only the hours and days: {b} x {c} = {b * c}, but that counts hours, not dollars.",
                 f"we add everything: {a} + {b} + {c} = {a + b + c} dollars, which is far too small."]  # fmt: skip
    elif kind == 2:
        a, b, c = rng.randint(20, 90), rng.randint(2, 6), rng.randint(5, 60)
        r = a * b + c
        q = f"A train travels {a} km in each of {b} hours and then {c} km more. How many km does it travel in total?"
        steps = [
            f"The distance has two parts: the {b} hours at {a} km each, and the extra {c} km.",
            f"The first part is {a} x {b} = {a * b} km.",
            f"Adding the extra part gives {a * b} + {c} = {r} km.",
        ]
        wrong = [f"we treat {a} km as the whole trip: {a} + {c} = {a + c} km, which ignores the hours.",
                 f"we multiply all three: {a} x {b} x {c} = {a * b * c} km, far too long."]  # fmt: skip
    else:
        b, c = rng.randint(2, 9), rng.randint(2, 7)
        a = b * c + rng.randint(1, 40)
        r = a - b * c
        q = f"{name} has {a} marbles and gives {b} marbles to each of {c} friends. How many marbles are left?"
        steps = [
            f"First find how many marbles are given away in total, then subtract from {a}.",
            f"{name} gives away {b} x {c} = {b * c} marbles.",
            f"So {a} - {b * c} = {r} marbles are left.",
        ]
        wrong = [f"we subtract only one gift: {a} - {b} = {a - b} marbles, but there are {c} friends.",
                 f"we divide the marbles among the friends: {a} / {c} is not what the question asks."]  # fmt: skip
    return q, steps, wrong, r


def _render(steps: list[str], answer: int) -> str:
    return "<think>\n" + "\n\n".join(steps) + "\n</think>\nThe answer is " + f"{answer}."


def _branchy(steps: list[str], wrong: list[str], rng: random.Random) -> tuple[list[str], int]:
    """Insert 1-3 detours, each before a distinct gold step (never the first): a wrong attempt, then a step that goes
    back and states the gold step."""
    n_detours = rng.randint(1, min(3, len(steps) - 1))
    targets = set(rng.sample(range(1, len(steps)), n_detours))
    out = []
    for j, step in enumerate(steps):
        if j in targets:
            out.append(rng.choice(DETOUR_OPEN) + rng.choice(wrong))
            out.append(rng.choice(DETOUR_BACK) + step[0].lower() + step[1:])
        else:
            out.append(step)
    return out, n_detours


def _rows(n_problems: int, seed: int, offset: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for k in range(n_problems):
        q, steps, wrong, answer = _problem(k % 4, rng)
        steps = [*steps, f"Check: {answer} is a whole number and answers exactly what the question asks."]
        prompt = [{"role": "user", "content": q + " Reason step by step, then end with 'The answer is N.'"}]
        branchy, n_detours = _branchy(steps, wrong, rng)
        pid = offset + k
        for style, body, detours in (("convergent", steps, 0), ("branchy", branchy, n_detours)):
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": _render(body, answer)}],
                         "problem_id": pid, "style": style, "answer": str(answer), "n_detours": detours})  # fmt: skip
    return rows


def build(form: str | None = None, seed: int = 0, n_train: int = 200, n_test: int = 50) -> DatasetDict:
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"branch_traces comes in the forms {FORMS}, not {form!r}.")
    train = _rows(n_train, seed, 0)
    test = [r for r in _rows(n_test, seed + 1, n_train) if r["style"] == "convergent"]
    if form != "mixed":
        train = [r for r in train if r["style"] == form]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
