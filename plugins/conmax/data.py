"""`builtin:conmax_traces`: long arithmetic reasoning traces to compress, generated in code.

Each row is an arithmetic word problem from `trl_ext.data.arith` with a deliberately verbose trace z: every step is
restated, computed, then re-verified ("Wait, let me verify ...") and re-checked in another way, before the final
"The answer is N." The gold answer y is N. A good compression keeps the computations and the final answer and drops
the checks: about a third of the length.

Forms: "grpo" (rows already through `conmax_prompts` with its defaults and no tokenizer: each prompt's message
contents stay under the default 1,024-byte budget), "traces" (prompt = question, trace, answer: the input of
`conmax_prompts`) and "sft" (the uncompressed traces as SFT completions: the baseline ConMax shortens).
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from trl_ext.data.arith import Problem, problems

FORMS = ("grpo", "traces", "sft")
NUM_TRAIN, NUM_TEST = 64, 16
_WORDS = {"+": "add {a} and {b}", "-": "subtract {b} from {a}", "*": "multiply {a} by {b}", "/": "divide {a} by {b}"}
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _check(a: int, op: str, b: int, c: int) -> str:
    """c re-checked through the inverse operation: c - b = a, c + b = a, c / b = a, c * b = a."""
    return f"{c} {_INVERSE[op]} {b} = {a}"


def verbose_trace(problem: Problem, rng: random.Random) -> str:
    """The long trace z of a problem: each step computed, verified twice, then the answer."""
    parts = [rng.choice(["Okay, let me think about this carefully.", "Hmm, let me read the question again."])]
    for i, (a, op, b, c) in enumerate(problem.steps):
        parts.append(f"{'First' if i == 0 else 'Next'}, I need to {_WORDS[op].format(a=a, b=b)}. {a} {op} {b} = {c}.")
        parts.append(f"Wait, let me verify that. {a} {op} {b}... yes, that gives {c}.")
        parts.append(f"Let me double-check another way: {_check(a, op, b, c)}, so {a} {op} {b} = {c} is right.")
    parts.append(f"Hmm, so the result should be {problem.answer}. Let me make sure I did not miss anything... no.")
    parts.append(f"The answer is {problem.answer}.")
    return " ".join(parts)


def rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed + 1)
    return [{"prompt": p.question, "trace": verbose_trace(p, rng), "answer": str(p.answer)} for p in problems(n, seed)]


def build(form: str = "grpo", seed: int = 0) -> DatasetDict:
    """train (64) / test (16) rows in `form`, the same for the same seed."""
    if form not in FORMS:
        raise ValueError(f"builtin:conmax_traces has the forms {', '.join(FORMS)}, not {form!r}")
    data = rows(NUM_TRAIN + NUM_TEST, seed)
    if form == "grpo":
        from .transforms import build_compression_prompts

        data = [build_compression_prompts(row) for row in data]
    elif form == "sft":
        data = [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": f"<think>{r['trace']}</think>\n{r['answer']}"}],
                "answer": r["answer"],
            }
            for r in data
        ]
    return DatasetDict({"train": Dataset.from_list(data[:NUM_TRAIN]), "test": Dataset.from_list(data[NUM_TRAIN:])})
