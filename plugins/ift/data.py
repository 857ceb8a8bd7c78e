"""`builtin:arith_chains`: multi-step arithmetic chains whose completion is one reasoning line per step and a final
answer line, for IFT's demonstration (exposure bias grows with the number of steps a model must chain on its own
output). Generated in code, deterministic, answers checked by construction; `num_steps` (3-5) lets a demo read
accuracy by chain length.

    prompt:     "Start with 12. Add 5, multiply by 3, subtract 7, then add 9. What is the result? ..."
    completion: "12 + 5 = 17.\n17 * 3 = 51.\n51 - 7 = 44.\n44 + 9 = 53.\nThe answer is 53."
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data.arith import OPS

INSTRUCTION = "Work it out one step per line and end with 'The answer is N.'"
_WORDS = {"+": "add", "-": "subtract", "*": "multiply by", "/": "divide by"}


def _next_step(rng: random.Random, value: int) -> tuple[str, int]:
    """One operation that keeps the running value a whole number in [0, 999]."""
    options = ["+", "-"] if value < 2 else ["+", "-", "-"]
    if value <= 99:
        options.append("*")
    divisors = [d for d in range(2, 10) if value % d == 0 and value // d >= 2]
    if divisors:
        options.append("/")
    op = rng.choice(options)
    if op == "+":
        return op, rng.randint(1, min(50, 999 - value))
    if op == "-":
        return op, rng.randint(0 if value < 2 else 1, min(50, value))
    if op == "*":
        return op, rng.randint(2, min(5, 999 // max(value, 1)))
    return op, rng.choice(divisors)


def chain(rng: random.Random, num_steps: int) -> dict:
    start = rng.randint(2, 60)
    value, steps = start, []
    for _ in range(num_steps):
        op, operand = _next_step(rng, value)
        result = OPS[op](value, operand)
        steps.append((value, op, operand, result))
        value = result
    phrases = [f"{_WORDS[op]} {b}" for _, op, b, _ in steps]
    spoken = ", ".join(phrases[:-1]) + f", then {phrases[-1]}"
    question = f"Start with {start}. {spoken[0].upper()}{spoken[1:]}. What is the result?"
    lines = [f"{a} {op} {b} = {c}." for a, op, b, c in steps] + [f"The answer is {value}."]
    return {
        "prompt": [{"role": "user", "content": f"{question} {INSTRUCTION}"}],
        "completion": [{"role": "assistant", "content": "\n".join(lines)}],
        "answer": str(value),
        "num_steps": num_steps,
    }


def build(form: str = "sft", seed: int = 0, n_train: int = 2000, n_test: int = 200) -> DatasetDict:
    """Train and test splits of distinct chains with 3, 4 or 5 steps (uniformly)."""
    if form != "sft":
        raise ValueError(f"arith_chains has no form {form!r}; available: sft")
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n_train + n_test:
        row = chain(rng, rng.randint(3, 5))
        if row["prompt"][0]["content"] not in seen:
            seen.add(row["prompt"][0]["content"])
            rows.append(row)
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
