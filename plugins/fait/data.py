"""`builtin:code_mutants`: small Python functions with unit tests, each with incorrect variants made by single-token
mutations (+ <-> -, < <-> <=, > <-> >=, == <-> !=, += <-> -=, integer off-by-one), kept only when they fail at least
one of the function's tests. Generated in code and checked in `trl_ext.rewards.sandbox`, so FAIT's demo runs offline.

The card's variant generation asks a strong teacher LLM for a minimally different, failing solution; these
programmatic mutants stand in for it (same contract: executes, fails >= 1 test, differs in one place).
"""

from __future__ import annotations

import functools
import io
import random
import re
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

from trl_ext.rewards.sandbox import run_tests

SWAPS = {
    "+": "-",
    "-": "+",
    "<": "<=",
    "<=": "<",
    ">": ">=",
    ">=": ">",
    "==": "!=",
    "!=": "==",
    "+=": "-=",
    "-=": "+=",
}
MAX_VARIANTS = 3
TRAIN_SIZE, TEST_SIZE = 300, 100


@dataclass(frozen=True)
class Task:
    name: str
    signature: str
    description: str
    code: str
    tests: tuple[str, ...]

    @property
    def prompt(self) -> str:
        return (
            f"Write a Python function `{self.signature}` that {self.description}\n"
            f"Example: {self.tests[0]}\nReply with the code only."
        )


def _body(*lines: str) -> str:
    return "\n".join(lines)


# Each template: rng -> (stem, args, description, code lines after the def, inputs -> expected function).
# Tests use boundary inputs (values equal to the constants) so that operator mutants fail.
def _t_sum_below(rng):
    k = rng.randint(3, 9)
    ins = [[k - 2, k, k + 3, 1], [k, k], [k - 1, k + 1], [0, 2 * k]]
    return (
        "sum_below",
        "xs",
        f"returns the sum of the numbers in `xs` that are smaller than {k}.",
        _body(
            "    total = 0", "    for v in xs:", f"        if v < {k}:", "            total += v", "    return total"
        ),
        ins,
        lambda xs: sum(v for v in xs if v < k),
    )


def _t_count_at_least(rng):
    k = rng.randint(2, 9)
    ins = [[k, k - 1, k + 1], [k - 1], [k, k, 0], [2 * k, k - 2]]
    return (
        "count_at_least",
        "xs",
        f"returns how many numbers in `xs` are at least {k}.",
        _body(
            "    count = 0", "    for v in xs:", f"        if v >= {k}:", "            count += 1", "    return count"
        ),
        ins,
        lambda xs: sum(v >= k for v in xs),
    )


def _t_affine(rng):
    a, b = rng.randint(2, 9), rng.randint(1, 20)
    ins = [0, 1, 5, -3]
    return (
        "scale_and_add",
        "x",
        f"returns {a} times `x` plus {b}.",
        f"    return x * {a} + {b}",
        ins,
        lambda x: x * a + b,
    )


def _t_shift_scale(rng):
    a, b = rng.randint(2, 7), rng.randint(1, 15)
    ins = [b, b + 1, 0, 10]
    return (
        "shift_then_scale",
        "x",
        f"returns `x` minus {b}, multiplied by {a}.",
        f"    return (x - {b}) * {a}",
        ins,
        lambda x: (x - b) * a,
    )


def _t_clamp(rng):
    lo = rng.randint(0, 5)
    hi = lo + rng.randint(3, 10)
    ins = [lo - 1, lo, hi, hi + 2, lo + 1]
    return (
        "clamp_value",
        "x",
        f"returns `x` limited to the range from {lo} to {hi} (inclusive).",
        _body(
            f"    if x < {lo}:", f"        return {lo}", f"    if x > {hi}:", f"        return {hi}", "    return x"
        ),
        ins,
        lambda x: min(max(x, lo), hi),
    )


def _t_join_repeat(rng):
    k, sep = rng.randint(2, 5), rng.choice("-+*/|")
    ins = ["ab", "x", "hey"]
    return (
        "repeat_join",
        "s",
        f"returns the string `s` repeated {k} times, joined by '{sep}'.",
        f'    return "{sep}".join([s] * {k})',
        ins,
        lambda s: sep.join([s] * k),
    )


def _t_prefix_upper(rng):
    k = rng.randint(2, 5)
    ins = ["python", "hello world", "ab", "abcdefgh"]
    return (
        "upper_prefix",
        "s",
        f"returns the first {k} characters of `s` in upper case.",
        f"    return s[:{k}].upper()",
        ins,
        lambda s: s[:k].upper(),
    )


