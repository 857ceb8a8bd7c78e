"""`past_subset`: subset k of K of a source set for iterative skill refinement: row i is kept when i % K == k - 1.
`builtin:past_facts` lists one person per row in the same order in its docs and its questions, so the same (k, K)
picks the same people's documents for a round's SFT stage and their questions for its GRPO stage."""

from __future__ import annotations

from typing import Any


class Subset:
    def __init__(self, part: int = 1, parts: int = 1) -> None:
        part, parts = int(part), int(parts)
        if parts < 1:
            raise ValueError(f"past_subset: parts={parts} must be >= 1")
        if not 1 <= part <= parts:
            raise ValueError(f"past_subset: part={part} must be in 1..parts ({parts})")
        self.part, self.parts = part, parts

    def __call__(self, dataset: Any) -> Any:
        return dataset.select([i for i in range(len(dataset)) if i % self.parts == self.part - 1])


def make_subset(**options: Any) -> Subset:
    return Subset(**options)
