"""GSM8K -> GSM8K-JSON: the paper's second evaluation task, as a dataset transform.

Each row becomes a conversational prompt whose system message asks for JSON only in the released model's template
{"reasoning": "<steps>", "answer": <number>}, plus the columns the RL-Struct rewards read: `schema` and `gold` (JSON
strings, so rows with different keys share one Arrow type) and `task` = "gsm8k_json".
"""

from __future__ import annotations

import json
import math
from typing import Any

from .rewards import numeric_value

TASK = "gsm8k_json"
SCHEMA = {"reasoning": "str", "answer": "number"}
SYSTEM_PROMPT = (
    "You are a helpful assistant that replies in JSON only. Solve the problem step by step, then reply with a single "
    "JSON object and nothing else: no markdown code fences, no text before or after it. Use exactly this template:\n"
    '{"reasoning": "<steps>", "answer": <number>}'
)


def gsm8k_answer(answer: Any) -> int | float:
    """The final number of a GSM8K answer: the text after the last "####" ("... #### 1,234" -> 1234), or a plain
    number / numeric string. Integral values come back as int."""
    if isinstance(answer, str) and "####" in answer:
        answer = answer.rsplit("####", 1)[1]
    number = numeric_value(answer)
    if number is None:
        raise ValueError(f"cannot read a final numeric answer from {answer!r} (expected '... #### N' or a number)")
    return int(number) if number.is_integer() and math.isfinite(number) else number


def _messages(row: dict[str, Any], system_prompt: str) -> list[dict[str, str]]:
    question = row.get("question")
    prompt = question if question is not None else row.get("prompt")
    if prompt is None:
        raise ValueError(f"gsm8k_to_json_task needs a 'question' or 'prompt' column; row has {', '.join(row)}")
    if isinstance(prompt, str):
        return [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    if messages and messages[0].get("role") == "system":  # keep the row's own instructions after ours
        messages[0]["content"] = f"{system_prompt}\n\n{messages[0]['content']}"
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def to_json_task_row(row: dict[str, Any], system_prompt: str = SYSTEM_PROMPT) -> dict[str, Any]:
    """One GSM8K-style row (`question` or `prompt`, and `answer`) -> the RL-Struct columns."""
    if row.get("answer") is None:
        raise ValueError(f"gsm8k_to_json_task needs an 'answer' column; row has {', '.join(row)}")
    return {
        "prompt": _messages(row, system_prompt),
        "schema": json.dumps(SCHEMA),
        "gold": json.dumps({"answer": gsm8k_answer(row["answer"])}),
        "task": TASK,
    }


def gsm8k_to_json_task(system_prompt: str = SYSTEM_PROMPT):
    """Build the transform: `fn(dataset) -> dataset` for a `datasets.Dataset` or `DatasetDict`. The `question`
    column is replaced by `prompt`; other columns (the original `answer` included) are kept."""

    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        drop = [c for c in ("question", "prompt", "schema", "gold", "task") if c in dataset.column_names]
        return dataset.map(to_json_task_row, fn_kwargs={"system_prompt": system_prompt}, remove_columns=drop)

    return transform
