"""`builtin:tldr_arith`: arithmetic word problems with `<think>` traces and length levels, generated in code.

Problems are trl-ext's arithmetic problems (one or two steps of +, -, *, exact /). Two forms:

- "grpo": `prompt` (a user message asking for thinking in `<think></think>` and a final `\\boxed{N}`, then the level
  line "Reasoning budget: {level}."), `answer` and `length_level` (uniform over short/medium/long, seeded).
- "sft": the same prompt WITHOUT a level line and a `completion` with a `<think>` trace of varying length (the steps,
  then 0-3 checks, seeded): the "long-CoT SFT" starting point, which knows no levels, so that any level-dependent
  length after GRPO comes from TLDR's reward, not from the SFT data.

Prompts stay under 90 tokens of SmolLM2's tokenizer (chat template excluded); 200 train / 60 test rows.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data.arith import Problem, problems

from .config import DEFAULT_LEVELS, LEVEL_TEMPLATE
from .transforms import level_for, with_level

FORMS = ("grpo", "sft")
INSTRUCTION = "Think step by step inside <think> </think>, then give the final answer as \\boxed{N}."
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def prompt(problem: Problem) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{problem.question} {INSTRUCTION}"}]


def trace(problem: Problem, rng: random.Random) -> str:
    """A `<think>` trace: the steps, then a random number of checks (so that lengths vary for GRPO to shape)."""
    lines = ["Let me work through the problem."]
    for i, (a, op, b, c) in enumerate(problem.steps):
        lines.append(f"{'First' if i == 0 else 'Then'}, {a} {op} {b} = {c}.")
    checks = [f"Check: {c} {_INVERSE[op]} {b} = {a}, so {a} {op} {b} = {c} is right." for a, op, b, c in problem.steps]
    lines += checks[: rng.randint(0, len(checks))]
    if rng.random() < 0.5:
        lines.append(f"Let me reread the question to be sure. The result is {problem.answer}.")
    return "<think>\n" + "\n".join(lines) + "\n</think>\n"


def completion_text(problem: Problem, rng: random.Random) -> str:
    return f"{trace(problem, rng)}The answer is \\boxed{{{problem.answer}}}."


def build(form: str = "grpo", seed: int = 0, n_train: int = 200, n_test: int = 60) -> DatasetDict:
    """Train and test splits in the shape of `form` ("grpo" or "sft"); the same rows for the same seed."""
    if form not in FORMS:
        raise ValueError(f"tldr_arith has no form {form!r}; available: {', '.join(FORMS)}")
    items = problems(n_train + n_test, seed + 7)  # other problems than builtin:arith's first ones
    rng = random.Random(seed)
    rows = []
    for index, problem in enumerate(items):
        if form == "sft":
            completion = [{"role": "assistant", "content": completion_text(problem, rng)}]
            rows.append({"prompt": prompt(problem), "completion": completion, "answer": str(problem.answer)})
        else:
            level = level_for(index, tuple(DEFAULT_LEVELS), seed)
            rows.append(
                {
                    "prompt": with_level(prompt(problem), level, LEVEL_TEMPLATE),
                    "answer": str(problem.answer),
                    "length_level": level,
                }
            )
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
