"""The official few-shot split: a seeded pool/test split of the target domain (80/20), then per class the first k
rows of the class's shuffled pool indices for training and the LAST one for validation; the rest is unused."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, DatasetDict

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class FewShotIndices:
    """Row indices of the labelled target set: `train` (k per class), `validation` (val_per_class per class, the
    last of each class's shuffled pool indices), `test` (the held-out share), `unused` (the rest of the pool)."""

    train: list[int]
    validation: list[int]
    test: list[int]
    unused: list[int]


def few_shot_indices(
    labels: Sequence[Any], k: int = 3, val_per_class: int = 1, test_ratio: float = 0.2, seed: int = 0
) -> FewShotIndices:
    """The split as indices (see the module docstring). A class whose pool has fewer than k + val_per_class rows is
    refused: the official code raises rather than train on fewer shots."""
    if k < 1 or val_per_class < 0:
        raise ValueError(f"few_shot_split: k={k} must be >= 1 and val_per_class={val_per_class} >= 0.")
    if not 0.0 <= test_ratio < 1.0:
        raise ValueError(f"few_shot_split: test_ratio={test_ratio} must be in [0, 1).")
    rng = random.Random(seed)
    order = list(range(len(labels)))
    rng.shuffle(order)
    n_test = int(round(test_ratio * len(labels)))
    test, pool = sorted(order[:n_test]), sorted(order[n_test:])
    by_class: dict[Any, list[int]] = {}
    for i in pool:
        by_class.setdefault(labels[i], []).append(i)
    train, validation = [], []
    for label in sorted(by_class, key=str):
        members = list(by_class[label])
        rng.shuffle(members)
        if len(members) < k + val_per_class:
            raise ValueError(
                f"few_shot_split: class {label!r} has {len(members)} rows in the pool, fewer than k + val_per_class "
                f"= {k + val_per_class}."
            )
        train += members[:k]
        validation += members[len(members) - val_per_class :] if val_per_class else []
    used = set(train) | set(validation)
    return FewShotIndices(train, validation, test, [i for i in pool if i not in used])


def few_shot_split(
    dataset: Dataset,
    label_column: str = "label",
    k: int = 3,
    val_per_class: int = 1,
    test_ratio: float = 0.2,
    seed: int = 0,
) -> DatasetDict:
    """`DatasetDict(train, validation, test)` of a labelled target set (test_ratio=0 when a separate test set is
    given: `test` is then empty)."""
    if label_column not in dataset.column_names:
        raise ValueError(f"few_shot_split: no label column {label_column!r}; columns: {dataset.column_names}")
    idx = few_shot_indices(dataset[label_column], k, val_per_class, test_ratio, seed)
    return DatasetDict({part: dataset.select(getattr(idx, part)) for part in PARTS})


def make_fewshot_transform(
    part: str = "train",
    label_column: str = "label",
    k: Any = 3,
    val_per_class: Any = 1,
    test_ratio: Any = 0.2,
    seed: Any = 0,
):
    """The registry's factory (`few_shot_split`): each split it is applied to becomes its `part` of the split."""
    if part not in PARTS:
        raise ValueError(f"few_shot_split: part={part!r} must be one of {', '.join(PARTS)}.")
    options = dict(label_column=label_column, k=int(k), val_per_class=int(val_per_class),
                   test_ratio=float(test_ratio), seed=int(seed))  # fmt: skip
    return lambda ds: few_shot_split(ds, **options)[part]
