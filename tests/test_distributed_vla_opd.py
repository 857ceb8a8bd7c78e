"""VLA-OPD on 2 CPU processes (gloo): DDP and DeepSpeed ZeRO-3 (DS_ACCELERATOR=cpu) take the step of one process
over the same 4 prompts (greedy rollouts, so every layout sees the same completions): the loss is normalised by the
global completion-token count, whatever the split. Hard CE runs trl-ext's chunked path with the gathered heads (the
sampled estimator reads them the same way), reverse KL TRL's kernel through the divergence seam. One process
accumulating 2 x 2 gave the same step too when this was written (kept out to bound CI time)."""

from pathlib import Path

import pytest

from trl_ext.testing import assert_same_step, run_layout

SCRIPT = Path(__file__).parent / "distributed" / "vla_opd_step.py"


@pytest.mark.slow
@pytest.mark.parametrize("divergence, engines", [("hard_ce", ("none", "zero3")), ("reverse_kl", ("zero3",))])
def test_two_processes_equal_one(divergence, engines, tmp_path, monkeypatch):
    single = run_layout(SCRIPT, tmp_path / "single.json", 4, 1, "none", divergence, "full")
    for engine in engines:
        if engine == "zero3":
            pytest.importorskip("deepspeed")
            monkeypatch.setenv("DS_ACCELERATOR", "cpu")
        run = run_layout(SCRIPT, tmp_path / f"{engine}.json", 2, 1, engine, divergence, "full", nproc=2)
        assert_same_step(single, run, name=f"2 processes ({'DDP' if engine == 'none' else 'ZeRO-3'})")
