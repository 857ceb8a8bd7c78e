"""Checkpoints through the CLI: a run SIGKILLed inside a save resumes (`--resume_from_checkpoint true`) from the
latest complete checkpoint with the losses of an unbroken run; incomplete, optimizer-less and truncated checkpoints
are refused before the model loads, naming the file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from trl_ext.cli import main
from trl_ext.training.checkpoints import IN_PROGRESS, MANIFEST, checkpoint_problems

FLAGS = ["--max_steps", "6", "--per_device_train_batch_size", "2", "--report_to", "none", "--logging_steps", "1"]
FLAGS += ["--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "1"]

# Runs the CLI and blocks for good inside the save of checkpoint-4, at BLOCK_AT: before transformers writes
# scheduler.pt (model and optimizer.pt on disk, the rest not), or after it writes trainer_state.json (every file of
# transformers' own on disk, the callbacks' on_save not run yet: by its files alone the checkpoint looks complete).
RUNNER = """
import os, sys, time, torch
from transformers.trainer_callback import TrainerState

def block_at(path, name):
    if name == os.environ["BLOCK_AT"] and str(path).endswith("checkpoint-4/" + name):
        print("BLOCKED IN SAVE", flush=True)
        time.sleep(600)

save = torch.save
def blocking_save(obj, f, *args, **kwargs):
    block_at(f, "scheduler.pt")
    return save(obj, f, *args, **kwargs)

save_to_json = TrainerState.save_to_json
def blocking_save_to_json(self, path):
    save_to_json(self, path)
    block_at(path, "trainer_state.json")

torch.save, TrainerState.save_to_json = blocking_save, blocking_save_to_json
from trl_ext.cli import main
sys.exit(main(sys.argv[1:]))
"""


def losses(checkpoint: Path) -> dict[int, float]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    path.write_text("".join(json.dumps({"text": f"Q: {i} + {i + 3}? A: {2 * i + 3}"}) + "\n" for i in range(16)))
    return str(path)


@pytest.fixture(scope="module")
def unbroken(tiny_model_dir, data, tmp_path_factory) -> Path:
    """An unbroken run's output folder; save_total_limit 1 leaves only checkpoint-6."""
    out = tmp_path_factory.mktemp("unbroken") / "out"
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", str(out)]
    assert main([*argv, *FLAGS]) == 0
    return out


def test_unbroken_run_keeps_the_limit_and_seals_each_checkpoint(unbroken):
    assert sorted(p.name for p in unbroken.glob("checkpoint-*")) == ["checkpoint-6"]
    assert (unbroken / "checkpoint-6" / MANIFEST).is_file() and not (unbroken / "checkpoint-6" / IN_PROGRESS).exists()
    assert checkpoint_problems(str(unbroken / "checkpoint-6")) == []
    assert sorted(losses(unbroken / "checkpoint-6")) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("block_at", ["scheduler.pt", "trainer_state.json"])
def test_kill_during_a_save_resumes_from_the_latest_complete_checkpoint(
    block_at, tiny_model_dir, data, unbroken, tmp_path, caplog
):
    out = tmp_path / "out"
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(RUNNER))
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", str(out)]
    env = {
        **os.environ,
        "BLOCK_AT": block_at,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(runner), *argv, *FLAGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(300, proc.kill)  # a runner that never blocks must not hang the suite
    watchdog.start()
    try:
        blocked = any(line.strip() == "BLOCKED IN SAVE" for line in proc.stdout)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watchdog.cancel()
    assert blocked, "the run ended without reaching the save of checkpoint-4"
    assert proc.returncode == -signal.SIGKILL
    killed = out / "checkpoint-4"
    assert (killed / "optimizer.pt").is_file() and (killed / "scheduler.pt").exists() == (block_at != "scheduler.pt")
    assert checkpoint_problems(str(killed)), "a checkpoint killed mid-save looks complete"
    assert (killed / IN_PROGRESS).exists() and not (killed / MANIFEST).exists()
    # save_total_limit 1: the previous checkpoint is not rotated away before the new one is complete
    assert checkpoint_problems(str(out / "checkpoint-2")) == []

    caplog.set_level("WARNING")
    assert main([*argv, *FLAGS, "--resume_from_checkpoint", "true"]) == 0
    assert f"Skipping incomplete checkpoint {killed}" in caplog.text
    resumed, reference = losses(out / "checkpoint-6"), losses(unbroken / "checkpoint-6")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert abs(resumed[step] - reference[step]) <= 1e-6 * abs(reference[step]), (step, resumed, reference)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]


