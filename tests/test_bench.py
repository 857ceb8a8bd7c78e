"""trl-ext bench: runs a method against SFTTrainer on the same rows and reports times, peaks and the budget. Timing
values are not asserted (they belong to the bench's output, not to tests)."""

import importlib.util
import time

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


def test_a_method_with_its_own_batch_layout_is_refused_with_the_reason():
    same = {"input_ids": torch.tensor([[1, 2, 9]]), "attention_mask": torch.ones(1, 3)}
    bench._check_same_layout("asft", same, ["input_ids", "attention_mask"], vocab=10)  # fits: no error
    with pytest.raises(SystemExit, match="token ids outside the model's 9-token vocabulary"):
        bench._check_same_layout("lta-thinker", same, ["input_ids", "attention_mask"], vocab=9)  # id 9 was added
    with pytest.raises(SystemExit, match="no attention_mask, input_ids"):
        bench._check_same_layout("lta-thinker", {"assistant_input_ids": same["input_ids"]}, same.keys(), vocab=10)


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


def test_timed_reward_keeps_the_kind_and_name_and_adds_its_time():
    import asyncio

    from trl.trainer.utils import get_callable_name, is_async_callable

    from trl_ext.cli.bench_rewards import timed_reward

    spent = {"s": 0.0, "a": 0.0}

    def sync_reward(completions, **kwargs):
        return [1.0] * len(completions)

    async def async_reward(completions, **kwargs):
        await asyncio.sleep(0.01)
        return [0.5] * len(completions)

    s, a = timed_reward(sync_reward, "s", spent), timed_reward(async_reward, "a", spent)
    assert not is_async_callable(s) and is_async_callable(a)  # TRL still awaits the async one with the others
    assert (get_callable_name(s), get_callable_name(a)) == ("s", "a")
    assert s(completions=["x", "y"]) == [1.0, 1.0]
    assert asyncio.run(a(completions=["x"])) == [0.5]
    assert spent["s"] >= 0 and spent["a"] >= 0.01


def test_bench_grpo_reports_each_reward_share_through_the_cli(tiny_model_dir):
    """`trl-ext bench grpo --rewards ...` as a user runs it: one row per reward (an async sandboxed one and a sync
    one), shares in [0, 1], the total no smaller than any synchronous reward's own time."""
    import json
    import os
    import subprocess
    import sys

    flags = ["--steps", "1", "--warmup", "0", "--num_generations", "2", "--max_completion_length", "8"]
    flags += ["--per_device_train_batch_size", "2", "--model_name_or_path", tiny_model_dir, "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "trl_ext", "bench", "grpo", "--rewards", "think2sql_qatch,think2sql_format"]
        + ["--reward_weights", "0.95", "0.05", "--dataset_name", "builtin:text2sql", *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.rfind("\n{\n") + 1 :])  # after the trainer's own log line
    assert [r["name"] for r in report["rewards"]] == ["think2sql_qatch", "think2sql_format"]
    assert report["reward_weights"] == [0.95, 0.05] and report["steps"] == 1
    assert report["batch"] == {"completions": 2, "num_generations": 2, "max_completion_length": 8}
    assert report["device"] == "cpu (1 thread)"
    for row in [*report["rewards"], report["total"]]:
        assert 0.0 <= row["share"] <= 1.0
        assert row["over_limit"] == (row["share"] > report["limit"])
    assert report["total"]["seconds_per_step"] >= report["rewards"][1]["seconds_per_step"]  # the sync one is inside
    assert report["step_s"] > 0 and report["step_cpu_s"] > 0
    qatch, fmt = report["rewards"]
    assert qatch["cpu_share"] is None  # async: it shares the process with the others while it waits
    assert fmt["cpu_seconds_per_step"] >= 0 and 0.0 <= fmt["cpu_share"] <= 1.0


def test_timed_reward_counts_cpu_seconds_of_a_sync_reward():
    spent, cpu = {"s": 0.0}, {"s": 0.0}

    def busy(completions, **kwargs):
        start = time.process_time()
        while time.process_time() - start < 0.2:  # os.times() counts in 10 ms ticks, sampled: leave slack
            pass
        return [0.0] * len(completions)

    from trl_ext.cli.bench_rewards import timed_reward

    assert timed_reward(busy, "s", spent, cpu=cpu)(completions=["x"]) == [0.0]
    assert cpu["s"] >= 0.1 and spent["s"] >= 0.1


def test_an_adapter_is_benched_against_trl_lora(tiny_model_dir):
    """`--adapter ssf --use_peft --lora_r 1 --lora_target_modules all-linear`: the method side trains SSF alone, the
    reference TRL's LoRA r=1 on every linear. By hand on the tiny model (hidden 32, MLP 64, 4 heads of 8, 2 KV heads:
    k/v out 16; 2 layers), LoRA r=1 holds r (in + out) per linear: q 64 + k 48 + v 48 + o 64 + gate 96 + up 96
    + down 96 = 512 per layer, 1,024 in all. SSF's count comes from wrapping the same model with it directly."""
    from transformers import AutoModelForCausalLM

    from trl_ext.plugin.registry import get

    flags = ["--steps", "1", "--warmup", "0", "--per_device_train_batch_size", "2", "--lengths", "16,32"]
    report = bench.run(
        ["sft", "--model_name_or_path", tiny_model_dir, "--adapter", "ssf", "--use_peft", "--lora_r", "1"]
        + ["--lora_target_modules", "all-linear", *flags]
    )
    ssf = get("adapter", "ssf").build()(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    expected_ssf = sum(p.numel() for p in ssf.parameters() if p.requires_grad)
    assert [r["name"] for r in report["results"]] == ["sft (TRL)", "sft+ssf"]
    assert report["trainable"] == {"sft (TRL)": 1024, "sft+ssf": expected_ssf}
    assert expected_ssf != 1024
    assert "trainable parameters: sft (TRL) 1,024, sft+ssf" in bench.format_report(report)


def test_a_sparse_method_is_benched_against_trl_lora_at_a_matched_budget(tiny_model_dir):
    """`spiel --num_tunable 1024 --reference_lora --lora_r 1 --lora_target_modules all-linear`: the reference trains
    LoRA r=1 (1,024 parameters on the tiny model, see above), SpIEL its own deltas and no LoRA. By hand: the 7 targets
    per layer hold q 1,024, k 512, v 512, o 1,024, gate/up/down 2,048 each = 9,216 (18,432 in all); each gets
    floor(1024 n / 18,432) deltas: 56 + 28 + 28 + 56 + 3 x 113 = 507 per layer, 1,014 in all."""
    flags = ["--steps", "1", "--warmup", "0", "--per_device_train_batch_size", "2", "--lengths", "16,32"]
    report = bench.run(
        ["spiel", "--model_name_or_path", tiny_model_dir, "--num_tunable", "1024", "--reference_lora", "--lora_r", "1"]
        + ["--lora_target_modules", "all-linear", *flags]
    )
    assert report["trainable"] == {"sft (TRL)": 1024, "spiel": 1014}
