"""Arithmetic word problems generated in code, so examples, tests and smoke runs need no download.

One or two steps of +, -, * and exact /, answers under 1000: small enough that a 135M model can learn some of them,
and checkable exactly, which makes them a good target for answer-matching rewards and preference pairs.
"""

from __future__ import annotations

import math
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, DatasetDict

INSTRUCTION = "Give a short worked solution and end with 'The answer is N.'"
FORMS = ("sft", "grpo", "dpo")
OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.floordiv,
}

_NAMES = [(n, "she") for n in "Mia Ava Zoe Lena Sofia Nora Emma Lucy".split()] + [
    (n, "he") for n in "Leo Noah Omar Ravi Tom Ivan Kenji Diego".split()
]
_OBJECTS = (
    "pencils apples stickers marbles cookies books stamps shells cards beads oranges crayons coins buttons".split()
)

Step = tuple[int, str, int, int]  # (a, op, b, result)


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[Step, ...]

    @property
    def answer(self) -> int:
        return self.steps[-1][3]

    @property
    def reasoning(self) -> str:
        return " ".join(f"{a} {op} {b} = {c}." for a, op, b, c in self.steps)

    @property
    def solution(self) -> str:
        return f"{self.reasoning} The answer is {self.answer}."


def _step(a: int, op: str, b: int) -> Step:
    return (a, op, b, OPS[op](a, b))


def _who(rng: random.Random) -> tuple[str, str, str, str]:
    (name, pron), (friend, _) = rng.sample(_NAMES, 2)
    return name, pron, pron.capitalize(), friend


def _t_add(rng: random.Random) -> Problem:
    name, p, P, _ = _who(rng)
    obj, a, b = rng.choice(_OBJECTS), rng.randint(2, 400), rng.randint(2, 400)
    q = rng.choice(
        [
            f"{name} has {a} {obj}. {P} buys {b} more. How many {obj} does {p} have now?",
            f"There are {a} {obj} in a box and {b} {obj} on the table. How many {obj} are there altogether?",
        ]
    )
    return Problem(q, (_step(a, "+", b),))


def _t_sub(rng: random.Random) -> Problem:
    name, p, P, friend = _who(rng)
    obj, a = rng.choice(_OBJECTS), rng.randint(10, 500)
    b = rng.randint(1, a - 1)
    q = rng.choice(
        [
            f"{name} has {a} {obj} and gives away {b}. How many {obj} does {p} have left?",
            f"{name} had {a} {obj}. {P} gave {b} of them to {friend}. How many {obj} does {p} have now?",
        ]
    )
    return Problem(q, (_step(a, "-", b),))


def _t_mul(rng: random.Random) -> Problem:
    name, p, _, _ = _who(rng)
    obj, a, b = rng.choice(_OBJECTS), rng.randint(2, 12), rng.randint(2, 40)
    q = rng.choice(
        [
            f"{name} buys {a} bags of {obj}. Each bag holds {b} {obj}. How many {obj} does {p} buy in total?",
            f"A shelf has {a} rows with {b} {obj} in each row. How many {obj} are on the shelf?",
        ]
    )
    return Problem(q, (_step(a, "*", b),))


def _t_div(rng: random.Random) -> Problem:
    name, _, _, _ = _who(rng)
    obj, b, k = rng.choice(_OBJECTS), rng.randint(2, 12), rng.randint(2, 30)
    q = rng.choice(
        [
            f"{name} shares {b * k} {obj} equally among {b} friends. How many {obj} does each friend get?",
            f"{b * k} {obj} are packed equally into {b} boxes. How many {obj} are in each box?",
        ]
    )
    return Problem(q, (_step(b * k, "/", b),))


def _t_add_sub(rng: random.Random) -> Problem:
    name, p, P, friend = _who(rng)
    obj, a, b = rng.choice(_OBJECTS), rng.randint(5, 300), rng.randint(2, 300)
    first = _step(a, "+", b)
    second = _step(first[3], "-", rng.randint(1, first[3] - 1))
    q = (
        f"{name} has {a} {obj}. {P} finds {b} more and then gives {second[2]} to {friend}. "
        f"How many {obj} does {p} have now?"
    )
    return Problem(q, (first, second))


def _t_mul_add(rng: random.Random) -> Problem:
    name, p, P, _ = _who(rng)
    obj, a, b, c = rng.choice(_OBJECTS), rng.randint(2, 12), rng.randint(2, 40), rng.randint(1, 200)
    first = _step(a, "*", b)
    q = (
        f"{name} buys {a} packs of {obj} with {b} {obj} in each pack. {P} already had {c} {obj}. "
        f"How many {obj} does {p} have now?"
    )
    return Problem(q, (first, _step(first[3], "+", c)))


