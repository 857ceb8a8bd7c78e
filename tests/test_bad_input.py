"""Bad input is refused before the model loads, with exit code 2 and a message naming the field, the value or the
file and line: flags, component options, the output folder and dataset files and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_ext.cli import main

# A valid short run: each case changes one thing. save_strategy "no" unless a case asks for saving by steps.
BASE_FLAGS = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]


def chat(user: str, assistant: str | None) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def rows(*items: dict) -> list[str]:
    return [json.dumps(item) for item in items]


GOOD = {"text": "Q: 1 + 1? A: 2"}

# name -> (method, extra flags, dataset file name, dataset lines or None, substrings the error must contain).
# "{data}" in a substring is replaced by the dataset file's path.
CASES = {
    "learning_rate inf": ("sft", ["--learning_rate", "inf"], None, None, ["--learning_rate", "inf"]),
    "learning_rate nan": ("sft", ["--learning_rate", "nan"], None, None, ["--learning_rate", "nan"]),
    "learning_rate 0": ("sft", ["--learning_rate", "0"], None, None, ["--learning_rate", "> 0", "0.0"]),
    "learning_rate negative": ("asft", ["--learning_rate=-1e-5"], None, None, ["--learning_rate", "-1e-05"]),
    "gradient_accumulation_steps 0": (
        "sft",
        ["--gradient_accumulation_steps", "0"],
        None,
        None,
        ["--gradient_accumulation_steps", ">= 1", "0"],
    ),
    "batch size 0": ("sft", ["--per_device_train_batch_size", "0"], None, None, ["--per_device_train_batch_size"]),
    "max_steps 0": ("sft", ["--max_steps", "0"], None, None, ["--max_steps", "got 0"]),
    "max_steps -2": ("sft", ["--max_steps=-2"], None, None, ["--max_steps", "got -2"]),
    "epochs 0": ("sft", ["--max_steps", "-1", "--num_train_epochs", "0"], None, None, ["--num_train_epochs"]),
    "save_steps 0": (
        "sft",
        ["--save_strategy", "steps", "--save_steps", "0"],
        None,
        None,
        ["--save_steps", "'steps'", "0"],
    ),
    "max_length -5": ("sft", ["--max_length=-5"], None, None, ["--max_length", "-5"]),
    "max_length 0": ("asft", ["--max_length", "0"], None, None, ["--max_length", "got 0"]),
    "unknown transform option": (
        "sft",
        ["--transforms", "grape:topk=1", "--dataset_name", "builtin:arith_candidates"],
        None,
        None,
        ["transform 'grape'", "topk", "top_k", "batch_size"],
    ),
    "unknown reward option": (
        "grpo",
        [
            "--num_generations",
            "2",
            "--rewards",
            "json_validity:fences=false",
            "--dataset_name",
            "builtin:json_extract",
        ],
        None,
        None,
        ["reward 'json_validity'", "fences", "allow_fences_for_valid"],
    ),
    "option of a reward that takes none": (
        "grpo",
        ["--num_generations", "2", "--rewards", "json_format:strict=true", "--dataset_name", "builtin:json_extract"],
        None,
        None,
        ["reward 'json_format'", "strict", "accepts: none"],
    ),
    "empty jsonl": ("sft", [], "empty.jsonl", [], ["{data}", "no rows"]),
    "blank-only jsonl": ("sft", [], "blank.jsonl", ["", "   "], ["{data}", "no rows"]),
    "corrupt jsonl line": (
        "sft",
        [],
        "bad.jsonl",
        [*rows(GOOD, GOOD), '{"text": "Q: 2 + 2', *rows(GOOD)],
        ["{data}:3"],
    ),
    "jsonl line not an object": ("sft", [], "list.jsonl", [*rows(GOOD), '["a", "b"]'], ["{data}:2", "object"]),
    "json file of lines, corrupt": ("sft", [], "lines.json", [*rows(GOOD), "{oops}"], ["{data}:2"]),
    "text field changes type": (
        "sft",
        [],
        "mixed.jsonl",
        rows(GOOD, GOOD, {"text": 7}),
        ["{data}:3", "'text'", "a number", "line 1"],
    ),
    "other field changes type": (
        "sft",
        [],
        "ids.jsonl",
        rows({**GOOD, "id": 1}, {**GOOD, "id": "b"}),
        ["{data}:2", "'id'"],
    ),
    "text field not a string": ("sft", [], "ints.jsonl", rows({"text": 1}, {"text": 2}), ["'text'", "int64"]),
    "text field null": ("sft", [], "nulltext.jsonl", rows(GOOD, {"text": None}), ["'text'", "null", "row 1"]),
    "null message content": (
        "sft",
        [],
        "nullcontent.jsonl",
        rows({"messages": chat("hi", "hello")}, {"messages": chat("hi", "yo")}, {"messages": chat("2+2?", None)}),
        ["'messages'", "null 'content'", "row 2"],
    ),
    "message content not a string": (
        "sft",
        [],
        "intcontent.jsonl",
        rows({"messages": [{"role": "user", "content": 3}]}),
        ["'messages'", "'content'", "int64"],
    ),
    "empty messages list": (
        "asft",
        [],
        "nomessages.jsonl",
        rows({"messages": chat("hi", "hello")}, {"messages": []}),
        ["'messages'", "empty list", "row 1"],
    ),
    "every messages list empty": ("sft", [], "allempty.jsonl", rows({"messages": []}), ["'messages'", "row 0"]),
    "null completion": (
        "sft",
        [],
        "nullcompletion.jsonl",
        rows({"prompt": "1+1?", "completion": "2"}, {"prompt": "2+2?", "completion": None}),
        ["'completion'", "null", "row 1"],
    ),
    "grpo prompt null": (
        "grpo",
        ["--num_generations", "2", "--rewards", "json_validity"],
        "nullprompt.jsonl",
        rows({"prompt": "Give JSON"}, {"prompt": None}),
        ["'prompt'", "null", "row 1"],
    ),
    "weight_decay nan": ("sft", ["--weight_decay", "nan"], None, None, ["--weight_decay", "nan"]),
    "max_grad_norm negative": ("sft", ["--max_grad_norm=-1"], None, None, ["--max_grad_norm", "-1"]),
    "adam_beta1 2": ("sft", ["--adam_beta1", "2"], None, None, ["--adam_beta1", "[0, 1)", "2.0"]),
    "adam_epsilon 0": ("asft", ["--adam_epsilon", "0"], None, None, ["--adam_epsilon", "(0, inf)"]),
    "warmup_steps negative": ("sft", ["--warmup_steps=-3"], None, None, ["warmup_steps", "-3"]),
    "lora_r 0": ("sft", ["--use_peft", "--lora_r", "0"], None, None, ["--lora_r", "got 0"]),
    "lora_dropout 1": ("sft", ["--use_peft", "--lora_dropout", "1"], None, None, ["--lora_dropout", "[0, 1)"]),
    "eval without an eval split": (
        "sft",
        ["--eval_strategy", "steps", "--eval_steps", "1"],
        "train_only.jsonl",
        rows(GOOD),
        ["--eval_strategy", "'test'", "{data}", "--dataset_test_split"],
    ),
    "seed not a number": ("sft", ["--seed", "abc"], None, None, ["--seed", "'abc'"]),
    "bool flag garbage": ("sft", ["--packing", "maybe"], None, None, ["--packing", "maybe"]),
    "scheduler unknown": ("sft", ["--lr_scheduler_type", "bogus"], None, None, ["--lr_scheduler_type", "'bogus'"]),
    "unknown method": ("no_such_method", [], None, None, ["'no_such_method'", "asft"]),
    "unknown reward": (
        "grpo",
        ["--num_generations", "2", "--rewards", "no_such_reward"],
        None,
        None,
        ["'no_such_reward'", "json_validity"],
    ),
    "unknown transform": ("sft", ["--transforms", "no_such_transform"], None, None, ["'no_such_transform'", "grape"]),
    "rewards for an SFT method": ("sft", ["--rewards", "json_validity"], None, None, ["--rewards", "sft"]),
    "GRPO without rewards": ("grpo", ["--num_generations", "2"], None, None, ["needs --rewards", "json_validity"]),
    "reward_weights count": (
        "grpo",
        ["--num_generations", "2", "--rewards", "json_validity", "--reward_weights", "1", "2"],
        None,
        None,
        ["--reward_weights", "2 values for 1 rewards"],
    ),
    "one generation per prompt": (
        "grpo",
        ["--num_generations", "1", "--rewards", "json_validity"],
        None,
        None,
        ["at least 2 generations", "1"],
    ),
    "missing dataset file": (
        "sft",
        ["--dataset_name", "/nonexistent/trl-ext/data.jsonl"],
        None,
        None,
        ["/nonexistent/trl-ext/data.jsonl", "not found"],
    ),
    "missing train split": ("sft", ["--dataset_train_split", "dev"], "split.jsonl", rows(GOOD), ["'dev'", "train"]),
    "GRPO data without prompts": (
        "grpo",
        ["--num_generations", "2", "--rewards", "json_validity"],
        "noprompt.jsonl",
        rows(GOOD),
        ["{data}", "'text'", "prompt"],
    ),
    "missing model folder": (
        "sft",
        ["--model_name_or_path", "/nonexistent/trl-ext/model"],
        None,
        None,
        ["/nonexistent/trl-ext/model", "does not exist"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_refused_before_model_loads(case, tiny_model_dir, tmp_path, capsys, no_model_load):
    method, flags, file_name, lines, expected = CASES[case]
    data = write_lines(tmp_path / file_name, lines) if file_name else None
    out = tmp_path / "out"
    argv = ["train", method, "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), *BASE_FLAGS, *flags]
    if data is not None:
        argv += ["--dataset_name", data]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err  # ours ("trl-ext: error:") or argparse's ("trl-ext train sft: error:")
    for part in expected:
        assert part.replace("{data}", data or "") in err, (part, err)
    assert not out.exists()


# A recipe is checked whole before stage 1 trains: name -> (stage 2's keys, substrings the error must contain).
RECIPE_CASES = {
    "stage 2 dataset missing": ({"dataset_name": "/nonexistent/trl-ext/stage2.jsonl"}, ["stage2.jsonl", "not found"]),
    "stage 2 corrupt line": ({"dataset_name": "{corrupt}"}, ["{corrupt}:2"]),
    "stage 2 lacks a column": (
        {"method": "grpo", "rewards": "json_validity", "num_generations": 2, "dataset_name": "{good}"},
        ["'text'", "prompt"],
    ),
    "stage 2 model missing": ({"model_name_or_path": "/nonexistent/trl-ext/model"}, ["/nonexistent/trl-ext/model"]),
    "stage 2 reward_weights count": (
        {"method": "grpo", "rewards": "json_validity", "num_generations": 2, "reward_weights": [1.0, 2.0]},
        ["--reward_weights", "2 values for 1 rewards"],
    ),
    "stage 2 unknown key": ({"learning_rat": 1e-5}, ["learning_rat"]),
    "stage 2 learning rate 0": ({"learning_rate": 0}, ["--learning_rate"]),
}


@pytest.mark.parametrize("case", list(RECIPE_CASES))
def test_recipe_is_checked_whole_before_stage_one(case, tiny_model_dir, tmp_path, capsys):
    """Nothing trains (stage 1's folder is never made) when a later stage is bad: the model never loads either."""
    import yaml

    second, expected = RECIPE_CASES[case]
    files = {
        "good": write_lines(tmp_path / "good.jsonl", rows(GOOD, GOOD)),
        "corrupt": write_lines(tmp_path / "corrupt.jsonl", [*rows(GOOD), "{oops"]),
    }
    second = {k: v.format(**files) if isinstance(v, str) else v for k, v in second.items()}
    recipe = {
        "model_name_or_path": tiny_model_dir,
        "output_dir": str(tmp_path / "run"),
        "report_to": "none",
        "save_strategy": "no",
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "stages": [{"method": "sft", "dataset_name": files["good"]}, {"method": "sft", **second}],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(tmp_path / "recipe.yaml")]) == 2
    err = capsys.readouterr().err
    for part in expected:
        assert part.format(**files) in err, (part, err)
    assert not (tmp_path / "run").exists()


