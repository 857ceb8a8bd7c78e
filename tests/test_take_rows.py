"""`take_rows`: the first n rows of each split, or n drawn with a seed, as a registered model-free transform that a run
trains on (a subset as a paper's or a demo's budget asks)."""

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from trl_ext.data.select import take_rows
from trl_ext.plugin.registry import get

ROWS = Dataset.from_list([{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(10)])


def test_first_rows_and_all_when_fewer():
    assert take_rows(3)(ROWS)["prompt"] == ["p0", "p1", "p2"]
    assert take_rows("20")(ROWS)["prompt"] == [f"p{i}" for i in range(10)]
    with pytest.raises(ValueError, match="at least 1"):
        take_rows(0)


def test_a_seeded_draw_is_datasets_shuffle_permutation():
    """Dataset.shuffle(seed) orders the rows by numpy's default_rng(seed).permutation; the draw is its first n."""
    order = np.random.default_rng(7).permutation(10)[:4]
    assert take_rows(4, shuffle="true", seed=7)(ROWS)["prompt"] == [f"p{i}" for i in order]
    assert take_rows(4, shuffle=True, seed=7)(ROWS)["prompt"] != take_rows(4, shuffle=True, seed=8)(ROWS)["prompt"]


def test_a_streamed_split_takes_n():
    streamed = ROWS.to_iterable_dataset()
    assert [row["prompt"] for row in take_rows(2)(streamed)] == ["p0", "p1"]


def test_registered_and_applied_to_every_split_by_the_runner():
    from trl_ext.run.stage import apply_transforms

    record = get("transform", "take_rows")
    data = DatasetDict({"train": ROWS, "test": ROWS.select(range(2))})
    out = apply_transforms([(record, {"n": "3"})], data, "rows")
    assert out["train"]["prompt"] == ["p0", "p1", "p2"] and len(out["test"]) == 2


def test_a_run_trains_on_the_rows_kept(tiny_model_dir, tmp_path):
    """`trl-ext train sft --transforms take_rows:n=4` with batch 2 for 2 epochs: 4 rows make 2 steps per epoch, 4 in
    all (builtin:arith has 2,000 training rows); a checkpoint every step shows the count."""
    from trl_ext.cli import main

    out = tmp_path / "run"
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith"]
    argv += ["--transforms", "take_rows:n=4", "--num_train_epochs", "2", "--per_device_train_batch_size", "2"]
    argv += ["--report_to", "none", "--save_strategy", "steps", "--save_steps", "1", "--output_dir", str(out)]
    assert main(argv) == 0
    assert sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == [1, 2, 3, 4]
