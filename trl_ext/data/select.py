"""`take_rows`: a model-free transform that keeps the first N rows of each split (or N drawn at random with a seed),
so a run, a recipe stage or a compare arm can train on a subset as a paper's or a demo's budget asks; TRL's
`--dataset_name` has no row limit of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def take_rows(n: int | str, shuffle: bool | str = False, seed: int | str = 0) -> Callable[[Any], Any]:
    """`fn(split) -> split` with its first `n` rows (all when it has fewer); `shuffle`: `n` rows drawn without
    replacement by `Dataset.shuffle(seed=seed)` (a streamed split: its shuffle buffer), in the drawn order."""
    count = int(n)
    if count < 1:
        raise ValueError(f"take_rows: n={n} must be at least 1")
    draw = str(shuffle).lower() in ("1", "true", "yes")
    seed = int(seed)

    def apply(split: Any) -> Any:
        if draw:
            split = split.shuffle(seed=seed)
        if not hasattr(split, "__len__"):  # an IterableDataset (streaming)
            return split.take(count)
        return split.select(range(min(count, len(split))))

    return apply


__all__ = ["take_rows"]
