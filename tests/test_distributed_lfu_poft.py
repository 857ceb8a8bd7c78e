"""Loss normalisation of LfU (two forward/backward passes per step, a token-mean consistency term) and PoFT (a mean
over sequences) under gradient accumulation and 2 processes (torchrun, gloo on CPU): one optimizer step on the same
global batch gives the same loss and the same gradient (SGD, lr 1: the weight update) in every layout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "distributed"


def _run(tmp_path, script, name, nproc, per_device, accumulation):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    if nproc == 1:
        cmd = [sys.executable, str(SCRIPTS / script)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_port",
            str(29500 + (os.getpid() + len(script)) % 1000),
            str(SCRIPTS / script),
        ]
    result = subprocess.run(
        cmd + [str(out), str(per_device), str(accumulation)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def _max_update_diff(a, b):
    assert a["update"].keys() == b["update"].keys()
    return max(max(abs(x - y) for x, y in zip(a["update"][k], b["update"][k], strict=True)) for k in a["update"])


def _largest_update(run):
    return max(abs(v) for u in run["update"].values() for v in u)


@pytest.mark.slow
def test_lfu_same_loss_and_gradient_on_one_and_two_processes(tmp_path):
    single = _run(tmp_path, "lfu_ddp.py", "single", 1, 4, 1)
    accumulated = _run(tmp_path, "lfu_ddp.py", "accumulated", 1, 2, 2)
    ddp = _run(tmp_path, "lfu_ddp.py", "ddp", 2, 2, 1)
    largest = _largest_update(single)
    assert largest > 1e-4  # the step did something
    assert single["cons_loss"] > 0.1 * single["loss"]  # and the consistency term is a real part of it
    tolerance = 1e-6 * max(1.0, largest)  # float32 rounding of sums taken in another order
    assert _max_update_diff(single, accumulated) < tolerance
    assert _max_update_diff(single, ddp) < tolerance
    assert accumulated["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # logged metrics average the micro-batches of a step; with one micro-batch per process they are global
    assert ddp["cons_loss"] == pytest.approx(single["cons_loss"], rel=1e-5)


@pytest.mark.slow
def test_poft_same_loss_and_gradient_on_one_and_two_processes(tmp_path):
    single = _run(tmp_path, "poft_ddp.py", "single", 1, 6, 1)
    accumulated = _run(tmp_path, "poft_ddp.py", "accumulated", 1, 4, 2)  # micro-batches of 4 and 2
    ddp = _run(tmp_path, "poft_ddp.py", "ddp", 2, 3, 1)
    assert single["steps"] == accumulated["steps"] == ddp["steps"] == 1
    assert _largest_update(single) > 1e-4
    assert _max_update_diff(single, accumulated) < 1e-6
    assert _max_update_diff(single, ddp) < 1e-6
    assert accumulated["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-5)
