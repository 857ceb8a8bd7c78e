"""`builtin:uds_mix`: the card's demonstration data, an instruction set where half the rows are near-duplicates of
one template (a museum greeting whose visitor number changes) and half are builtin:arith problems, shuffled; the test
split is arith's held-out problems (the non-duplicate half, where UDS should help)."""

from __future__ import annotations

from datasets import Dataset, DatasetDict, concatenate_datasets

DUPLICATE_MARKER = "museum greeting for visitor number"


def near_duplicates(n: int) -> Dataset:
    """n rows of one template: only the visitor number changes."""
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": f"Write the {DUPLICATE_MARKER} {i}."}],
                "completion": [
                    {"role": "assistant", "content": f"Hello, visitor {i}! Welcome to the museum. Enjoy your visit."}
                ],
            }
            for i in range(n)
        ]
    )


def build(form: str = "sft", n_rows: int = 400, seed: int = 0) -> DatasetDict:
    """`n_rows` training rows: the first n_rows // 2 arith problems and the rest near-duplicates, shuffled with
    `seed`, each with its `source` (arith | duplicate); test: arith's 200 held-out problems."""
    if form != "sft":
        raise ValueError(f"uds_mix has no form {form!r}; available: sft")
    from trl_ext.data import load_dataset

    arith = load_dataset("builtin:arith", form="sft")
    half = n_rows // 2
    varied = arith["train"].select(range(half)).select_columns(["prompt", "completion"])
    varied = varied.add_column("source", ["arith"] * len(varied))
    duplicates = near_duplicates(n_rows - half)
    duplicates = duplicates.add_column("source", ["duplicate"] * len(duplicates))
    test = arith["test"].select_columns(["prompt", "completion"])
    test = test.add_column("source", ["arith"] * len(test))
    return DatasetDict({"train": concatenate_datasets([varied, duplicates]).shuffle(seed=seed), "test": test})
