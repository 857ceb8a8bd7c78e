"""`corrupt_completions`: a seeded share of the rows take another chosen row's completion (harmful label noise for a
curation comparison); every other cell and row stays."""

import random

import pytest
from datasets import Dataset, DatasetDict

from trl_ext.data.noise import corrupt_completions, corrupted_indices
from trl_ext.plugin.registry import get

ROWS = Dataset.from_list([{"prompt": f"p{i}", "completion": f"c{i}", "answer": i} for i in range(10)])


def test_the_chosen_rows_rotate_by_one_and_the_rest_stay():
    chosen = sorted(random.Random(3).sample(range(10), 4))  # round(0.4 x 10) rows, drawn as the docstring says
    out = corrupt_completions(share=0.4, seed=3)(ROWS)
    expected = [f"c{i}" for i in range(10)]
    for k, row in enumerate(chosen):
        expected[row] = f"c{chosen[(k + 1) % 4]}"
    assert out["completion"] == expected
    assert out["prompt"] == ROWS["prompt"] and out["answer"] == ROWS["answer"]
    assert all(out["completion"][i] != f"c{i}" for i in chosen)  # no chosen row keeps its own answer
    assert sorted(out["completion"]) == sorted(ROWS["completion"])  # the same answers, misplaced
    assert corrupted_indices(10, 0.4, 3) == chosen


def test_flag_column_names_the_corrupted_rows_and_the_seed_changes_the_draw():
    out = corrupt_completions(share="0.3", seed="1", flag_column="corrupted")(ROWS)
    flagged = [i for i, flag in enumerate(out["corrupted"]) if flag]
    assert flagged == sorted(random.Random(1).sample(range(10), 3))
    assert [i for i in range(10) if out["completion"][i] != f"c{i}"] == flagged
    assert corrupted_indices(10, 0.3, 1) != corrupted_indices(10, 0.3, 2)


def test_conversational_completions_rotate_whole():
    chat = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"q{i}"}], "completion": [{"role": "assistant", "content": f"a{i}"}]}
         for i in range(4)]
    )  # fmt: skip
    out = corrupt_completions(share=1.0, seed=0)(chat)
    assert [m[0]["content"] for m in out["completion"]] == ["a1", "a2", "a3", "a0"]


def test_too_few_rows_rotate_nothing_and_bad_input_is_refused():
    assert corrupt_completions(share=0.1)(ROWS)["completion"] == ROWS["completion"]  # one row cannot swap
    with pytest.raises(ValueError, match=r"share=1.5"):
        corrupt_completions(share=1.5)
    with pytest.raises(ValueError, match="no 'response' column"):
        corrupt_completions(column="response")(ROWS)
    with pytest.raises(ValueError, match="streamed"):
        corrupt_completions()(ROWS.to_iterable_dataset())


def test_registered_with_its_column_and_applied_by_the_runner():
    from trl_ext.run.stage import apply_transforms

    record = get("transform", "corrupt_completions")
    assert record.columns_for({"column": "response"}) == ["response"]
    data = DatasetDict({"train": ROWS})
    out = apply_transforms([(record, {"share": "0.2", "seed": "0"})], data, "rows")
    changed = [i for i in range(10) if out["train"]["completion"][i] != f"c{i}"]
    assert changed == sorted(random.Random(0).sample(range(10), 2))
