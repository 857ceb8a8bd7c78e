"""Harmful label noise on purpose, for a curation comparison: a data-selection method (Q-Tuning, UDS, a filter)
should keep the rows whose answer belongs to another question less often than the clean ones. `corrupt_completions`
rotates the completions among a seeded share of a split's rows, so each chosen row gets a fluent, well-formed answer
that is wrong for its prompt (the Q-Tuning card's demonstration), and nothing else in the split changes."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any


def corrupted_indices(num_rows: int, share: float, seed: int = 0) -> list[int]:
    """The sorted rows `corrupt_completions` rotates: round(share x num_rows) of them, drawn without replacement by
    `random.Random(seed)`; fewer than two rotate nothing (a row cannot take its own answer)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"corrupt_completions: share={share} must lie in [0, 1]")
    count = int(round(share * num_rows))
    return sorted(random.Random(seed).sample(range(num_rows), count)) if count >= 2 else []


def corrupt_completions(
    share: float | str = 0.2, seed: int | str = 0, column: str = "completion", flag_column: str | None = None
) -> Callable[[Any], Any]:
    """`fn(split) -> split` whose `corrupted_indices` rows hold the `column` value of the next chosen row (the last
    the first's). `flag_column`: also write a boolean column saying which rows were corrupted (for an analysis; a
    trainer ignores unknown columns, though a column it reads must not be named so)."""
    share, seed = float(share), int(seed)
    corrupted_indices(0, share)  # checks the share before any data loads

    def apply(split: Any) -> Any:
        if not hasattr(split, "__len__"):
            raise ValueError("corrupt_completions needs a split of known length; a streamed dataset has none")
        if column not in (split.column_names or []):
            raise ValueError(
                f"corrupt_completions: the split has no {column!r} column (columns: {split.column_names})"
            )
        chosen = corrupted_indices(len(split), share, seed)
        if not chosen and not flag_column:
            return split  # fewer than two rows drawn: nothing rotates
        source = {row: chosen[(k + 1) % len(chosen)] for k, row in enumerate(chosen)}
        values = split[column]

        def rotate(row: dict[str, Any], index: int) -> dict[str, Any]:
            done = {column: values[source.get(index, index)]}
            return {**done, flag_column: index in source} if flag_column else done

        return split.map(rotate, with_indices=True)

    return apply


__all__ = ["corrupt_completions", "corrupted_indices"]
