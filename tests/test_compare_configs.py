"""The shipped comparisons (`examples/compare/*.yaml`, the demo scripts' arms as `trl-ext compare` configs) stay
runnable: `--dry_run` checks every arm's method, options, data and columns and the metric, and trains nothing."""

from pathlib import Path

import pytest
import yaml

from trl_ext.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "examples" / "compare").glob("*.yaml"))


def test_there_are_shipped_comparisons():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_a_shipped_comparison_passes_its_dry_run(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the configs' output_dir is relative: nothing may appear under it
    assert main(["compare", "--config", str(config), "--dry_run"]) == 0
    plan = capsys.readouterr().out
    spec = yaml.safe_load(config.read_text())
    for arm in spec["arms"]:
        label = arm["label"] if isinstance(arm, dict) else arm.split("=")[0].split(":")[0]
        stages = len(arm["stages"]) if isinstance(arm, dict) and "stages" in arm else 0
        lines = [f"  {label} stage {i}/{stages}: " for i in range(1, stages + 1)] or [f"  {label}: "]
        if isinstance(arm, dict) and "recipe" in arm:  # a registered recipe's stages, however many it has
            lines = [f"  {label} stage 1/"]
        assert all(line in plan for line in lines) and "(to train)" in plan
    assert f"{len(spec['arms'])} arms" in plan
    if spec.get("transforms"):  # the data every arm trains on is named, with its options, in each trained arm's line
        assert f"; transforms {spec['transforms'].replace(',', ', ')} -> " in plan, spec["transforms"]
    assert list(tmp_path.iterdir()) == []


def test_the_dry_run_refuses_a_misspelt_judge_and_a_missing_gold_column(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["compare", "sft", "--dataset_name", "builtin:arith", "--max_steps", "1", "--dry_run"]
    assert main([*base, "--eval", "pass@k:k=1:judge=numeric_matc"]) != 0
    assert "Did you mean 'numeric_match'" in capsys.readouterr().err
    assert main([*base, "--eval", "pass@k:k=1:gold_column=tests"]) != 0  # builtin:arith: prompt and answer only
    assert "lack tests" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_comparison_measured_by_callbacks_alone_says_they_read_their_own_items(tmp_path, monkeypatch, capsys):
    """A callback asks its own questions: the plan does not claim the comparison's evaluation rows (the first line
    said "on 64 rows of builtin:calib_sentiment [test]" for self_ensemble_calib's 100 reviews)."""
    monkeypatch.chdir(tmp_path)
    config = next(c for c in CONFIGS if c.stem == "self_ensemble_calib_sft")
    assert main(["compare", "--config", str(config), "--dry_run"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "2 arms (1 stage) " in first and first.endswith("on the callbacks' own items"), first
