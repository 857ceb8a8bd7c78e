"""`builtin:s3ft_problems`: self-solvable problems with gold answers, generated in code, for the s3ft transform.

Form "math" (the default): arithmetic in GSM8K's shape: `prompt` (a user message), gold `completion` (worked steps
then "#### N"), `answer` (N, a string) and `kind`: "easy" (one operation on numbers under 20, which a 135M instruct
model often gets right by itself: the "self" route has rows to take) or "word" (one- or two-step word problems from
`trl_ext.data.arith`, mostly beyond it: the paraphrase and gold routes). Form "code": MBPP-like function tasks with a
gold solution in a ```python fence and `tests` (assert statements) for the `python_unittest` judge.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data import arith

FORMS = ("math", "code")
INSTRUCTION = arith.INSTRUCTION


def _easy(rng: random.Random) -> arith.Problem:
    op = rng.choice(["+", "-", "*"])
    a, b = rng.randint(2, 19), rng.randint(2, 9)
    if op == "-" and b > a:
        a, b = b, a
    return arith.Problem(f"What is {a} {op} {b}?", (arith._step(a, op, b),))


def _math_row(problem: arith.Problem, kind: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"{problem.question} {INSTRUCTION}"}],
        "completion": [{"role": "assistant", "content": f"{problem.reasoning}\n#### {problem.answer}"}],
        "answer": str(problem.answer),
        "kind": kind,
    }


def math_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct problems, alternating easy and word problems."""
    rng = random.Random(seed)
    words = iter(arith.problems(n, seed))
    rows, seen = [], set()
    while len(rows) < n:
        kind = "easy" if len(rows) % 2 == 0 else "word"
        problem = _easy(rng) if kind == "easy" else next(words)
        if problem.question not in seen:
            seen.add(problem.question)
            rows.append(_math_row(problem, kind))
    return rows


# (function name, task, body with {k}, inputs to test, reference implementation)
_CODE_TASKS = [
    ("add_{k}", "returns x plus {k}", "return x + {k}", (0, 3, -2), lambda k, x: x + k),
    ("times_{k}", "returns x multiplied by {k}", "return x * {k}", (0, 4, -3), lambda k, x: x * k),
    ("minus_{k}", "returns x minus {k}", "return x - {k}", (0, 10, 7), lambda k, x: x - k),
    ("is_multiple_of_{k}", "returns True when x is divisible by {k}, else False", "return x % {k} == 0",
     (0, 7, 12), lambda k, x: x % k == 0),
    ("first_{k}", "returns the first {k} characters of the string s", "return s[:{k}]",
     ("hello world", "ab", ""), lambda k, s: s[:k]),
    ("repeat_{k}", "returns the string s repeated {k} times", "return s * {k}", ("ab", "", "x"),
     lambda k, s: s * k),
]  # fmt: skip


def code_rows(ks: list[int]) -> list[dict]:
    rows = []
    for k in ks:
        for name, task, body, inputs, ref in _CODE_TASKS:
            fn, arg = name.format(k=k), "s" if "s[" in body or "s *" in body else "x"
            code = f"def {fn}({arg}):\n    {body.format(k=k)}"
            rows.append(
                {
                    "prompt": [{"role": "user", "content": f"Write a Python function `{fn}({arg})` that "
                                f"{task.format(k=k)}. Reply with the code in a ```python block."}],
                    "completion": [{"role": "assistant", "content": f"```python\n{code}\n```"}],
                    "tests": [f"assert {fn}({x!r}) == {ref(k, x)!r}" for x in inputs],
                    "kind": name.replace("_{k}", ""),
                }
            )  # fmt: skip
    return rows


def build(form: str | None = None, seed: int = 0, n_train: int = 64, n_test: int = 32) -> DatasetDict:
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"s3ft_problems comes in the forms {FORMS}, not {form!r}.")
    if form == "math":
        rows = math_rows(n_train + n_test, seed)
        train, test = rows[:n_train], rows[n_train:]
    else:
        train, test = code_rows([2, 3]), code_rows([5])
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
