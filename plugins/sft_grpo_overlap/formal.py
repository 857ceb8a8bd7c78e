"""`builtin:formal_arith`: the card's synthetic autoformalization task, generated in code, and its string-rule
checkers (stand-ins for Lean's compiler and the paper's LLM judge).

An English arithmetic statement ("the sum of 3 and 4 is 7") maps to one mini-formal statement
(`theorem : 3 + 4 = 7`). The grammar is `theorem : A OP B REL C` with integers A, B, C, OP in {+, -, *} and REL in
{=, !=, <, >}. A statement may be false: autoformalization asks for a faithful translation, not a true one.

- `compile_check(text)`: the text's first line parses under the grammar (Lean's "it compiles").
- `semantic_check(prompt, text)`: it compiles and says what the English statement in the prompt says: the same
  relation, result and operation on the same operands (either order for + and *, which commute). The statement is
  read from the prompt by rule, so the judge needs no reference column (the card's `semantic_judge(prompt, text)`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

FORMS = ("sft", "grpo")
NUM_TRAIN, NUM_TEST = 1000, 100
INSTRUCTION = "Formalize the statement as 'theorem : A op B rel C' (op: + - *, rel: = != < >)."

_OPS = {"+": ("the sum of {a} and {b}", "{a} plus {b}"), "-": ("the difference of {a} and {b}", "{a} minus {b}"),
        "*": ("the product of {a} and {b}", "{a} times {b}")}  # fmt: skip
_RELS = {"=": ("is {c}", "equals {c}"), "!=": ("is not {c}", "does not equal {c}"),
         "<": ("is less than {c}",), ">": ("is greater than {c}",)}  # fmt: skip
_COMMUTATIVE = {"+", "*"}
_FORMAL = re.compile(r"^\s*theorem\s*:\s*(-?\d+)\s*([+*-])\s*(-?\d+)\s*(=|!=|<|>)\s*(-?\d+)\s*\.?\s*$")


@dataclass(frozen=True)
class Statement:
    """One formal statement `A OP B REL C`."""

    a: int
    op: str
    b: int
    rel: str
    c: int

    @property
    def formal(self) -> str:
        return f"theorem : {self.a} {self.op} {self.b} {self.rel} {self.c}"

    def canonical(self) -> tuple[Any, ...]:
        a, b = (min(self.a, self.b), max(self.a, self.b)) if self.op in _COMMUTATIVE else (self.a, self.b)
        return (a, self.op, b, self.rel, self.c)


def parse_formal(text: str) -> Statement | None:
    """The statement of `text`'s first non-empty line, or None when it does not parse."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    match = _FORMAL.match(lines[0]) if lines else None
    if match is None:
        return None
    a, op, b, rel, c = match.groups()
    return Statement(int(a), op, int(b), rel, int(c))


def _english_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    out = []
    for op, op_forms in _OPS.items():
        for rel, rel_forms in _RELS.items():
            for op_form in op_forms:
                for rel_form in rel_forms:
                    text = re.escape(f"{op_form} {rel_form}").replace(r"\{a\}", "{a}").replace(r"\{b\}", "{b}")
                    text = text.replace(r"\{c\}", "{c}")
                    text = text.format(a=r"(?P<a>-?\d+)", b=r"(?P<b>-?\d+)", c=r"(?P<c>-?\d+)").replace(r"\ ", r"\s+")
                    out.append((re.compile(rf"^{text}\.?$", re.IGNORECASE), op, rel))
    return out


_ENGLISH = _english_patterns()


def parse_english(statement: str) -> Statement | None:
    """The statement an English sentence of the task says, or None when it is not one of the task's phrasings."""
    text = " ".join(str(statement).split())
    for pattern, op, rel in _ENGLISH:
        match = pattern.match(text)
        if match:
            return Statement(int(match["a"]), op, int(match["b"]), rel, int(match["c"]))
    return None


def prompt_text(prompt: Any) -> str:
    """The text of a plain prompt or the last user message of a conversational one."""
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return "" if prompt is None else str(prompt)


def statement_of(prompt: Any) -> str:
    """The English statement of a task prompt: the text after the instruction's last line break."""
    return prompt_text(prompt).strip().splitlines()[-1] if prompt_text(prompt).strip() else ""


def compile_check(text: str) -> bool:
    """True when `text` parses as a mini-formal statement (the card's compile check c(y))."""
    return parse_formal(text) is not None


def semantic_check(prompt: Any, text: str) -> bool:
    """True when `text` compiles and is faithful to the English statement in `prompt` (the card's judge s(y))."""
    candidate, meant = parse_formal(text), parse_english(statement_of(prompt))
    return candidate is not None and meant is not None and candidate.canonical() == meant.canonical()


def sample_statement(rng: random.Random) -> tuple[str, Statement]:
    """One English statement and its formal meaning; about half the equalities are true."""
    op = rng.choice(sorted(_OPS))
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    rel = rng.choice(["=", "=", "!=", "<", ">"])
    c = value if rel == "=" and rng.random() < 0.5 else value + rng.choice([-3, -2, -1, 1, 2, 3])
    english = f"{rng.choice(_OPS[op])} {rng.choice(_RELS[rel])}".format(a=a, b=b, c=c)
    return english, Statement(a, op, b, rel, c)


def build(form: str = "sft", seed: int = 0, n_train: int = NUM_TRAIN, n_test: int = NUM_TEST):
    """Distinct statements, train / test, in the shape of `form`: `sft` (prompt, completion, reference, statement)
    or `grpo` (prompt, reference, statement). Both forms hold the same rows in the same order, so a split keyed on
    the prompt selects the same items whichever form a stage loads."""
    from datasets import Dataset, DatasetDict

    if form not in FORMS:
        raise ValueError(f"builtin:formal_arith has no form {form!r}; available: {', '.join(FORMS)}")
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n_train + n_test:
        english, meaning = sample_statement(rng)
        if english in seen:
            continue
        seen.add(english)
        row = {"prompt": [{"role": "user", "content": f"{INSTRUCTION}\n{english}"}]}
        if form == "sft":
            row["completion"] = [{"role": "assistant", "content": meaning.formal}]
        rows.append({**row, "reference": meaning.formal, "statement": english})
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
