"""Q-Tuning under the distributed engines on 2 CPU processes (gloo): DDP, DeepSpeed ZeRO-2 and ZeRO-3
(DS_ACCELERATOR=cpu) and torch FSDP2. Selection is per micro-batch and per process (as the official code), so the
reference is one process accumulating the same two micro-batches of 2 rows: one SGD step at lr 1 must give the same
loss and weight update (each micro-batch's kept-token mean / accumulation steps; DDP averages over processes)."""

from pathlib import Path

import pytest

from trl_ext.testing import assert_same_step, run_layout

SCRIPT = Path(__file__).parent / "distributed" / "qtuning_step.py"


@pytest.fixture(scope="module")
def accumulated(tmp_path_factory):
    run = run_layout(SCRIPT, tmp_path_factory.mktemp("qt1") / "accumulated.json", 2, 2, "none")
    assert 0.0 < run["kept_token_frac"] < 1.0  # samples and tokens were pruned
    return run


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["none", "zero2", "zero3", "fsdp2"])
def test_two_processes_take_the_accumulated_step(engine, accumulated, tmp_path, monkeypatch):
    if engine.startswith("zero"):
        pytest.importorskip("deepspeed")
        monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    run = run_layout(SCRIPT, tmp_path / f"{engine}.json", 2, 1, engine, nproc=2)
    assert_same_step(accumulated, run, name=f"qtuning on 2 processes ({engine if engine != 'none' else 'ddp'})")