def _t_suffix(rng):
    k = rng.randint(2, 5)
    ins = ["python", "abcdefgh", "mnopqrs"]
    return (
        "last_chars",
        "s",
        f"returns the last {k} characters of `s`.",
        f"    return s[-{k}:]",
        ins,
        lambda s: s[-k:],
    )


def _t_multiples(rng):
    k = rng.randint(2, 6)
    ins = [[k, k + 1, 2 * k, 1], [1, 2 * k + 1], [0, 3 * k, k - 1]]
    return (
        "multiples_of",
        "xs",
        f"returns the numbers in `xs` that are divisible by {k}, in order.",
        f"    return [v for v in xs if v % {k} == 0]",
        ins,
        lambda xs: [v for v in xs if v % k == 0],
    )


def _t_range_sum(rng):
    s = rng.randint(1, 4)
    ins = [s, s + 1, s + 5, 10]
    return (
        "sum_range",
        "n",
        f"returns the sum of the integers from {s} to `n` inclusive.",
        f"    return sum(range({s}, n + 1))",
        ins,
        lambda n: sum(range(s, n + 1)),
    )


def _t_abs_diff(rng):
    k = rng.randint(2, 9)
    ins = [(5, 2), (2, 5), (4, 4), (-1, 3)]
    return (
        "scaled_distance",
        "a, b",
        f"returns the absolute difference between `a` and `b`, multiplied by {k}.",
        _body("    if a > b:", f"        return (a - b) * {k}", f"    return (b - a) * {k}"),
        ins,
        lambda ab: abs(ab[0] - ab[1]) * k,
    )


def _t_between(rng):
    lo = rng.randint(0, 5)
    hi = lo + rng.randint(2, 8)
    ins = [lo, hi, lo + 1, hi - 1, hi + 1]
    return (
        "strictly_between",
        "x",
        f"returns True if `x` is strictly between {lo} and {hi}, else False.",
        f"    return {lo} < x < {hi}",
        ins,
        lambda x: lo < x < hi,
    )


def _t_square_minus(rng):
    k = rng.randint(1, 9)
    ins = [0, 2, 3, -4]
    return (
        "square_minus",
        "x",
        f"returns the square of `x` minus {k}.",
        f"    return x ** 2 - {k}",
        ins,
        lambda x: x**2 - k,
    )


def _t_half_plus(rng):
    k = rng.randint(1, 9)
    ins = [7, 8, 0, 15]
    return (
        "half_plus",
        "n",
        f"returns `n` divided by 2 (rounded down) plus {k}.",
        f"    return n // 2 + {k}",
        ins,
        lambda n: n // 2 + k,
    )


def _t_trim(rng):
    a, b = rng.randint(1, 3), rng.randint(1, 3)
    ins = ["abcdefghij", "0123456789xy", "programming"]
    return (
        "trim_ends",
        "s",
        f"returns `s` without its first {a} and its last {b} characters.",
        f"    return s[{a}:len(s) - {b}]",
        ins,
        lambda s: s[a : len(s) - b],
    )


def _t_max_minus(rng):
    k = rng.randint(1, 9)
    ins = [[3, 9, 2], [5], [-2, -7, 0, 4], [4, 4, 1]]
    return (
        "max_minus",
        "xs",
        f"returns the largest number in `xs` minus {k}.",
        _body(
            "    best = xs[0]",
            "    for v in xs[1:]:",
            "        if v > best:",
            "            best = v",
            f"    return best - {k}",
        ),
        ins,
        lambda xs: max(xs) - k,
    )


def _t_count_chars(rng):
    chars = "".join(sorted(rng.sample("aeioust", 3)))
    ins = ["statistics", "queue", "xyz", chars + chars]
    return (
        "count_chars",
        "s",
        f"returns how many characters of `s` are one of '{chars}'.",
        _body("    n = 0", "    for ch in s:", f'        if ch in "{chars}":', "            n += 1", "    return n"),
        ins,
        lambda s: sum(ch in chars for ch in s),
    )


def _t_first_above(rng):
    k = rng.randint(2, 9)
    ins = [[1, k, k + 1], [k + 5, 0], [k, k - 1], [0, 1, 2 * k]]
    return (
        "first_index_above",
        "xs",
        f"returns the index of the first number in `xs` greater than {k}, or -1 if there is none.",
        _body("    for i, v in enumerate(xs):", f"        if v > {k}:", "            return i", "    return -1"),
        ins,
        lambda xs: next((i for i, v in enumerate(xs) if v > k), -1),
    )


TEMPLATES: list[Callable[[random.Random], tuple]] = [
    _t_sum_below,
    _t_count_at_least,
    _t_affine,
    _t_shift_scale,
    _t_clamp,
    _t_join_repeat,
    _t_prefix_upper,
    _t_suffix,
    _t_multiples,
    _t_range_sum,
    _t_abs_diff,
    _t_between,
    _t_square_minus,
    _t_half_plus,
    _t_trim,
    _t_max_minus,
    _t_count_chars,
    _t_first_above,
]
_SUFFIXES = ["", "_v2", "_fn", "_value", "_calc", "_of", "_result", "_simple"]


