"""`torchrun -m trl_ext compare` on 2 CPU processes: DDP and ZeRO-3 arms give the table of one process with the same
global batch (a second arm under DeepSpeed builds its own engine; the main process measures whole saved models), and
under ZeRO-3 measuring during training is refused before the first step."""

import json

import pytest

from trl_ext.testing import deepspeed_config, run_cli, uneven_rows

FLAGS = [
    "--max_steps", "2",
    "--optim", "sgd",
    "--learning_rate", "0.5",
    "--lr_scheduler_type", "constant",
    "--max_grad_norm", "0",
    "--save_strategy", "no",
    "--report_to", "none",
    "--logging_steps", "1",
    "--seed", "0",
    "--eval", "perplexity",
    "--eval_rows", "6",
]  # fmt: skip


def _compare(model_dir, data, out, nproc, per_device, *extra):
    cmd = ["compare", "sft", "dft:asft_loss=dft", "--model_name_or_path", model_dir]
    cmd += ["--dataset_name", data, "--eval_dataset", data, "--eval_split", "train"]
    cmd += ["--output_dir", out, "--per_device_train_batch_size", per_device, *FLAGS, *extra]
    return run_cli(*cmd, nproc=nproc, timeout=900, check=False)


@pytest.mark.slow
def test_two_processes_give_the_one_process_table_and_zero3_refuses_measuring_while_sharded(tiny_model_dir, tmp_path):
    pytest.importorskip("deepspeed")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in uneven_rows() * 2))
    zero3 = tmp_path / "zero3.json"
    zero3.write_text(json.dumps(deepspeed_config(3)))

    one = _compare(tiny_model_dir, data, tmp_path / "one", 1, 4)
    assert one.returncode == 0, one.stderr[-3000:]
    reference = json.loads((tmp_path / "one" / "compare.json").read_text())
    moved = {arm["arm"]: arm["perplexity"] for arm in reference["arms"]}
    assert moved["sft"] != pytest.approx(moved["dft"], rel=1e-3)  # the arms differ: the comparison is not void
    for name, extra in (("ddp", []), ("zero3", ["--deepspeed", str(zero3)])):
        run = _compare(tiny_model_dir, data, tmp_path / name, 2, 2, *extra)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads((tmp_path / name / "compare.json").read_text())
        for ours, theirs in zip(report["arms"], reference["arms"], strict=True):
            assert ours["arm"] == theirs["arm"]
            assert ours["per_row"] == pytest.approx(theirs["per_row"], rel=1e-5), name
            assert ours["trainable_params"] == theirs["trainable_params"], name  # whole sizes, not shards

    refused = _compare(
        tiny_model_dir, data, tmp_path / "refused", 2, 2, "--deepspeed", str(zero3), "--eval_every", "1"
    )
    assert refused.returncode != 0
    assert "--eval_every needs the whole model" in refused.stderr
    assert not list((tmp_path / "refused").glob("*/model.safetensors"))  # refused before any arm trained
