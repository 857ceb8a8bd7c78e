"""The overlap-controlled split (the card's algorithm) and the two transforms a recipe runs it through.

    shuffle the deduplicated pool P with the seed; S = P[:n_sft]
    n_shared = round(o * n_grpo); shared = the first n_shared items of S after a second seeded shuffle
    fresh = the next n_grpo - n_shared items of P after S (they must exist)
    GRPO rows = shared + fresh, shuffled, each marked `in_sft`

Overlap is defined on prompt identity after normalisation, so two rows whose prompts differ only in whitespace are
one item (deduplicated before the split: otherwise a "disjoint" split leaks through duplicates).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

from trl_ext.data.curation import current_split

TRAIN_SPLIT = "train"


def normalized_key(value: Any, hashed: bool = False) -> str:
    """A prompt's identity: its text with whitespace collapsed (chat messages: each role and content, in order);
    with `hashed`, the SHA-1 of that text (to keep a large pool's keys small)."""
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        text = "\n".join(f"{m.get('role', '')}: {' '.join(str(m.get('content', '')).split())}" for m in value)
    elif isinstance(value, str):
        text = " ".join(value.split())
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest() if hashed else text


def shared_count(overlap: float, n_grpo: int) -> int:
    """round(o · N_grpo), halves rounded up (Python's round() would send 0.5 to 0 and 2.5 to 2)."""
    return int(overlap * n_grpo + 0.5)


def _check(n_sft: int, n_grpo: int, overlap: float) -> None:
    for name, value in (("n_sft", n_sft), ("n_grpo", n_grpo)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"overlap_split: {name}={value!r} must be an integer >= 1")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap_split: overlap={overlap!r} must be a number in [0, 1]")
    if shared_count(overlap, n_grpo) > n_sft:
        raise ValueError(
            f"overlap_split: overlap={overlap} of n_grpo={n_grpo} needs {shared_count(overlap, n_grpo)} SFT items; "
            f"n_sft={n_sft} has fewer"
        )


def split_indices(
    keys: Sequence[str], n_sft: int, n_grpo: int, overlap: float = 0.0, seed: int = 0
) -> tuple[list[int], list[int], list[bool]]:
    """(SFT row indices, GRPO row indices, `in_sft` of each GRPO row) into a pool whose rows have `keys`; the first
    row of each key stands for it (duplicates dropped). ValueError when the pool runs out of fresh items."""
    _check(n_sft, n_grpo, overlap)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    pool = list(first.values())
    rng = random.Random(seed)
    rng.shuffle(pool)
    if len(pool) < n_sft:
        raise ValueError(f"overlap_split: n_sft={n_sft} but the pool has {len(pool)} distinct prompts")
    sft = pool[:n_sft]
    n_shared = shared_count(overlap, n_grpo)
    shuffled_sft = list(sft)
    rng.shuffle(shuffled_sft)
    shared = shuffled_sft[:n_shared]
    n_fresh = n_grpo - n_shared
    fresh = pool[n_sft : n_sft + n_fresh]
    if len(fresh) < n_fresh:
        raise ValueError(
            f"overlap_split: {n_fresh} fresh GRPO prompts needed (n_grpo={n_grpo}, overlap={overlap}) but the pool "
            f"has only {len(fresh)} distinct prompts outside the {n_sft} SFT ones ({len(pool)} in all)"
        )
    grpo = [(i, True) for i in shared] + [(i, False) for i in fresh]
    rng.shuffle(grpo)
    return sft, [i for i, _ in grpo], [flag for _, flag in grpo]


def _keys(pool: Any, overlap_key: str, hashed: bool) -> list[str]:
    rows = pool if isinstance(pool, list) else None
    if rows is not None:
        missing = [i for i, row in enumerate(rows) if overlap_key not in row]
        if missing:
            raise ValueError(f"overlap_split: row {missing[0]} has no {overlap_key!r} column")
        return [normalized_key(row[overlap_key], hashed) for row in rows]
    if overlap_key not in pool.column_names:
        raise ValueError(f"overlap_split: the pool has no {overlap_key!r} column; columns: {pool.column_names}")
    return [normalized_key(value, hashed) for value in pool[overlap_key]]


def overlap_split(
    pool: Any,
    n_sft: int,
    n_grpo: int,
    overlap: float = 0.0,
    seed: int = 0,
    overlap_key: str = "prompt",
    hashed: bool = False,
):
    """(sft_ds, grpo_ds) of `pool` (a `datasets.Dataset` or a list of dicts) with `round(overlap · n_grpo)` of the
    GRPO prompts drawn from the SFT ones and the rest fresh; `grpo_ds` carries `in_sft: bool`. The same arguments
    give the same split. Both are `datasets.Dataset`s with the pool's columns."""
    from datasets import Dataset

    if isinstance(pool, list):
        pool = Dataset.from_list(pool)
    sft, grpo, in_sft = split_indices(_keys(pool, overlap_key, hashed), n_sft, n_grpo, overlap, seed)
    grpo_ds = pool.select(grpo)
    if "in_sft" in grpo_ds.column_names:
        grpo_ds = grpo_ds.remove_columns("in_sft")
    return pool.select(sft), grpo_ds.add_column("in_sft", in_sft)


class _SplitTransform:
    """A transform giving one side of `overlap_split` for the train split (held-out splits pass through, with
    `in_sft` false on the GRPO side). Picklable, and `summary` is printed by `trl-ext transform`."""

    side = ""

    def __init__(
        self,
        n_sft: int = 300,
        n_grpo: int = 300,
        overlap: float = 0.0,
        seed: int = 0,
        overlap_key: str = "prompt",
        hashed: bool = False,
        drop_columns: Sequence[str] | str = (),
    ) -> None:
        _check(n_sft, n_grpo, overlap)
        self.n_sft, self.n_grpo, self.overlap, self.seed = n_sft, n_grpo, float(overlap), seed
        self.overlap_key, self.hashed = overlap_key, bool(hashed)
        self.drop_columns = [drop_columns] if isinstance(drop_columns, str) else list(drop_columns)
        self.summary: dict[str, Any] = {}

    def __call__(self, dataset):
        split = current_split()
        if split not in (None, TRAIN_SPLIT):
            self.summary = {}  # what `trl-ext transform` prints for this split: nothing was split
            return self._held_out(dataset)
        sft, grpo = overlap_split(
            dataset, self.n_sft, self.n_grpo, self.overlap, self.seed, self.overlap_key, self.hashed
        )
        actual = sum(grpo["in_sft"]) / len(grpo)
        self.summary = {"overlap/requested": self.overlap, "overlap/actual": actual, "sft_rows": len(sft)}
        self.summary["grpo_rows"] = len(grpo)
        return self._finish(sft if self.side == "sft" else grpo)

    def _held_out(self, dataset):
        return self._finish(dataset)

    def _finish(self, dataset):
        drop = [c for c in self.drop_columns if c in dataset.column_names]
        return dataset.remove_columns(drop) if drop else dataset


class SFTRows(_SplitTransform):
    side = "sft"


class GRPORows(_SplitTransform):
    side = "grpo"

    def __init__(self, *args: Any, drop_columns: Sequence[str] | str = ("completion",), **kwargs: Any) -> None:
        super().__init__(*args, drop_columns=drop_columns, **kwargs)

    def _held_out(self, dataset):
        if "in_sft" not in dataset.column_names:
            dataset = dataset.add_column("in_sft", [False] * len(dataset))
        return self._finish(dataset)


def make_sft_rows(**options: Any) -> SFTRows:
    """The `overlap_sft_rows` transform: the SFT side of the split."""
    return SFTRows(**options)


def make_grpo_rows(**options: Any) -> GRPORows:
    """The `overlap_grpo_rows` transform: the GRPO side, with `in_sft` (its `completion` column dropped by default,
    so GRPO never sees the reference answer as a completion)."""
    return GRPORows(**options)
