"""`add_length_levels`: request a length level per prompt, as TLDR's training data does.

Each row gets a level ℓ drawn uniformly from `levels` (seeded by the row's index, so the same rows get the same levels
in every process and run), stored in the `length_level` column, and the line `level_template.format(level=ℓ)` appended
to its prompt (to the last user message of a conversational prompt). The prompt grows by that one line only: with the
default template at most 8 tokens of SmolLM2's tokenizer ("\\nReasoning budget: medium."), so the transform keeps
within a token budget whatever prompts it is given (GRPO in TRL 1.16 never truncates prompts).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .config import DEFAULT_LEVELS, LEVEL_TEMPLATE


def level_for(index: int, levels: Sequence[str], seed: int = 0) -> str:
    """The level of row `index`: uniform over `levels`, a function of (seed, index) only."""
    return random.Random(seed * 1_000_003 + index).choice(list(levels))


def with_level(prompt: Any, level: str, level_template: str = LEVEL_TEMPLATE) -> Any:
    """`prompt` (a string or a list of messages) with the level line appended."""
    line = level_template.format(level=level)
    if isinstance(prompt, str):
        return f"{prompt}\n{line}"
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt):
        messages = [dict(m) for m in prompt]
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if users and isinstance(messages[users[-1]].get("content"), str):
            messages[users[-1]]["content"] = f"{messages[users[-1]]['content']}\n{line}"
        else:
            messages.append({"role": "user", "content": line})
        return messages
    raise ValueError(f"add_length_levels needs a 'prompt' column of strings or message lists, got {prompt!r:.200}")


def _check(levels: Sequence[str], level: str | None, level_template: str) -> list[str]:
    if isinstance(levels, str):
        levels = [part.strip() for part in levels.split(",") if part.strip()]
    levels = [str(lv).strip().lower() for lv in levels]
    if not levels:
        raise ValueError("levels must name at least one length level")
    if level is not None and str(level).strip().lower() not in levels:
        raise ValueError(f"level={level!r} is not one of levels: {', '.join(levels)}")
    if not isinstance(level_template, str) or "{level}" not in level_template:
        raise ValueError(f"level_template={level_template!r} must be a string containing '{{level}}'")
    return levels


def add_length_levels(
    levels: Sequence[str] = tuple(DEFAULT_LEVELS),
    seed: int = 0,
    level_template: str = LEVEL_TEMPLATE,
    level: str | None = None,
):
    """Build the transform `fn(dataset) -> dataset` (a `datasets.Dataset` or `DatasetDict`): every row gets a
    `length_level` (uniform over `levels`, seeded; all rows `level` when given, e.g. to evaluate one level) and its
    prompt the level line."""
    levels = _check(levels, level, level_template)
    fixed = str(level).strip().lower() if level is not None else None

    def row_fn(row: dict[str, Any], index: int) -> dict[str, Any]:
        chosen = fixed or level_for(index, levels, seed)
        return {"prompt": with_level(row["prompt"], chosen, level_template), "length_level": chosen}

    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        if "prompt" not in dataset.column_names:
            raise ValueError(f"add_length_levels needs a 'prompt' column; the dataset has {dataset.column_names}")
        return dataset.map(row_fn, with_indices=True)

    return transform
