"""UDS under the distributed engines on 2 CPU processes (gloo) with `uds_per_process_selection`: DeepSpeed ZeRO-3
(DS_ACCELERATOR=cpu) and torch FSDP2 (`fully_shard` in accelerate's units) against DDP, where every parameter is
whole on each process and the scoring pass reads the backbone and the LM head directly (no forward redirection, no
gather). Two SGD steps with a trained head: each process's selections, intra and inter scores (from the head updated
by the first step) and memory, the loss and the weight update must be DDP's."""

from pathlib import Path

import pytest
import torch

from trl_ext.testing import assert_same_step, run_layout

SCRIPT = Path(__file__).parent / "distributed" / "uds_step.py"


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    run = run_layout(SCRIPT, tmp_path_factory.mktemp("uds-ddp") / "ddp.json", "none", nproc=2)
    assert run["steps"] == 2
    for rank in run["ranks"]:
        assert [h[0] for h in rank["history"]] == [0, 1] and all(len(h[2]) == 1 for h in rank["history"])
        assert rank["scores"][0]["inter"] == [0.0, 0.0] and min(rank["scores"][1]["inter"]) > 0  # memory at step 1
    assert run["ranks"][0]["scores"][0]["ids"] != run["ranks"][1]["scores"][0]["ids"]  # each its own micro-batch
    return run


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "wrapper"), [("zero3", "DeepSpeedEngine"), ("fsdp2", "FSDPLlamaForCausalLM")])
def test_sharded_engines_select_and_step_as_ddp(engine, wrapper, ddp, tmp_path, monkeypatch):
    if engine == "zero3":
        pytest.importorskip("deepspeed")
        monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    run = run_layout(SCRIPT, tmp_path / f"{engine}.json", engine, nproc=2)
    assert run["steps"] == 2
    for rank, (expected, got) in enumerate(zip(ddp["ranks"], run["ranks"], strict=True)):
        assert got["sharded"] == wrapper, f"rank {rank} did not train under {engine}: {got['sharded']}"
        assert got["history"] == expected["history"], f"rank {rank}'s selections"
        for step, (a, b) in enumerate(zip(expected["scores"], got["scores"], strict=True)):
            assert a["ids"] == b["ids"], f"rank {rank} step {step}: another micro-batch"
            assert b["intra"] == pytest.approx(a["intra"], rel=1e-5), f"rank {rank} step {step}: intra"
            assert b["inter"] == pytest.approx(a["inter"], rel=1e-5, abs=1e-6), f"rank {rank} step {step}: inter"
        assert len(got["slots"]) == len(expected["slots"]), f"rank {rank}'s memory fill"
        for slot, (a, b) in enumerate(zip(expected["slots"], got["slots"], strict=True)):
            # A sketch entry is a sum over the whole [T, V] logits, so its float32 rounding scales with the sketch's
            # norm, not with the entry: a near-cancelled entry (0.156 among entries of 80) differs by 4e-4 relative
            # between engines on some CPUs. Compare each sketch as a vector, as the inter score (an L2 distance) uses it.
            error = torch.linalg.vector_norm(torch.tensor(b) - torch.tensor(a))
            assert error <= 1e-5 * torch.linalg.vector_norm(torch.tensor(a)), f"rank {rank}'s memory slot {slot}"
    assert_same_step(ddp, run, tolerance=1e-5, name=f"uds on 2 processes ({engine})")
