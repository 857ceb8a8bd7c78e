"""Loss normalisation under gradient accumulation and 2 processes (torchrun, gloo on CPU): one optimizer step on
the same global batch gives the same loss and the same gradient (SGD, lr 1: the weight update) in every layout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "distributed" / "asft_ddp.py"


def _run(tmp_path, name, nproc, per_device, accumulation):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    if nproc == 1:
        cmd = [sys.executable, str(SCRIPT)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_port",
            str(29500 + os.getpid() % 1000),
            str(SCRIPT),
        ]
    result = subprocess.run(
        cmd + [str(out), str(per_device), str(accumulation)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def _max_update_diff(a, b):
    return max(max(abs(x - y) for x, y in zip(a["update"][k], b["update"][k], strict=True)) for k in a["update"])


@pytest.mark.slow
def test_asft_same_gradient_on_one_and_two_processes(tmp_path):
    single = _run(tmp_path, "single", 1, 4, 1)
    accumulated = _run(tmp_path, "accumulated", 1, 2, 2)
    ddp = _run(tmp_path, "ddp", 2, 2, 1)
    assert max(abs(v) for u in single["update"].values() for v in u) > 1e-4  # the step did something
    assert _max_update_diff(single, accumulated) < 1e-6
    assert _max_update_diff(single, ddp) < 1e-6
    assert accumulated["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-5)
