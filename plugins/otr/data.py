"""`builtin:arith_ood`: arithmetic word problems whose numbers are below 100 (train and test), and the same kinds of
problems with 3-digit numbers (split `ood`), for OTR's demonstration: does token-level on-policy training generalise
beyond the number range it was trained on? Generated in code, deterministic, answers checked by construction.

Completions use builtin:arith's format ("a + b = c. The answer is c."), so `trl_ext.data.arith.is_correct` reads them.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data.arith import INSTRUCTION, OPS

_NAMES = "Mia Ava Zoe Lena Sofia Nora Leo Noah Omar Ravi Tom Ivan".split()
_OBJECTS = "pencils apples stickers marbles cookies books stamps shells cards beads".split()


def _one_step(rng: random.Random, lo: int, hi: int) -> tuple[str, list[tuple[int, str, int, int]]]:
    name, obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    op = rng.choice("+-*/")
    if op == "+":
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        q = f"{name} has {a} {obj} and gets {b} more. How many {obj} does {name} have now?"
    elif op == "-":
        a = rng.randint(lo + 1, hi)
        b = rng.randint(lo, a - 1)
        q = f"{name} has {a} {obj} and gives away {b}. How many {obj} are left?"
    elif op == "*":
        a, b = rng.randint(lo, hi), rng.randint(2, 9)
        q = f"{name} buys {b} boxes with {a} {obj} in each box. How many {obj} does {name} buy?"
        a, b = b, a  # written "boxes * per box"
    else:
        b = rng.randint(2, 9)
        k = rng.randint(max(1, -(-lo // b)), hi // b)
        a = b * k
        q = f"{name} shares {a} {obj} equally among {b} friends. How many {obj} does each friend get?"
    return q, [(a, op, b, OPS[op](a, b))]


def _two_step(rng: random.Random, lo: int, hi: int) -> tuple[str, list[tuple[int, str, int, int]]]:
    name, obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    first = (a, "+", b, a + b)
    c = rng.randint(max(1, min(lo, first[3] - 1)), min(hi, first[3] - 1))
    q = f"{name} has {a} {obj}, finds {b} more and then gives {c} away. How many {obj} does {name} have now?"
    return q, [first, (first[3], "-", c, first[3] - c)]


def _row(question: str, steps: list[tuple[int, str, int, int]]) -> dict:
    reasoning = " ".join(f"{a} {op} {b} = {c}." for a, op, b, c in steps)
    answer = steps[-1][3]
    return {
        "prompt": [{"role": "user", "content": f"{question} {INSTRUCTION}"}],
        "completion": [{"role": "assistant", "content": f"{reasoning} The answer is {answer}."}],
        "answer": str(answer),
    }


def _problems(n: int, lo: int, hi: int, rng: random.Random, seen: set[str]) -> list[dict]:
    out = []
    while len(out) < n:
        question, steps = (_two_step if rng.random() < 0.25 else _one_step)(rng, lo, hi)
        if question not in seen:
            seen.add(question)
            out.append(_row(question, steps))
    return out


def build(form: str = "sft", seed: int = 0, n_train: int = 2000, n_test: int = 200, n_ood: int = 200) -> DatasetDict:
    """train/test: numbers 2-99; ood: the same problem kinds with numbers 100-999 (multipliers and divisors stay
    single-digit)."""
    if form != "sft":
        raise ValueError(f"arith_ood has no form {form!r}; available: sft")
    rng, seen = random.Random(seed), set()
    in_dist = _problems(n_train + n_test, 2, 99, rng, seen)
    ood = _problems(n_ood, 100, 999, rng, seen)
    return DatasetDict(
        {
            "train": Dataset.from_list(in_dist[:n_train]),
            "test": Dataset.from_list(in_dist[n_train:]),
            "ood": Dataset.from_list(ood),
        }
    )
