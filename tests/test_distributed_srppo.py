"""SRPPO on 2 CPU processes (gloo): DDP and DeepSpeed ZeRO-3 (DS_ACCELERATOR=cpu) give the 1-process step for the same
global batch of 2 prompts x 2 completions. The rollouts are canned (tests/distributed/srppo_step.py); each process
scores its own completions with the frozen π_sft and π_pt (loaded whole, also under ZeRO-3), RLOO gathers the rewards
for the leave-one-out baseline, and its loss is a per-sequence mean, so one SGD step at lr 1 must match."""

from pathlib import Path

import pytest

from trl_ext.testing import assert_same_step, run_layout, save_tiny_model

SCRIPT = Path(__file__).parent / "distributed" / "srppo_step.py"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("srppo-models")
    return str(save_tiny_model(root / "sft", seed=1)), str(save_tiny_model(root / "base", seed=2))


@pytest.fixture(scope="module")
def single(tmp_path_factory, model_dirs):
    run = run_layout(SCRIPT, tmp_path_factory.mktemp("srppo1") / "single.json", 4, 1, "none", *model_dirs)
    assert run["rewards_std"] > 0  # the completions of a group score differently: the step has a signal
    return run


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["none", "zero3"])
def test_two_processes_take_the_one_process_step(engine, single, model_dirs, tmp_path, monkeypatch):
    if engine == "zero3":
        pytest.importorskip("deepspeed")
        monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    run = run_layout(SCRIPT, tmp_path / f"{engine}.json", 2, 1, engine, *model_dirs, nproc=2)
    assert run["reward"] == pytest.approx(single["reward"], abs=1e-5)
    assert_same_step(single, run, name=f"srppo on 2 processes ({engine if engine != 'none' else 'ddp'})")