def test_the_tables_hold_at_least_forty_cases():
    """The reliability issue asks for >= 40 bad inputs refused before the model loads; the README quotes the count."""
    assert len(CASES) + len(RECIPE_CASES) >= 40


def finished_model(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights")
    return weights


def test_output_dir_with_a_model_is_refused(tiny_model_dir, tmp_path, capsys, no_model_load):
    weights = finished_model(tmp_path / "done")
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "done")]
    assert main([*argv, *BASE_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "--overwrite_output_dir" in err and str(tmp_path / "done") in err and "model.safetensors" in err
    assert weights.read_bytes() == b"weights"


def test_overwrite_output_dir_lets_the_run_replace_the_model(tiny_model_dir, tmp_path):
    weights = finished_model(tmp_path / "done")
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "done")]
    assert main([*argv, *BASE_FLAGS, "--overwrite_output_dir"]) == 0
    assert weights.read_bytes() != b"weights"


def test_a_folder_without_a_model_is_not_refused(tmp_path):
    from trl_ext.run.checks import check_output_dir

    (tmp_path / "logs").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    check_output_dir(str(tmp_path), overwrite=False)  # no model file: nothing to lose


def test_row_numbers_are_counted_across_batches():
    """The row named is the row in the split, also past the first 10,000-row batch and after a select."""
    from datasets import Dataset

    from trl_ext.run.checks import BadInputError, check_rows

    messages = [chat(f"q{i}", f"a{i}") for i in range(23_000)]
    messages[21_345] = chat("q", None)
    dataset = Dataset.from_dict({"messages": messages})
    with pytest.raises(BadInputError, match="row 21345"):
        check_rows(dataset, ["messages"], "d", "train")
    with pytest.raises(BadInputError, match="row 11345"):
        check_rows(dataset.select(range(10_000, 23_000)), ["messages"], "d", "train")
    check_rows(dataset.select(range(21_345)), ["messages"], "d", "train")  # the rows before it are fine


def test_a_tool_call_message_may_have_no_content():
    from datasets import Dataset

    from trl_ext.run.checks import BadInputError, check_rows

    call = [{"type": "function", "function": {"name": "add", "arguments": "{}"}}]
    messages = [
        [
            {"role": "user", "content": "add", "tool_calls": None},
            {"role": "assistant", "content": None, "tool_calls": call},
        ],
        [
            {"role": "user", "content": "add", "tool_calls": None},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
    ]
    check_rows(Dataset.from_dict({"messages": messages[:1]}), ["messages"], "d", "train")
    with pytest.raises(BadInputError, match="row 1"):
        check_rows(Dataset.from_dict({"messages": messages}), ["messages"], "d", "train")


def test_a_valid_jsonl_passes_the_file_check(tmp_path):
    from trl_ext.data import load_dataset

    extra = [{"text": "x", "n": 1}, {"text": "y", "n": 2.5}, {"text": "z", "n": None}]  # ints, floats and nulls mix
    data = write_lines(tmp_path / "ok.jsonl", [*rows(GOOD, *extra), ""])
    assert load_dataset(data)["train"]["text"] == [GOOD["text"], "x", "y", "z"]
