"""trl_ext.devtools.demo: the `trl-ext train` command line of a demonstration arm, and the README table."""

import json
from pathlib import Path

import pytest

from trl_ext.devtools.demo import arm_argv, markdown_table, train_arm


def test_arm_argv_spells_flags_like_a_user_would():
    argv = arm_argv(
        "lfu",
        Path("/tmp/out"),
        ["--lfu_alpha", "0.1"],
        use_peft=True,
        gradient_checkpointing=False,
        lora_r=8,
        reward_weights=[1.0, 0.5],
        seed=3,
    )
    assert argv == [
        "train",
        "lfu",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--logging_steps",
        "10",
        "--seed",
        "3",  # a flag overrides the default in place
        "--overwrite_output_dir",
        "true",  # a re-run replaces the arm's previous model
        "--use_peft",
        "true",
        "--gradient_checkpointing",
        "false",
        "--lora_r",
        "8",
        "--reward_weights",
        "1.0",
        "0.5",
        "--output_dir",
        "/tmp/out",
        "--lfu_alpha",
        "0.1",
    ]


def test_markdown_table():
    table = markdown_table(["method", "acc"], [["sft", "1.0%"], ["otr", "2.0%"]])
    assert table == "| method | acc |\n| --- | --- |\n| sft | 1.0% |\n| otr | 2.0% |"


def test_train_arm_trains_through_the_cli(tiny_model_dir, tmp_path):
    minutes = train_arm(
        "sft",
        tmp_path / "arm",
        model_name_or_path=tiny_model_dir,
        dataset_name="builtin:arith",
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=256,
        use_cpu=True,
        bf16=False,
    )
    assert minutes > 0
    assert (tmp_path / "arm" / "config.json").exists()
    assert json.loads((tmp_path / "arm" / "config.json").read_text())["model_type"] == "llama"


def test_failed_arm_ends_the_demo_with_the_cli_exit_code(tmp_path):
    with pytest.raises(SystemExit) as stop:
        train_arm("no_such_method", tmp_path / "arm", dataset_name="builtin:arith")
    assert stop.value.code == 2
