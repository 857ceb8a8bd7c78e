"""A training loss that turns NaN or inf stops the run through the CLI with the step named and a non-zero exit; the
step is never saved, the final model is not written, and the last checkpoint stays complete with finite weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trl_ext import get
from trl_ext.cli import main
from trl_ext.training.checkpoints import checkpoint_problems

# One checkpoint per step, so the step before the bad one has been saved.
FLAGS = ["--per_device_train_batch_size", "2", "--report_to", "none", "--logging_steps", "1", "--save_steps", "1"]
FLAGS += ["--save_strategy", "steps"]


def assert_stopped_and_kept(code: int, err: str, out: Path, expected_step: int | None = None) -> int:
    assert code == 2, err[-2000:]
    found = re.search(r"The training loss is (nan|inf) at step (\d+)", err)
    assert found, err[-2000:]
    step = int(found.group(2))
    if expected_step is not None:
        assert step == expected_step
    assert not (out / "model.safetensors").exists(), "the final model was saved"
    assert not (out / f"checkpoint-{step}").exists(), "the bad step was checkpointed"
    kept = out / f"checkpoint-{step - 1}"
    assert f"The last checkpoint, {kept}, is intact" in err
    assert checkpoint_problems(str(kept)) == []
    weights = load_file(kept / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    return step


def test_sft_with_an_exploding_learning_rate_stops(tiny_model_dir, tmp_path, capsys):
    """Adam moves every weight by about lr = 1e30 in step 1, so step 2's forward overflows; step 1's loss comes from
    the initial weights and is finite."""
    out = tmp_path / "out"
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), "--max_steps", "4"]
    code = main([*argv, *FLAGS, "--learning_rate", "1e30"])
    assert_stopped_and_kept(code, capsys.readouterr().err, out, expected_step=2)


def poison_loss_from(monkeypatch, method: str, step: int) -> None:
    """The method's loss becomes NaN from optimizer step `step` on (its gradients with it)."""
    trainer_class = get("method", method).trainer
    compute_loss = trainer_class.compute_loss

    def poisoned(self, *args, **kwargs):
        result = compute_loss(self, *args, **kwargs)
        if self.state.global_step + 1 < step:
            return result
        if isinstance(result, tuple):
            return (result[0] * float("nan"), *result[1:])
        return result * float("nan")

    monkeypatch.setattr(trainer_class, "compute_loss", poisoned)


@pytest.mark.parametrize(
    "method, extra",
    [
        (
            "grpo",
            ["--dataset_name", "builtin:json_extract", "--rewards", "json_validity", "--num_generations", "2"]
            + ["--max_completion_length", "8"],
        ),
        ("dpo", []),
    ],
)
def test_grpo_and_dpo_stop_on_a_nan_loss(method, extra, tiny_model_dir, tmp_path, capsys, monkeypatch):
    poison_loss_from(monkeypatch, method, step=3)
    out = tmp_path / method
    argv = ["train", method, "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), "--max_steps", "4"]
    code = main([*argv, *FLAGS, *extra])
    assert_stopped_and_kept(code, capsys.readouterr().err, out, expected_step=3)
