"""Every SFT-loss method under sharded engines on 2 CPU processes (gloo): DeepSpeed ZeRO-2 and ZeRO-3
(DS_ACCELERATOR=cpu) and torch FSDP2 (`fully_shard` in accelerate's units). One SGD step at lr 1 on the same global
batch of 4 gives the same loss and weight update as one process; a method that cannot be served is refused before
training, with its reason. Each engine runs all methods in one launch (tests/distributed/sharded_step.py)."""

import os
from pathlib import Path

import pytest

from trl_ext.testing import assert_same_step, run_layout

SCRIPT = Path(__file__).parent / "distributed" / "sharded_step.py"
METHODS = ["asft", "asft_lora", "otr", "ift", "curiosft", "lfu", "fait", "pkt", "poft", "soft"]
# LfU's perturbed forward reads every trainable parameter whole outside its module's forward
REFUSED = {"zero3": {"lfu"}, "fsdp2": {"lfu"}}

pytest.importorskip("deepspeed")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return run_layout(SCRIPT, tmp_path_factory.mktemp("single") / "none.json", "none", *METHODS)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["zero2", "zero3", "fsdp2"])
def test_every_method_takes_the_same_step_as_one_process(engine, one_process, tmp_path, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    assert os.environ["DS_ACCELERATOR"] == "cpu"
    runs = run_layout(SCRIPT, tmp_path / f"{engine}.json", engine, *METHODS, nproc=2)
    failures = []
    for method in METHODS:
        reference, run = one_process[method], runs[method]
        assert "error" not in reference, f"{method} on one process: {reference.get('trace')}"
        if method in REFUSED.get(engine, ()):
            if "cannot train under" not in run.get("error", ""):
                failures.append(f"{method}: expected a refusal before training, got {run.get('error') or 'a step'}")
            continue
        if "error" in run:
            failures.append(f"{method}: {run['trace']}")
            continue
        try:
            assert_same_step(reference, run, name=f"{method} on {engine}")
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n".join(failures)
