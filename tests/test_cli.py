"""The CLI from a user's side: listing, info, plugins, training a tiny local model, recipes, and bad input refused
before training with a message naming the problem."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from trl_ext import testing
from trl_ext.cli import main

TINY_FLAGS = testing.tiny_run_flags(3, 4, logging_steps=1)


run_cli = functools.partial(testing.run_cli, check=False)


def test_list_json_has_the_issue_components(capsys):
    assert main(["list", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    by_name = {(r["kind"], r["name"]): r for r in records}
    assert by_name[("method", "asft")]["paper"]["arxiv"] == "2509.23753"
    assert by_name[("method", "asft")]["family"] == "sft-loss"
    assert by_name[("transform", "grape")]["paper"]["arxiv"] == "2502.04194"
    for reward in ("json_validity", "json_format", "json_structure", "json_content"):
        assert by_name[("reward", reward)]["plugin"] == "rlstruct"
    for dataset in ("arith", "json_extract", "arith_candidates"):
        assert ("dataset", dataset) in by_name
    assert {"name", "kind", "family", "plugin", "paper"} <= set(records[0])


def test_list_filters(capsys):
    assert main(["list", "--kind", "reward", "--json"]) == 0
    kinds = {r["kind"] for r in json.loads(capsys.readouterr().out)}
    assert kinds == {"reward"}


def test_info_shows_fields_columns_and_example(capsys):
    assert main(["info", "asft"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "Anchored Supervised Fine-Tuning",
        "2509.23753",
        "--kl_weight (default: 0.1)",
        "--asft_loss",
        "prompt+completion",
        "trl-ext train asft",
        "@article",
    ):
        assert needle in out, needle


@pytest.mark.parametrize(("method", "command"), [("asft", "sft"), ("chord", "grpo"), ("vla_opd", "distillation")])
def test_info_names_the_trl_subcommand_whose_flags_apply(method, command, capsys):
    """A hybrid base (chord's sft_grpo) takes its TRL trainer's flags: `trl sft_grpo` does not exist."""
    assert main(["info", method]) == 0
    assert f"every `trl {command}` flag applies" in capsys.readouterr().out


def test_train_asft_writes_model_and_card(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "asft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), *TINY_FLAGS]) == 0
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2509.23753" in card and "@article" in card
    assert "builtin:arith" in card and "method: asft" in card


def test_unknown_method_suggests_close_match(capsys):
    assert main(["train", "asfft"]) == 2
    err = capsys.readouterr().err
    assert "Unknown method 'asfft'" in err and "Did you mean: asft" in err


def test_missing_column_refused_before_training(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "asft",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:json_extract",
            "--dataset_config",
            "grpo",
            "--output_dir",
            str(out),
            *TINY_FLAGS,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "asft" in err and "prompt+completion" in err and "json_extract" in err
    assert not out.exists()


def test_reward_column_missing_is_named(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "train",
            "grpo",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:arith",
            "--rewards",
            "json_structure",
            "--num_generations",
            "2",
            "--output_dir",
            str(tmp_path / "x"),
            *TINY_FLAGS,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "'schema'" in err and "json_structure" in err


@pytest.mark.parametrize("flag,value,field", [("--kl_weight", "-1", "kl_weight"), ("--asft_loss", "rl", "asft_loss")])
def test_out_of_range_config_refused(tmp_path, capsys, flag, value, field):
    assert main(["train", "asft", flag, value, "--output_dir", str(tmp_path / "x")]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_malformed_recipes_refused(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("method: asft\nkl_weight: [0.1\n")
    assert main(["train", "--config", str(bad_yaml)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("method: asft\nkl_wieght: 0.1\n")
    assert main(["train", "--config", str(unknown)]) == 2
    assert "kl_wieght" in capsys.readouterr().err
    no_method = tmp_path / "stages.yaml"
    no_method.write_text(yaml.safe_dump({"stages": [{"max_steps": 1}]}))
    assert main(["train", "--config", str(no_method)]) == 2
    assert "stage 1 names no `method`" in capsys.readouterr().err
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- asft\n")
    assert main(["train", "--config", str(not_mapping)]) == 2
    assert "mapping" in capsys.readouterr().err


def test_two_stage_recipe_feeds_the_next_stage(tiny_model_dir, tmp_path):
    recipe = {
        "model_name_or_path": tiny_model_dir,
        "output_dir": str(tmp_path / "runs"),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "report_to": "none",
        "save_strategy": "no",
        "stages": [{"method": "sft"}, {"method": "asft", "kl_weight": 0.2}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0
    first, second = tmp_path / "runs" / "stage-1-sft", tmp_path / "runs" / "stage-2-asft"
    assert (first / "model.safetensors").exists() and (second / "model.safetensors").exists()
    card = (second / "README.md").read_text()
    assert "a local model (`stage-1-sft`)" in card and f"model_name_or_path: {first}" in card  # from stage 1
    assert "kl_weight: 0.2" in card


@pytest.mark.parametrize("method, trainer_name", [("grpo", "GRPO"), ("rloo", "RLOO")])
def test_reward_trainers_compose_registered_rewards(tiny_model_dir, tmp_path, method, trainer_name):
    out = tmp_path / method
    code = main(
        [
            "train",
            method,
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:json_extract",
            "--rewards",
            "json_validity,json_structure",
            "--reward_weights",
            "1.0",
            "0.5",
            *testing.tiny_grpo_flags(),
            "--output_dir",
            str(out),
        ]
    )
    assert code == 0
    assert (out / "model.safetensors").exists()
    assert f"trained with {trainer_name}" in (out / "README.md").read_text()  # TRL's own trainer ran


def test_broken_plugin_is_reported_and_list_still_works(tmp_path):
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    dist = tmp_path / "broken_mod-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-mod\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[trl_ext]\nbroken = broken_mod\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    plugins = run_cli("plugins", "--json", env=env)
    assert plugins.returncode == 0, plugins.stderr
    by_name = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert by_name["broken"]["status"] == "error"
    assert "this plugin is broken on purpose" in by_name["broken"]["error"]
    assert by_name["asft"]["status"] == "ok"
    listing = run_cli("list", env=env)
    assert listing.returncode == 0 and "asft" in listing.stdout and "failed to load: broken" in listing.stdout


def test_transform_grape_writes_jsonl(tiny_model_dir, tmp_path):
    out = tmp_path / "picked.jsonl"
    result = run_cli(
        "transform",
        "grape",
        "--model_name_or_path",
        tiny_model_dir,
        "--dataset_name",
        "builtin:arith_candidates",
        "--split",
        "test",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 50 and {"prompt", "completion", "grape_score", "grape_source"} <= set(rows[0])
    assert "grape on builtin:arith_candidates [test]: 50 rows -> 50 rows" in result.stdout
    assert "grape/source_frac/" in result.stdout


def test_readme_methods_table_matches_registry():
    from trl_ext.devtools.docs import BUILT_IN, render_readme
    from trl_ext.plugin.registry import Registry

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    expected = render_readme(readme, Registry().load_entry_points(allow=["core", *BUILT_IN]))
    assert readme == expected, "README methods table is stale: run `python -m trl_ext.devtools.docs`"


def test_methods_table_covers_every_built_in_plugin_folder():
    from trl_ext.devtools.docs import BUILT_IN

    folders = {p.parent.name for p in (Path(__file__).parents[1] / "plugins").glob("*/__init__.py")}
    assert set(BUILT_IN) == folders


def test_new_plugin_refuses_to_overwrite(tmp_path, capsys):
    assert main(["new-plugin", "my_paper", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "my_paper" / "my_paper" / "trainer.py").exists()  # the package inside the distribution
    assert main(["new-plugin", "my_paper", "--dest", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def _has_private_network() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _has_private_network(), reason="needs `unshare -rn` (a network namespace with no network)")
def test_train_needs_no_network(tiny_model_dir, tmp_path):
    """Offline by default: a full `trl-ext train` (built-in dataset, local model, model card) in a namespace with
    no network interface at all."""
    out = tmp_path / "offline"
    result = subprocess.run(
        [
            "unshare",
            "-rn",
            sys.executable,
            "-m",
            "trl_ext",
            "train",
            "asft",
            "--model_name_or_path",
            tiny_model_dir,
            "--output_dir",
            str(out),
            *TINY_FLAGS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "0"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "README.md").exists()


def test_plain_dpo_runs_on_builtin_preferences(tiny_model_dir, tmp_path):
    """TRL's DPOTrainer unchanged: at the first step the policy equals its reference, so the loss is -log sigmoid(0)."""
    out = tmp_path / "dpo"
    assert (
        main(
            [
                "train",
                "dpo",
                "--model_name_or_path",
                tiny_model_dir,
                *testing.tiny_run_flags(1, 2, logging_steps=1),
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    card = (out / "README.md").read_text()
    assert "builtin:arith_prefs" in card and "method: dpo" in card


def test_dpo_first_step_loss_is_log_two(tiny_model_dir, tmp_path):
    from trl_ext import get
    from trl_ext.data import load_dataset
    from trl_ext.models import load_model, load_tokenizer

    method = get("method", "dpo")
    config = method.config(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to="none",
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
    )
    data = load_dataset("builtin:arith_prefs")["train"].select(range(4))
    trainer = method.trainer(
        model=load_model(tiny_model_dir),
        args=config,
        train_dataset=data,
        processing_class=load_tokenizer(tiny_model_dir),
    )
    trainer.train()
    first = next(e for e in trainer.state.log_history if "loss" in e)
    assert first["loss"] == pytest.approx(0.693147, abs=1e-3)  # -log sigmoid(0): policy == reference


def test_info_lists_the_columns_a_component_reads_when_present(capsys):
    from trl_ext.plugin.records import Reward

    assert main(["info", "think2sql_ex"]) == 0
    out = capsys.readouterr().out
    assert "Dataset columns: target_sql, db_id" in out
    assert "Optional columns (read when present):\n  sql_execution_time:" in out
    with pytest.raises(TypeError, match="optional_columns"):
        Reward(name="r", optional_columns={"a": 1})._validate("reward")


@pytest.mark.parametrize("adapter", ["--use_peft", "--adapter"])
def test_seed_fixes_the_adapter_init(tiny_model_dir, tmp_path, adapter):
    """An `--adapter`'s random init used to be drawn before transformers' Trainer seeded, so two runs of one command
    (or one and two processes) started from different adapters (TRL's `--use_peft` path was seeded); the learning rate
    here is too small to move them."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    LoraConfig(r=2, target_modules=["q_proj", "v_proj"]).save_pretrained(str(tmp_path / "lora"))
    flags = (
        ["--use_peft", "--lora_r", "2"] if adapter == "--use_peft" else ["--adapter", f"peft:config={tmp_path}/lora"]
    )

    def lora_a(name: str, seed: int) -> list:
        out = tmp_path / name
        args = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), "--seed", str(seed)]
        assert main(args + flags + TINY_FLAGS[2:] + ["--max_steps", "1", "--learning_rate", "1e-30"]) == 0
        weights = load_file(str(out / "adapter_model.safetensors"))
        return [weights[k] for k in sorted(weights) if "lora_A" in k]

    first, again, other = lora_a("a", 3), lora_a("b", 3), lora_a("c", 4)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
