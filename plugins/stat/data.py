"""`builtin:stat_skills`: arithmetic problems with explicit skill labels, generated in code (the card's
small-scale demonstration task), and the rule-based parser that checks them.

Six skills: `add`, `subtract`, `multiply`, `carry` (an addition that carries or a subtraction that borrows),
`parentheses` (a bracketed sum or difference, then multiplied) and `fractions` ("What is 3/4 of 48?", integer
answers). A problem's skills follow from its expression, so `skills_of(problem)` recomputes the label from the text:
that is what the rule-based teacher (`ArithTeacher`) does in place of an LLM.

Forms: "problems" (`problem`, `solution`, `answer`, `skills`, `kind`) for the `stat` transform (splits `train`: the
pool, `validation`: where the student's difficulties are found, `test`: held out for evaluation); "sft" (`prompt`,
`completion`, `answer`, `skills`, `kind`) to train on directly.
"""

from __future__ import annotations

import random
import re

from datasets import Dataset, DatasetDict

SKILLS = ("add", "subtract", "multiply", "carry", "parentheses", "fractions")
KINDS = ("add", "add_carry", "subtract", "subtract_borrow", "multiply", "parentheses", "fractions")
FORMS = ("problems", "sft")
INSTRUCTION = "Show the steps and end with 'The answer is N.'"

_BINARY = re.compile(r"^What is (\d+) ([-+*]) (\d+)\?$")
_PAREN = re.compile(r"^What is \((\d+) ([-+]) (\d+)\) \* (\d+)\?$")
_FRACTION = re.compile(r"^What is (\d+)/(\d+) of (\d+)\?$")


def _carries(a: int, b: int) -> bool:
    while a or b:
        if a % 10 + b % 10 >= 10:
            return True
        a, b = a // 10, b // 10
    return False


def _borrows(a: int, b: int) -> bool:
    while b:
        if a % 10 < b % 10:
            return True
        a, b = a // 10, b // 10
    return False


def solve(problem: str) -> tuple[int, str, tuple[str, ...]] | None:
    """(answer, worked solution, skills) of a problem in this task's format, None for any other text."""
    text = " ".join(str(problem).split())
    if m := _BINARY.match(text):
        a, op, b = int(m[1]), m[2], int(m[3])
        if op == "+":
            value, skills = a + b, ("add", "carry") if _carries(a, b) else ("add",)
        elif op == "-":
            value, skills = a - b, ("subtract", "carry") if _borrows(a, b) else ("subtract",)
        else:
            value, skills = a * b, ("multiply",)
        return value, f"{a} {op} {b} = {value}. The answer is {value}.", skills
    if m := _PAREN.match(text):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        inner = a + b if op == "+" else a - b
        value = inner * c
        base = "add" if op == "+" else "subtract"
        solution = f"{a} {op} {b} = {inner}. {inner} * {c} = {value}. The answer is {value}."
        return value, solution, ("parentheses", base, "multiply")
    if m := _FRACTION.match(text):
        num, den, whole = int(m[1]), int(m[2]), int(m[3])
        if den == 0 or whole % den:
            return None
        part = whole // den
        value = part * num
        return value, f"{whole} / {den} = {part}. {part} * {num} = {value}. The answer is {value}.", ("fractions",)
    return None


def skills_of(problem: str) -> tuple[str, ...]:
    solved = solve(problem)
    return solved[2] if solved else ()


def make_problem(kind: str, rng: random.Random) -> str:
    """One problem of `kind` (see KINDS)."""
    if kind in ("add", "add_carry"):
        while True:
            a, b = rng.randint(10, 89), rng.randint(10, 89)
            if _carries(a, b) == (kind == "add_carry"):
                return f"What is {a} + {b}?"
    if kind in ("subtract", "subtract_borrow"):
        while True:
            a = rng.randint(20, 99)
            b = rng.randint(10, a - 1)
            if _borrows(a, b) == (kind == "subtract_borrow"):
                return f"What is {a} - {b}?"
    if kind == "multiply":
        return f"What is {rng.randint(2, 9)} * {rng.randint(3, 19)}?"
    if kind == "parentheses":
        op = rng.choice("+-")
        a, b = rng.randint(2, 15), rng.randint(1, 9)
        if op == "-":
            a = max(a, b + 1)
        return f"What is ({a} {op} {b}) * {rng.randint(2, 5)}?"
    if kind == "fractions":
        den = rng.choice([2, 3, 4, 5])
        num = rng.randint(1, den - 1)
        return f"What is {num}/{den} of {den * rng.randint(2, 25)}?"
    raise ValueError(f"Unknown problem kind {kind!r}; kinds: {KINDS}")


def kind_for_skill(skill: str) -> tuple[str, ...]:
    """The problem kinds whose label contains `skill`."""
    probe = random.Random(0)
    return tuple(k for k in KINDS if skill in skills_of(make_problem(k, probe)))


def problems(n: int, seed: int, exclude: set[str] | None = None) -> list[str]:
    """`n` distinct problems, the kinds in turn (so every skill is present), none of them in `exclude`."""
    rng, seen, out = random.Random(seed), set(exclude or ()), []
    i = 0
    while len(out) < n:
        text = make_problem(KINDS[i % len(KINDS)], rng)
        i += 1
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def row(problem: str, kind: str | None = None) -> dict:
    answer, solution, skills = solve(problem)
    return {"problem": problem, "solution": solution, "answer": str(answer), "skills": list(skills),
            "kind": kind or "+".join(skills)}  # fmt: skip


def _kind(problem: str) -> str:
    skills = skills_of(problem)
    if "fractions" in skills or "parentheses" in skills:
        return skills[0]
    if "carry" in skills:
        return f"{skills[0]}_{'carry' if skills[0] == 'add' else 'borrow'}"
    return skills[0]


def build(form: str | None = None, seed: int = 0, n_train: int = 700, n_val: int = 140, n_test: int = 140):
    """Disjoint train (pool) / validation / test splits; the kinds are balanced in each."""
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"stat_skills comes in the forms {FORMS}, not {form!r}.")
    texts = problems(n_train + n_val + n_test, seed)
    rng = random.Random(seed + 1)
    rng.shuffle(texts)
    splits = {"train": texts[:n_train], "validation": texts[n_train : n_train + n_val],
              "test": texts[n_train + n_val :]}  # fmt: skip

    def shape(text: str) -> dict:
        r = row(text, _kind(text))
        if form == "sft":
            return {"prompt": [{"role": "user", "content": f"{text} {INSTRUCTION}"}],
                    "completion": [{"role": "assistant", "content": r["solution"]}], "answer": r["answer"],
                    "skills": r["skills"], "kind": r["kind"]}  # fmt: skip
        return r

    return DatasetDict({name: Dataset.from_list([shape(t) for t in texts]) for name, texts in splits.items()})