def resume(tiny_model_dir, data, out: Path, value: str, *extra: str) -> int:
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", str(out)]
    return main([*argv, *FLAGS, "--resume_from_checkpoint", value, *extra])


def damaged_copy(unbroken: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "out" / "checkpoint-6"
    shutil.copytree(unbroken / "checkpoint-6", folder)
    return folder


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda f: (f / "optimizer.pt").unlink(), ["optimizer.pt is missing", "--resume_with_fresh_optimizer"]),
        (lambda f: (f / "scheduler.pt").unlink(), ["scheduler.pt is missing", "--resume_with_fresh_optimizer"]),
        (lambda f: (f / IN_PROGRESS).write_text(""), ["did not finish", IN_PROGRESS]),
        (lambda f: os.truncate(f / "model.safetensors", 100), ["model.safetensors has 100 bytes"]),
        (lambda f: os.truncate(f / "optimizer.pt", 100), ["optimizer.pt has 100 bytes"]),
    ],
    ids=["no optimizer", "no scheduler", "save not finished", "truncated weights", "truncated optimizer"],
)
def test_a_damaged_checkpoint_is_refused_naming_the_file(
    damage, expected, tiny_model_dir, data, unbroken, tmp_path, capsys, no_model_load
):
    folder = damaged_copy(unbroken, tmp_path)
    damage(folder)
    for value in (str(folder), "true"):
        assert resume(tiny_model_dir, data, folder.parent, value) == 2
        err = capsys.readouterr().err
        assert "trl-ext: error: --resume_from_checkpoint" in err
        for part in expected:
            assert part in err, (part, err)


def test_truncated_weights_without_a_manifest_are_found_by_their_header(unbroken, tmp_path):
    """A checkpoint saved by plain transformers has no manifest: the safetensors header gives the size it needs."""
    folder = damaged_copy(unbroken, tmp_path)
    (folder / MANIFEST).unlink()
    assert checkpoint_problems(str(folder)) == []
    size = (folder / "model.safetensors").stat().st_size
    os.truncate(folder / "model.safetensors", size - 1)
    assert checkpoint_problems(str(folder)) == [
        f"model.safetensors is truncated or corrupt ({size - 1} bytes, its header says {size})"
    ]


def test_true_without_any_checkpoint_is_refused(tiny_model_dir, data, tmp_path, capsys, no_model_load):
    assert resume(tiny_model_dir, data, tmp_path / "empty", "latest") == 2
    assert "no complete checkpoint in" in capsys.readouterr().err


def test_fresh_optimizer_flag_resumes_a_checkpoint_without_one(tiny_model_dir, data, unbroken, tmp_path):
    """Resumed at step 6 of 6 with --max_steps 7: one more step from the saved weights with a new optimizer."""
    folder = damaged_copy(unbroken, tmp_path)
    (folder / "optimizer.pt").unlink()
    (folder / "scheduler.pt").unlink()
    flags = ("--resume_with_fresh_optimizer", "true", "--max_steps", "7")
    assert resume(tiny_model_dir, data, folder.parent, "true", *flags) == 0
    assert (folder.parent / "model.safetensors").is_file()
    assert sorted(losses(folder.parent / "checkpoint-7")) == [1, 2, 3, 4, 5, 6, 7]
