"""Verdicts made outside the untrusted process.

A test of the form `assert EXPR == LITERAL` (or `LITERAL == EXPR`) is split here: only EXPR goes into the sandbox,
which sends back the `repr` of its value (plain data only: None, bools, numbers, strings, bytes, and lists, tuples,
sets and dicts of them), and the comparison with LITERAL is made by the caller. Code that cannot compute the right
value cannot pass such a test, whatever it writes or however it exits. Any other test statement runs whole inside
the sandbox and its pass is reported by the sandboxed process: weaker, as the program under test could forge it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.rewards.sandbox.limits import TestOutcome

_NO_LITERAL = object()


@dataclass(frozen=True)
class Check:
    """One test as the sandbox sees it (`kind` "expr": evaluate `text`; "stmt": run it) and the value expected."""

    kind: str
    text: str
    test: str
    expected: Any = _NO_LITERAL


def plan_checks(tests: Sequence[str]) -> list[Check]:
    return [_plan(test) for test in tests]


def _plan(test: str) -> Check:
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Check("stmt", test, test)
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
        compare = tree.body[0].test
        if isinstance(compare, ast.Compare) and len(compare.ops) == 1 and isinstance(compare.ops[0], ast.Eq):
            left, right = compare.left, compare.comparators[0]
            for expr, literal in ((left, right), (right, left)):
                try:
                    expected = ast.literal_eval(literal)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                source = ast.get_source_segment(test, expr)
                if source is not None:
                    return Check("expr", f"({source})", test, expected)
    return Check("stmt", test, test)


def judge(checks: Sequence[Check], output: str, timed_out: bool) -> TestOutcome:
    """The outcome of one program from what its sandboxed child wrote: one JSON line per check, in order."""
    entries = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            break
        if not isinstance(entry, dict):
            break
        entries.append(entry)
    if entries and "setup_error" in entries[0]:
        return TestOutcome(0, len(checks), str(entries[0]["setup_error"])[:300])
    passed, error = 0, None
    for check, entry in zip(checks, entries + [None] * (len(checks) - len(entries)), strict=False):
        if entry is None:
            error = error or ("timeout" if timed_out else "sandbox process failed")
        elif "error" in entry:
            error = error or str(entry["error"])[:300]
        elif _passes(check, entry):
            passed += 1
        else:
            error = error or f"AssertionError: {check.test}"[:300]
    return TestOutcome(passed, len(checks), error)


def _passes(check: Check, entry: dict) -> bool:
    if check.expected is _NO_LITERAL:
        return entry.get("ok") is True
    value = entry.get("value")
    if not isinstance(value, str):
        return False
    try:
        return bool(ast.literal_eval(value) == check.expected)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
