"""trl_ext.training.teacher: the distillation base's teacher, loaded through trl_ext.models and refused before any
weight is read when it is missing or has another vocabulary."""

import copy

import pytest
import torch

from trl_ext.models import ModelLoadError
from trl_ext.run.bases import training_base
from trl_ext.testing import save_tiny_model, tiny_model, tiny_tokenizer
from trl_ext.training.teacher import TeacherError, load_teacher


def test_the_distillation_base_builds_the_teacher_argument():
    base = training_base("distillation")
    assert base.reference_trainer().__name__ == "DistillationTrainer" and not base.takes_rewards
    assert base.extra_kwargs == "trl_ext.training.teacher:teacher_kwargs"


def test_a_teacher_is_loaded_frozen_in_the_student_dtype(tmp_path):
    path = save_tiny_model(tmp_path / "teacher", seed=1)
    teacher = load_teacher(str(path), tiny_model().to(torch.float64), tiny_tokenizer())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert teacher.dtype == torch.float64


def test_refusals_name_the_problem(tmp_path, monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("trl_ext.training.teacher.load_model", no_weights)
    student = tiny_model()
    with pytest.raises(TeacherError, match="--teacher_model_name_or_path"):
        load_teacher(None, student)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_teacher(str(tmp_path / "missing"), student)
    with pytest.raises(TeacherError, match="vocab_size 400 but the student has 320"):
        load_teacher(str(save_tiny_model(tmp_path / "big", vocab_size=400)), student)
    other = save_tiny_model(tmp_path / "other")
    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.add_tokens(["<|newtoken|>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(TeacherError, match="another tokenizer"):
        load_teacher(str(other), student, tiny_tokenizer())