def make_task(rng: random.Random, template: Callable[[random.Random], tuple]) -> Task:
    stem, args, description, body, inputs, reference = template(rng)
    name = stem + rng.choice(_SUFFIXES)
    code = f"def {name}({args}):\n{body}\n"
    calls = [f"{name}(*{value!r})" if isinstance(value, tuple) else f"{name}({value!r})" for value in inputs]
    tests = tuple(f"assert {call} == {reference(value)!r}" for call, value in zip(calls, inputs, strict=True))
    return Task(name, f"{name}({args})", description, code, tests)


def mutants(code: str) -> list[str]:
    """Every single-token mutant of the function body (never the `def` line): an operator swapped per `SWAPS`,
    or an integer literal moved by one in either direction."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    lines = code.splitlines(keepends=True)
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line))
    out = []
    for tok in tokens:
        (row, col), (erow, ecol) = tok.start, tok.end
        if row == 1 or row != erow:
            continue
        replacements = []
        if tok.type == tokenize.OP and tok.string in SWAPS:
            replacements.append(SWAPS[tok.string])
        elif tok.type == tokenize.NUMBER and re.fullmatch(r"\d+", tok.string):
            value = int(tok.string)
            replacements += [str(value + 1)] + ([str(value - 1)] if value > 0 else [])
        start, end = line_starts[row - 1] + col, line_starts[row - 1] + ecol
        out += [code[:start] + new + code[end:] for new in replacements]
    return out


def extract_code(text: str) -> str:
    """The program in a model's answer: the first fenced block if there is one, else the text itself."""
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
    return match.group(1) if match else text


@functools.lru_cache(maxsize=4)
def _rows(seed: int) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    rng = random.Random(seed)
    tasks, seen = [], set()
    for attempt in range(100 * (TRAIN_SIZE + TEST_SIZE)):
        task = make_task(rng, TEMPLATES[attempt % len(TEMPLATES)])
        if task.code not in seen:  # held-out functions never repeat a training function exactly
            seen.add(task.code)
            tasks.append(task)
        if len(tasks) == TRAIN_SIZE + TEST_SIZE:
            break
    else:
        raise RuntimeError("builtin:code_mutants could not draw enough distinct functions")
    candidates = [mutants(task.code) for task in tasks]
    items = [(task.code, task.tests) for task in tasks]
    items += [(variant, task.tests) for task, variants in zip(tasks, candidates, strict=True) for variant in variants]
    outcomes = run_tests(items, per_item_timeout=2.0)
    for task, outcome in zip(tasks, outcomes[: len(tasks)], strict=False):
        if not outcome.all_passed:
            raise RuntimeError(f"builtin:code_mutants reference solution fails its tests: {task.code}\n{outcome}")
    failing = iter(not o.all_passed for o in outcomes[len(tasks) :])
    rows = []
    for task, variants in zip(tasks, candidates, strict=True):
        kept = [variant for variant in variants if next(failing)]
        rng.shuffle(kept)
        rows.append(
            {
                "prompt": [{"role": "user", "content": task.prompt}],
                "completion": [{"role": "assistant", "content": task.code}],
                "incorrect_completions": kept[:MAX_VARIANTS],
                "tests": list(task.tests),
                "entry_point": task.name,
            }
        )
    order = list(range(len(rows)))
    rng.shuffle(order)
    rows = [rows[i] for i in order]
    return tuple(rows[:TRAIN_SIZE]), tuple(rows[TRAIN_SIZE:])


def build(form: str = "sft", seed: int = 0) -> DatasetDict:
    """train (300) / test (100) rows: conversational `prompt` and `completion` (the correct function),
    `incorrect_completions` (1-3 failing single-token mutants), `tests` (assert statements), `entry_point`."""
    if form != "sft":
        raise ValueError(f"builtin:code_mutants has the form 'sft' only, not {form!r}")
    train, test = _rows(seed)
    return DatasetDict({"train": Dataset.from_list(list(train)), "test": Dataset.from_list(list(test))})


def pass_at_1(completions: Sequence[str], tests: Sequence[Sequence[str]]) -> float:
    """Share of completions (code extracted from fences) that pass all of their tests, run in the sandbox."""
    outcomes = run_tests(
        [(extract_code(c), list(t)) for c, t in zip(completions, tests, strict=True)], per_item_timeout=2.0
    )
    return sum(o.all_passed for o in outcomes) / max(len(outcomes), 1)