def _t_mul_sub(rng: random.Random) -> Problem:
    obj, a, b = rng.choice(_OBJECTS), rng.randint(2, 12), rng.randint(2, 40)
    first = _step(a, "*", b)
    c = rng.randint(1, first[3] - 1)
    q = f"A shop has {a} boxes with {b} {obj} in each box. It sells {c} {obj}. How many {obj} are left?"
    return Problem(q, (first, _step(first[3], "-", c)))


def _t_div_add(rng: random.Random) -> Problem:
    name, _, _, _ = _who(rng)
    obj, b, k, c = rng.choice(_OBJECTS), rng.randint(2, 12), rng.randint(2, 30), rng.randint(1, 50)
    first = _step(b * k, "/", b)
    q = (
        f"{name} splits {b * k} {obj} equally into {b} bags and then adds {c} more {obj} to one bag. "
        f"How many {obj} are in that bag now?"
    )
    return Problem(q, (first, _step(first[3], "+", c)))


_TEMPLATES = [_t_add, _t_sub, _t_mul, _t_div, _t_add_sub, _t_mul_add, _t_mul_sub, _t_div_add]


def problems(n: int, seed: int = 0) -> list[Problem]:
    """`n` distinct problems (distinct question texts), the same list for the same seed."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        problem = rng.choice(_TEMPLATES)(rng)
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
    return out


def wrong_solution(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong solution: one step's result slips by a few, and later steps carry the slip along (they are
    + or -, so the final answer is off by the same amount)."""
    slip, size, sign = rng.randrange(len(problem.steps)), rng.randint(1, 9), rng.choice([-1, 1])
    for delta in (sign * size, size):  # a slip down that would go negative becomes a slip up
        steps, carry = [], None
        for i, (a, op, b, c) in enumerate(problem.steps):
            if carry is not None:
                a, c = carry, OPS[op](carry, b)
            carry = c + delta if i == slip else c
            steps.append((a, op, b, carry))
        if carry >= 0 and min(s[3] for s in steps) >= 0:
            break
    return Problem(problem.question, tuple(steps)).solution


def prompt(problem: Problem) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{problem.question} {INSTRUCTION}"}]


def _row(problem: Problem, form: str, rng: random.Random) -> dict:
    if form == "sft":
        return {
            "prompt": prompt(problem),
            "completion": [{"role": "assistant", "content": problem.solution}],
            "answer": str(problem.answer),
        }
    if form == "grpo":
        return {"prompt": prompt(problem), "answer": str(problem.answer)}
    return {
        "prompt": prompt(problem),
        "chosen": [{"role": "assistant", "content": problem.solution}],
        "rejected": [{"role": "assistant", "content": wrong_solution(problem, rng)}],
    }


def build(form: str = "sft", seed: int = 0, n_train: int = 2000, n_test: int = 200) -> DatasetDict:
    """Train and test splits of distinct problems, in the shape of `form` ("sft", "grpo" or "dpo")."""
    if form not in FORMS:
        raise ValueError(f"arith has no form {form!r}; available: {', '.join(FORMS)}")
    items = problems(n_train + n_test, seed)
    rng = random.Random(seed + 1)
    rows = [_row(p, form, rng) for p in items]
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})


def build_preferences(form: str = "dpo", seed: int = 0, n_train: int = 2000, n_test: int = 200) -> DatasetDict:
    """Preference pairs: the worked solution (chosen) against one with an arithmetic slip (rejected)."""
    if form != "dpo":
        raise ValueError(f"arith_prefs has no form {form!r}; available: dpo")
    return build("dpo", seed=seed, n_train=n_train, n_test=n_test)


_ANSWER_RE = re.compile(r"The answer is\s*\$?\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def normalize_number(text: str) -> str:
    """ "1,250" -> "1250", "3.0" -> "3", "2.50" -> "2.5"."""
    text = text.strip().replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def extract_answer(text: str) -> str | None:
    """The number after the last "The answer is", else the last number in `text`; None if there is none."""
    found = _ANSWER_RE.findall(text) or _NUMBER_RE.findall(text)
    return normalize_number(found[-1]) if found else None


def gold_number(answer: Any) -> str | None:
    """A row's gold `answer` as number text (an int, a finite float, or text that is one number in the form
    `_NUMBER_RE` reads), else None: an answer-matching reward is not applicable to a row without one."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int) or (isinstance(answer, float) and math.isfinite(answer)):
        answer = str(answer)
    if not isinstance(answer, str):
        return None
    answer = answer.strip()
    return answer if _NUMBER_RE.fullmatch(answer) else None


def is_correct(text: str, answer: str) -> bool:
    predicted = extract_answer(text)
    return predicted is not None and predicted == normalize_number(str(answer))
