"""trl_ext.training.reference: the EMA update rule and schedule, the frozen copy, and saving/restoring the teacher with checkpoints."""

import zipfile
from types import SimpleNamespace

import pytest
import torch

from trl_ext.testing import tiny_model
from trl_ext.training.reference import TEACHER_FILE, EMATeacher, frozen_copy, resolve_checkpoint


def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def test_frozen_copy_is_independent_and_keeps_ties():
    model = tiny_model(tie_word_embeddings=True)
    teacher = frozen_copy(model)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in model.parameters())
    embed = teacher.get_input_embeddings().weight
    assert embed.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert embed.data_ptr() == teacher.get_output_embeddings().weight.data_ptr()


def test_update_mixes_policy_into_teacher():
    policy = tiny_model()
    teacher = frozen_copy(policy)
    old = [p.detach().clone() for p in teacher.parameters()]
    _perturb(policy, 0)
    ema = EMATeacher(teacher, policy, sync_steps=3, alpha=0.99)
    ema.update()
    for t, o, p in zip(teacher.parameters(), old, policy.parameters(), strict=True):
        assert torch.allclose(t, 0.01 * o + 0.99 * p, atol=1e-6)


def test_updates_only_every_sync_steps():
    policy = tiny_model()
    teacher = frozen_copy(policy)
    ema = EMATeacher(teacher, policy, sync_steps=3, alpha=0.5)
    for step in range(1, 8):
        ema.on_step_end(None, SimpleNamespace(global_step=step), None)
    assert ema.num_updates == 2  # steps 3 and 6


def test_save_and_load_round_trip(tmp_path):
    policy = tiny_model(tie_word_embeddings=True)
    teacher = frozen_copy(policy)
    _perturb(teacher, 1)
    ema = EMATeacher(teacher, policy, sync_steps=1, alpha=0.5)
    (tmp_path / "checkpoint-7").mkdir()
    state = SimpleNamespace(global_step=7, is_world_process_zero=True)
    ema.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    assert (tmp_path / "checkpoint-7" / TEACHER_FILE).exists()

    fresh = EMATeacher(frozen_copy(policy), policy, sync_steps=1, alpha=0.5)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.teacher.parameters(), teacher.parameters(), strict=True))
    fresh.load(str(tmp_path / "checkpoint-7"))
    for a, b in zip(fresh.teacher.parameters(), teacher.parameters(), strict=True):
        assert torch.equal(a, b)
    embed = fresh.teacher.get_input_embeddings().weight
    assert embed.data_ptr() == fresh.teacher.get_output_embeddings().weight.data_ptr()


def test_missing_teacher_file_is_an_error(tmp_path):
    policy = tiny_model()
    ema = EMATeacher(frozen_copy(policy), policy, sync_steps=1, alpha=0.5)
    with pytest.raises(FileNotFoundError, match=TEACHER_FILE):
        ema.load(str(tmp_path))


def test_resolve_checkpoint(tmp_path):
    assert resolve_checkpoint(None, str(tmp_path)) is None
    assert resolve_checkpoint("some/dir", str(tmp_path)) == "some/dir"
    with pytest.raises(ValueError, match="no checkpoint"):
        resolve_checkpoint(True, str(tmp_path))
    for step in (2, 10, 12):  # whole checkpoints by their files (json and zip files that read back)
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
        for name in ("pytorch_model.bin", "optimizer.pt", "scheduler.pt"):
            with zipfile.ZipFile(folder / name, "w") as archive:
                archive.writestr("data", b"x")
    (tmp_path / "checkpoint-12" / "optimizer.pt").unlink()  # the newest lacks its optimizer: skipped
    assert resolve_checkpoint(True, str(tmp_path)).endswith("checkpoint-10")


@pytest.mark.parametrize("kwargs", [dict(sync_steps=0, alpha=0.5), dict(sync_steps=1, alpha=1.5)])
def test_bad_settings(kwargs):
    policy = tiny_model()
    with pytest.raises(ValueError):
        EMATeacher(policy, policy, **kwargs)
