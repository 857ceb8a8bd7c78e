"""Lexical diversity of a set of generated texts, shared by the methods that report it (rlhf_diversity's suite,
tq_star's evaluation): distinct-n pools the n-grams of every text and counts the unique ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def distinct_n(texts: Sequence[str], n: int, split: Callable[[str], list[str]] = str.split) -> float:
    """|unique word n-grams| / |word n-grams| over the texts pooled, words from `split` (whitespace by default, as
    most papers count); 0 when the texts have no n-gram."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1")
    grams = [tuple(w[i : i + n]) for w in map(split, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
