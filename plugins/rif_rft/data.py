"""`builtin:rif_tasks`: toy continual-learning tasks in the card's spirit, generated in code, sized so that
SmolLM2-135M-Instruct solves some of each (the card's uppercase / 2-digit sums / reversal are beyond it: 0/16 greedy):
`first` (the first letter of a word, as a capital), `add` (two one-digit numbers) and `last` (the last letter, as a
capital). Rows: `prompt` (a user message), `answer` and
`task`; 48 train / 16 test rows per task (disjoint). Form `all` interleaves the tasks; a task's name as the form gives
that task alone. `rif_task_reward` scores them (1 if the completion's final answer is the row's `answer`)."""

from __future__ import annotations

import random
import re
from typing import Any

from datasets import Dataset, DatasetDict

from trl_ext.evaluation.judges import numeric_match
from trl_ext.rewards.toolkit import reward_function

TASKS = ("first", "add", "last")
FORMS = ("all", *TASKS)
_WORDS = (
    "bird cake door fish gold hand iron jump kite lamp moon nest oven park rain ship star tree wolf yard "
    "bell coin desk farm game hill king leaf milk note pear road salt time vase wind boat card dust frog"
).split()


def _row(task: str, rng: random.Random, word: str) -> dict:
    if task == "first":
        question, answer = (
            f"What is the first letter of the word '{word}'? Reply with the capital letter only.",
            word[0].upper(),
        )
    elif task == "last":
        question, answer = (
            f"What is the last letter of the word '{word}'? Reply with the capital letter only.",
            word[-1].upper(),
        )
    else:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        question, answer = f"What is {a} + {b}? Reply with the answer only.", str(a + b)
    return {
        "prompt": [{"role": "user", "content": question}],
        "answer": answer,
        "task": task,
    }


def task_rows(task: str, split: str) -> list[dict]:
    """48 train / 16 test rows of `task`: test words are the last 16 of the word list (train the first 24, twice)."""
    rng = random.Random(f"{task}:{split}")
    words = _WORDS[24:] if split == "test" else _WORDS[:24] * 2
    return [_row(task, rng, w) for w in words]


def build(form: str = "all", seed: int = 0) -> DatasetDict:
    if form not in FORMS:
        raise ValueError(f"builtin:rif_tasks has the forms {', '.join(FORMS)}; got {form!r}.")
    tasks = TASKS if form == "all" else (form,)
    splits = {}
    for split in ("train", "test"):
        per_task = [task_rows(t, split) for t in tasks]
        splits[split] = Dataset.from_list([row for group in zip(*per_task, strict=True) for row in group])
    return DatasetDict(splits)


_TOKENS = re.compile(r"[A-Za-z0-9]+")


def answer_matches(text: str, answer: str) -> bool:
    """The completion's final answer equals `answer`: numerically for a number; else its last alphanumeric word
    equals the answer exactly (case matters: 'b' is no answer to 'B')."""
    answer = str(answer).strip()
    if re.fullmatch(r"-?\d+", answer):
        return numeric_match(None, text, answer)
    words = _TOKENS.findall(str(text))
    return bool(words) and words[-1] == answer


@reward_function(name="rif_task_reward", columns=("answer",))
def rif_task_reward(completion: str, answer: Any = "", **row) -> float | None:
    """None (not applicable) for a row without a usable `answer` (not an int or non-empty text: a None gold read as
    "None" once gave 1.0 to a completion ending in that word)."""
    usable = (isinstance(answer, int) and not isinstance(answer, bool)) or (isinstance(answer, str) and answer.strip())
    if not usable:
        return None
    return 1.0 if answer_matches(completion, answer) else 0.0


def rif_task_judge(prompt, candidate: str, gold) -> bool:
    """`answer_matches` as a judge `(prompt, candidate, gold) -> bool` (`trl_ext.evaluation.judges`' shape)."""
    return answer_matches(candidate, gold)
