"""trl-ext bench: runs a method against SFTTrainer on the same rows and reports times, peaks and the budget. Timing
values are not asserted (they belong to the bench's output, not to tests)."""

import importlib.util

import pytest
import torch

from trl_ext.cli import bench
from trl_ext.testing import save_tiny_model


def test_row_columns_are_carried_and_token_columns_left_out():
    synthetic = {"input_ids": torch.zeros(3, 8, dtype=torch.long)}
    real = {
        "input_ids": torch.zeros(2, 5, dtype=torch.long),
        "scores": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),  # per row, M = 2
        "mask": torch.ones(2, 5),  # per token
        "step": torch.tensor(1),
    }
    out = bench._with_row_columns(synthetic, real)
    assert set(out) == {"input_ids", "scores"}
    assert out["scores"].tolist() == [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]  # rows cycle


@pytest.mark.parametrize("method", ["asft", "poft"])  # poft needs its score column in every batch
def test_bench_reports_a_method_against_sft(tiny_model_dir, method):
    report = bench.run(
        [
            method,
            "--model_name_or_path",
            tiny_model_dir,
            "--steps",
            "1",
            "--warmup",
            "0",
            "--per_device_train_batch_size",
            "2",
            "--lengths",
            "16,32",
        ]
    )
    assert [r["name"] for r in report["results"]] == ["sft (TRL)", method]
    if method == "asft":
        assert report["extra_forwards"] == 1.0  # the reference's no-grad forward
    else:
        assert 0 < report["extra_forwards"] < 1  # one no-grad head projection: part of a forward
    assert report["budget_s"] == pytest.approx(
        report["results"][0]["step_s"] + report["extra_forwards"] * report["forward_s"]
    )
    assert "budget" in bench.format_report(report)


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None,
    reason="QLoRA needs bitsandbytes (the `qlora` extra: pip install 'trl-ext[qlora]')",
)
def test_bench_runs_qlora_on_cpu(tmp_path, monkeypatch):
    import bitsandbytes as bnb

    built = {}
    build_trainers = bench.build_trainers

    def recording_build_trainers(*args):
        built["trainers"] = build_trainers(*args)
        return built["trainers"]

    monkeypatch.setattr(bench, "build_trainers", recording_build_trainers)
    model_dir = save_tiny_model(tmp_path / "model", hidden_size=64)  # 4-bit blocks need dims of 64
    flags = ["--steps", "1", "--warmup", "0", "--per_device_train_batch_size", "2", "--lengths", "16,32"]
    report = bench.run(["asft", "--model_name_or_path", str(model_dir), "--load_in_4bit", *flags])

    _, _, sft, asft, _ = built["trainers"]
    weights = []
    for trainer in (sft, asft):  # each a 4-bit base under its own LoRA adapter
        quantized = [m.weight for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert quantized and all(w.dtype == torch.uint8 for w in quantized)
        assert any("lora_" in name for name, _ in trainer.model.named_parameters())
        weights.append({w.data_ptr() for w in quantized})
    assert not weights[0] & weights[1]  # two loads, no shared base
    sft_step, asft_step = (r["step_s"] for r in report["results"])
    assert report["time_ratio"] == pytest.approx(asft_step / sft_step)
    assert report["dtype"] == "float32 4-bit QLoRA" and "4-bit QLoRA" in bench.format_report(report)
