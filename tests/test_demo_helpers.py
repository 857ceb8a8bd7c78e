"""trl_ext.devtools.demo: the `trl-ext train` command line of a demonstration arm, and the README table."""

import json
from pathlib import Path

import pytest

from trl_ext.devtools.demo import arm_argv, markdown_table, mean_with_interval, train_arm


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


def test_load_tuned_merges_an_adapter_into_its_base_and_loads_a_full_model_as_is(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from trl_ext.devtools.demo import load_tuned
    from trl_ext.models import load_model
    from trl_ext.testing import save_tiny_model

    base = save_tiny_model(tmp_path / "base")
    peft_model = get_peft_model(
        load_model(str(base)), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits  # the adapter applied on the fly, not merged
        merged = load_tuned(tmp_path / "adapter", base=str(base))
        assert not hasattr(merged, "peft_config")
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-5)
        plain = load_tuned(base)
        assert torch.allclose(plain(input_ids=ids).logits, load_model(str(base))(input_ids=ids).logits)
        assert not torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-5)


def test_mean_with_interval_is_compare_s_normal_interval():
    # [0, 1]: mean 0.5, s = sqrt(0.5), half-width 1.96 * s / sqrt(2) = 0.98
    assert mean_with_interval([0.0, 1.0]) == "0.500 [-0.480, 1.480]"
    assert mean_with_interval([1.0, 1.0, 1.0]) == "1.000 [1.000, 1.000]"
