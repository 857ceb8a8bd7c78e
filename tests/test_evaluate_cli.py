"""`trl-ext evaluate`: registered evaluation callbacks (rlhf_diversity's and irac_sft's mcq_eval) on every checkpoint
of a tiny run folder and on a saved model; the printed table, the JSON and the PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_ext.cli import main
from trl_ext.cli.evaluate import models_of_run

CALLBACKS = "rlhf_diversity:num_prompts=2:num_samples=3:max_new_tokens=6:progress=false,mcq_eval:num_samples=2:max_new_tokens=4"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder as the Trainer leaves it: checkpoint-1 and checkpoint-2 (two different tiny models, each with its
    trainer_state.json) and the final model (step 2) at the root. Saved directly: training them adds a minute."""
    from trl_ext.testing import save_tiny_model

    out = tmp_path_factory.mktemp("evalrun") / "run"
    for step in (1, 2):
        folder = save_tiny_model(out / f"checkpoint-{step}", seed=step)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 2}))
    save_tiny_model(out, seed=2)
    return out


def _table(printed: str) -> dict[tuple[str, str], list[str]]:
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("callback "))
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("Wrote "):
            break
        cells = line.split()
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


@pytest.mark.slow
def test_evaluate_every_checkpoint_of_a_run(tiny_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--callbacks", CALLBACKS, "--run_dir", str(tiny_run)]) == 0
    printed = capsys.readouterr().out
    assert "step 1" in printed and "step 2" in printed
    data = json.loads((tiny_run / "evaluate.json").read_text())
    assert [r["step"] for r in data["results"]] == [1, 2]
    assert [Path(r["model"]).name for r in data["results"]] == ["checkpoint-1", "checkpoint-2"]
    table = _table(printed)
    count = 0
    for column, result in enumerate(data["results"]):
        for callback, figures in result["figures"].items():
            for name, value in figures.items():
                assert table[(callback, name)][column] == f"{value:.6g}"
                count += 1
    assert count == len(table) * 2 and ("mcq_eval", "eval/mcq_acc") in table
    assert ("rlhf_diversity", "diversity/mean_per_input_ead") in table
    for name in ("rlhf_diversity", "mcq_eval"):
        png = tiny_run / "plots" / f"evaluate_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_a_saved_model_and_refusals(tiny_model_dir, tmp_path, capsys):
    argv = ["evaluate", "--callbacks", CALLBACKS.split(",")[0], "--model_name_or_path", tiny_model_dir]
    assert main([*argv, "--output_dir", str(tmp_path)]) == 0
    (result,) = json.loads((tmp_path / "evaluate.json").read_text())["results"]
    assert result["step"] == 0 and 0 < result["figures"]["rlhf_diversity"]["diversity/overall_distinct"] <= 1
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["evaluate", "--callbacks", "rlhf_diversity", "--run_dir", str(empty)]) == 2
    assert "holds no saved model" in capsys.readouterr().err
    assert main(["evaluate", "--callbacks", "rlhf_diversity:bogus=1", "--run_dir", str(empty)]) == 2
    assert "has no option(s) bogus" in capsys.readouterr().err


def test_models_of_a_run_folder(tmp_path):
    def saved(folder: Path, max_steps: int | None = None) -> None:
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
        if max_steps is not None:
            (folder / "trainer_state.json").write_text(json.dumps({"max_steps": max_steps}))

    saved(tmp_path / "a" / "checkpoint-10", max_steps=25)
    saved(tmp_path / "a" / "checkpoint-20", max_steps=25)
    (tmp_path / "a" / "model.safetensors").write_bytes(b"")
    (tmp_path / "a" / "checkpoint-30").mkdir()  # no model in it: skipped
    # the root model is the final step 25, after the last checkpoint
    assert [s for s, _ in models_of_run(tmp_path / "a")] == [10, 20, 25]
    saved(tmp_path / "b" / "checkpoint-5", max_steps=5)
    (tmp_path / "b" / "model.safetensors").write_bytes(b"")
    assert models_of_run(tmp_path / "b") == [(5, tmp_path / "b" / "checkpoint-5")]  # the root is that checkpoint
    saved(tmp_path / "c")
    assert models_of_run(tmp_path / "c") == [(0, tmp_path / "c")]  # no checkpoint: the root model alone
