"""A TRL user's YAML works unchanged: every key `trl sft` / `trl dpo` accept is accepted, a `datasets:` mixture
trains the same under `trl sft` and `trl-ext train sft`, and `--test_split_size` carves an evaluation split."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import Dataset, DatasetDict

from trl_ext.cli import main
from trl_ext.plugin.registry import get
from trl_ext.run.arguments import build_parser
from trl_ext.run.stage import DatasetColumnError, carve_test_split


def field_names(parser) -> set[str]:
    return {f.name for dtype in parser.dataclass_types for f in dataclasses.fields(dtype)}


@pytest.mark.parametrize("script, method", [("sft", "sft"), ("dpo", "dpo"), ("grpo", "grpo")])
def test_every_key_trl_accepts_is_accepted(script, method):
    """Derived from TRL's own script parsers, so a key TRL adds later is caught here."""
    import importlib

    trl_parser = importlib.import_module(f"trl.scripts.{script}").make_parser()
    missing = field_names(trl_parser) - field_names(build_parser(get("method", method)))
    assert not missing, f"keys `trl {script}` accepts but `trl-ext train {method}` refuses: {sorted(missing)}"


def write_jsonl(path: Path, items: list[dict]) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)


def final_train_loss(output: str) -> float:
    found = re.findall(r"'train_loss': '?([0-9.]+)", output)
    assert found, output[-2000:]
    return float(found[-1])


def test_a_datasets_mixture_config_trains_alike_under_trl_and_trl_ext(tiny_model_dir, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"text": f"Q: {i} + {i}? A: {2 * i}"} for i in range(6)])
    second = write_jsonl(tmp_path / "b.jsonl", [{"text": f"Q: {i} * 3? A: {3 * i}"} for i in range(4)])
    config = {
        "model_name_or_path": tiny_model_dir,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "seed": 7,
        "datasets": [
            {"path": "json", "data_files": first, "fraction": 0.5},
            {"path": "json", "data_files": second, "fraction": 0.5},
        ],
    }
    losses = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    commands = {
        "trl": [str(Path(sys.executable).with_name("trl")), "sft"],
        "trl-ext": [sys.executable, "-m", "trl_ext", "train", "sft"],
    }
    for name, command in commands.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "output_dir": str(tmp_path / name)}))
        done = subprocess.run(
            [*command, "--config", str(path)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert (tmp_path / name / "model.safetensors").is_file()
        losses[name] = final_train_loss(done.stdout + done.stderr)
    # The same rows, order and seed: the same loss (trl-ext's SFT loss equals TRL's to float precision).
    assert losses["trl-ext"] == pytest.approx(losses["trl"], rel=1e-4)


def rows(n: int) -> DatasetDict:
    return DatasetDict({"train": Dataset.from_dict({"i": list(range(n))})})


def test_test_split_size_carves_the_same_rows_for_one_seed():
    carved = carve_test_split(rows(20), "train", "test", 0.25, seed=3)
    again = carve_test_split(rows(20), "train", "test", 0.25, seed=3)
    assert len(carved["test"]) == 5 and len(carved["train"]) == 15
    assert sorted(list(carved["train"]["i"]) + list(carved["test"]["i"])) == list(range(20))  # a partition
    assert list(carved["test"]["i"]) == list(again["test"]["i"])
    assert len(carve_test_split(rows(20), "train", "test", 3, seed=3)["test"]) == 3  # a row count


def test_test_split_size_refuses_what_it_cannot_carve():
    with pytest.raises(DatasetColumnError, match="own 'test' split"):
        carve_test_split(DatasetDict({**rows(4), "test": rows(2)["train"]}), "train", "test", 0.5, seed=0)
    with pytest.raises(DatasetColumnError, match="leaves no training rows"):
        carve_test_split(rows(4), "train", "test", 4, seed=0)


def test_an_eval_run_on_a_single_file_with_a_carved_split(tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": f"Q: {i} + 1? A: {i + 1}"} for i in range(8)])
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", data]
    argv += ["--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--per_device_train_batch_size", "2"]
    argv += ["--report_to", "none", "--save_strategy", "no", "--eval_strategy", "steps", "--eval_steps", "1"]
    assert main([*argv, "--test_split_size", "0.25"]) == 0
    assert "eval_loss" in capsys.readouterr().out


@pytest.mark.parametrize("size", ["0", "-1", "1.5", "nan"])
def test_a_bad_test_split_size_is_refused(size, tiny_model_dir, tmp_path, capsys):
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "out")]
    assert main([*argv, f"--test_split_size={size}"]) == 2
    err = capsys.readouterr().err
    assert "trl-ext: error: --test_split_size" in err  # ours, before any data or model loads
