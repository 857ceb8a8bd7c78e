"""Model-free row selection for a run, a recipe stage or a compare arm (TRL's `--dataset_name` has neither):
`take_rows` keeps the first N rows of each split (or N drawn with a seed), as a paper's or a demo's budget asks;
`filter_rows` keeps or drops the rows whose column holds given values (STAT's student trained without one skill);
`completion_from` gives prompt-only (GRPO-form) rows a completion from their gold column, for an SFT arm beside
GRPO arms on the same data."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from trl_ext.plugin.options import as_bool


def take_rows(n: int | str, shuffle: bool | str = False, seed: int | str = 0) -> Callable[[Any], Any]:
    """`fn(split) -> split` with its first `n` rows (all when it has fewer); `shuffle`: `n` rows drawn without
    replacement by `Dataset.shuffle(seed=seed)` (a streamed split: its shuffle buffer), in the drawn order."""
    count = int(n)
    if count < 1:
        raise ValueError(f"take_rows: n={n} must be at least 1")
    draw = as_bool(shuffle)
    seed = int(seed)

    def apply(split: Any) -> Any:
        if draw:
            split = split.shuffle(seed=seed)
        if not hasattr(split, "__len__"):  # an IterableDataset (streaming)
            return split.take(count)
        return split.select(range(min(count, len(split))))

    return apply


def _as_set(values: Any) -> frozenset[str] | None:
    if values is None:
        return None
    return frozenset(str(v) for v in (values if isinstance(values, (list, tuple, set)) else [values]))


def filter_rows(column: str, keep: Any = None, drop: Any = None) -> Callable[[Any], Any]:
    """`fn(split) -> split` with the rows whose `column` holds one of `keep` (or none of `drop`); a list-valued cell
    (skill tags) matches when any of its items does. Values compare as text, so `keep=[1,2]` matches 1 and "1"."""
    wanted, unwanted = _as_set(keep), _as_set(drop)
    if (wanted is None) == (unwanted is None):
        raise ValueError(f"filter_rows on {column!r}: give exactly one of keep=[...] or drop=[...]")

    def matches(cell: Any, values: frozenset[str]) -> bool:
        items = cell if isinstance(cell, (list, tuple)) else [cell]
        return any(str(item) in values for item in items)

    def apply(split: Any) -> Any:
        if wanted is not None:
            return split.filter(lambda cell: matches(cell, wanted), input_columns=column)
        return split.filter(lambda cell: not matches(cell, unwanted), input_columns=column)

    return apply


def completion_from(
    column: str = "answer",
    template: str = "{}",
    pick: str = "first",
    seed: int | str = 0,
    conversational: bool | str = False,
) -> Callable[[Any], Any]:
    """`fn(split) -> split` with a `completion` built from `column` through `template` (`"The answer is {}."`): an
    assistant message when the prompt is a conversation, else the text; the other columns stay. A list-valued cell
    (k candidate responses) gives one item: the first, or with `pick=random` one drawn per row from a generator
    seeded by (`seed`, row index), so a rerun or another process draws the same. `conversational`: a text prompt
    becomes a user message (and the completion the assistant's), as SFT on a chat model wants."""
    if "{}" not in template:
        raise ValueError(f"completion_from: template {template!r} needs a {{}} where the {column!r} value goes")
    if pick not in ("first", "random"):
        raise ValueError(f"completion_from: pick must be 'first' or 'random', got {pick!r}")
    seed = int(seed)
    as_chat = as_bool(conversational)

    def complete(row: dict[str, Any], index: int) -> dict[str, Any]:
        value = row[column]
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"completion_from: row {index}'s {column!r} is an empty list: nothing to pick")
            value = value[0] if pick == "first" else random.Random(f"{seed}:{index}").choice(list(value))
        text = template.replace("{}", str(value))
        prompt = row.get("prompt")
        if as_chat and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        done = {"completion": [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text}
        return {**done, "prompt": prompt} if as_chat and "prompt" in row else done

    def apply(split: Any) -> Any:
        if "completion" in (split.column_names or []):
            split = split.remove_columns("completion")
        return split.map(complete, with_indices=True)

    return apply


__all__ = ["completion_from", "filter_rows", "take_rows"]
