"""`take_rows`: the first n rows of each split, or n drawn with a seed, as a registered model-free transform that a run
trains on (a subset as a paper's or a demo's budget asks)."""

import math

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


# filter_rows: keep or drop rows by a column's values (STAT's student trained without one skill's items)
TAGGED = Dataset.from_list(
    [
        {"prompt": "a", "skills": ["add"], "kind": 1},
        {"prompt": "b", "skills": ["add", "subtract"], "kind": 2},
        {"prompt": "c", "skills": ["multiply"], "kind": 3},
        {"prompt": "d", "skills": ["subtract", "carry"], "kind": 1},
    ]
)


def test_filter_rows_drops_a_row_when_any_tag_matches_and_keeps_when_one_does():
    from trl_ext.data.select import filter_rows

    assert filter_rows("skills", drop=["subtract"])(TAGGED)["prompt"] == ["a", "c"]
    assert filter_rows("skills", keep=["subtract", "multiply"])(TAGGED)["prompt"] == ["b", "c", "d"]
    assert filter_rows("skills", drop="add")(TAGGED)["prompt"] == ["c", "d"]  # a single value
    assert filter_rows("kind", keep=["1"])(TAGGED)["prompt"] == ["a", "d"]  # values compare as text
    with pytest.raises(ValueError, match="exactly one of keep"):
        filter_rows("skills", keep=["a"], drop=["b"])
    with pytest.raises(ValueError, match="exactly one of keep"):
        filter_rows("skills")


def test_filter_rows_from_a_spec_checks_its_column_and_runs_in_a_training_run(tiny_model_dir, tmp_path, capsys):
    """The spec parses `drop=[subtract]` as a list; the runner refuses a missing column by name; a run on
    builtin:stat_skills without its subtraction items trains on exactly the rows that hold none (counted here from
    the dataset itself): one epoch at batch 50 ends at ceil(kept / 50) steps (the whole pool would take 14), and the
    run prints the transform's rows before and after."""
    from trl_ext.cli import main
    from trl_ext.data import load_dataset
    from trl_ext.run.specs import parse_spec
    from trl_ext.run.stage import apply_transforms

    name, options = parse_spec("filter_rows:column=skills:drop=[subtract]")
    record = get("transform", name)
    assert options == {"column": "skills", "drop": ["subtract"]}
    with pytest.raises(Exception, match="nope"):
        apply_transforms([(record, {"column": "nope", "drop": ["x"]})], DatasetDict({"train": TAGGED}), "rows")

    pool = load_dataset("builtin:stat_skills", "sft")["train"]
    kept = sum("subtract" not in skills for skills in pool["skills"])
    assert 0 < kept < len(pool)
    out = tmp_path / "run"
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:stat_skills"]
    argv += ["--dataset_config", "sft", "--transforms", "filter_rows:column=skills:drop=[subtract]"]
    argv += ["--per_device_train_batch_size", "50", "--num_train_epochs", "1", "--report_to", "none"]
    argv += ["--output_dir", str(out), "--save_strategy", "epoch", "--max_length", "64"]
    assert main(argv) == 0
    assert [int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")] == [math.ceil(kept / 50)]
    # the run says what the transform did, on the one split the trainer reads
    printed = capsys.readouterr().out
    assert f"filter_rows on builtin:stat_skills [train]: {len(pool)} rows -> {kept} rows" in printed
    assert "[test]" not in printed and "[validation]" not in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "sft", "--dataset_name", "builtin:arith", "--transforms", "take_rows"], "needs option(s) n"),
        (["train", "sft", "--transforms", "filter_rows:drop=[x]"], "needs option(s) column (filter_rows:column=..."),
        (["transform", "take_rows", "--dataset_name", "builtin:arith", "--output", "o.jsonl"], "--n ... on"),
    ],
)
def test_a_missing_required_option_is_refused_by_name_before_the_model_loads(argv, message, no_model_load, capsys):
    """Without the check the factory raised a bare TypeError after the model had loaded."""
    from trl_ext.cli import main

    assert main([*argv, "--output_dir", "unused"] if argv[0] == "train" else argv) != 0
    assert message in capsys.readouterr().err


def test_completion_from_builds_a_message_or_text_from_the_gold_column():
    from trl_ext.data.select import completion_from

    chat = Dataset.from_list([{"prompt": [{"role": "user", "content": "2+3?"}], "answer": 5, "completion": "old"}])
    out = completion_from("answer", "The answer is {}.")(chat)
    assert out[0]["completion"] == [{"role": "assistant", "content": "The answer is 5."}]
    assert out.column_names == ["prompt", "answer", "completion"]
    plain = Dataset.from_list([{"prompt": "2+3?", "gold": "5"}])
    assert completion_from("gold")(plain)[0]["completion"] == "5"
    with pytest.raises(ValueError, match="needs a"):
        completion_from("answer", "no slot")


def test_completion_from_picks_one_candidate_of_a_list_cell():
    """PiKa's control arm: a random candidate per row, the same on a rerun and independent of the other rows."""
    from trl_ext.data.select import completion_from

    rows = [{"prompt": f"Q{i}", "responses": [f"r{i}.{j}" for j in range(4)]} for i in range(40)]
    data = Dataset.from_list(rows)
    first = completion_from("responses")(data)
    assert first["completion"] == [f"r{i}.0" for i in range(40)]
    drawn = completion_from("responses", pick="random", seed=3, conversational=True)(data)
    again = completion_from("responses", pick="random", seed=3, conversational=True)(data)
    assert drawn.to_list() == again.to_list()
    picks = [row["completion"][0]["content"] for row in drawn]
    assert all(p.startswith(f"r{i}.") for i, p in enumerate(picks))  # each row's own candidates
    assert len({p.split(".")[1] for p in picks}) == 4  # 40 rows draw every position, not always one
    assert drawn[0]["prompt"] == [{"role": "user", "content": "Q0"}]
    assert drawn[0]["completion"][0]["role"] == "assistant"
    other_seed = completion_from("responses", pick="random", seed=4)(data)["completion"]
    assert other_seed != [row["completion"][0]["content"] for row in drawn]
    with pytest.raises(ValueError, match="empty list"):
        completion_from("responses")(Dataset.from_list([{"prompt": "Q", "responses": []}]))
    with pytest.raises(ValueError, match="pick must be"):
        completion_from("responses", pick="best")


def test_an_sft_run_trains_on_grpo_form_rows_through_completion_from(tiny_model_dir, tmp_path, capsys):
    """builtin:rif_tasks (add) has prompt and answer only: SFT refuses it, and trains with completion_from."""
    from trl_ext.cli import main

    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:rif_tasks"]
    argv += ["--dataset_config", "add", "--max_steps", "1", "--per_device_train_batch_size", "2"]
    argv += ["--report_to", "none", "--save_strategy", "no"]
    assert main([*argv, "--output_dir", str(tmp_path / "a")]) != 0
    assert "needs messages or prompt+completion" in capsys.readouterr().err
    assert main([*argv, "--output_dir", str(tmp_path / "b"), "--transforms", "completion_from:column=answer"]) == 0
    assert (tmp_path / "b" / "model.safetensors").exists()
