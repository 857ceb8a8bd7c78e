"""24-style card arithmetic ("General Points"): a safe evaluator for answer expressions and a brute-force solver.

Face cards J, Q, K count by a rule stated in the prompt (the official GP default: all 10); number cards and A (1)
count as their face. An answer is an arithmetic expression over the cards' values with + - * / and parentheses,
using each value exactly once, that evaluates to the target (24 by default).
"""

from __future__ import annotations

import ast
import itertools
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

FACES = ("J", "Q", "K")
MAX_EXPR_CHARS = 200  # an answer expression longer than this is not parsed (bounded cost)
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def card_value(card: str | int, face_values: dict[str, int]) -> int:
    """The value of one card under `face_values` ({"J": 11, "Q": 12, "K": 13}); "A" is 1, digits count as written."""
    text = str(card).strip().upper()
    if text in face_values:
        return int(face_values[text])
    if text == "A":
        return 1
    return int(text)


def card_values(cards: Sequence[str | int], face_values: dict[str, int]) -> list[int]:
    return [card_value(c, face_values) for c in cards]


def evaluate(expr: str) -> tuple[Fraction, list[int]] | None:
    """The exact value of an arithmetic expression and the integer literals it uses, or None when it is not a plain
    + - * / expression over non-negative integers (anything else: names, calls, powers, division by zero, too long)."""
    if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS:
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    numbers: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ZeroDivisionError
            return left / right
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
            numbers.append(node.value)
            return Fraction(node.value)
        raise ValueError("not an arithmetic expression")

    try:
        return walk(tree.body), numbers
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


def is_solution(expr: str, values: Sequence[int], target: int = 24) -> bool:
    """True when `expr` uses exactly the multiset `values` and evaluates to `target`."""
    result = evaluate(expr)
    if result is None:
        return False
    value, used = result
    return value == target and Counter(used) == Counter(int(v) for v in values)


def solve(values: Sequence[int], target: int = 24) -> str | None:
    """An expression over `values` (each once) equal to `target`, or None; deterministic (the first one found)."""
    items = [(Fraction(v), str(v)) for v in values]

    def search(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            options = [(a + b, f"{ea} + {eb}"), (a - b, f"{ea} - {eb}"), (a * b, f"{_wrap(ea)} * {_wrap(eb)}")]
            if b != 0:
                options.append((a / b, f"{_wrap(ea)} / {_wrap(eb)}"))
            for value, text in options:
                found = search([*rest, (value, f"({text})" if len(rest) else text)])
                if found is not None:
                    return found
        return None

    found = search(items)
    if found is None:
        return None
    return _strip_outer(found)


def _wrap(expr: str) -> str:
    return expr if expr.isdigit() or expr.startswith("(") and _balanced_outer(expr) else f"({expr})"


def _balanced_outer(expr: str) -> bool:
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(expr) - 1:
            return False
    return True


def _strip_outer(expr: str) -> str:
    while expr.startswith("(") and _balanced_outer(expr):
        expr = expr[1:-1]
    return expr
