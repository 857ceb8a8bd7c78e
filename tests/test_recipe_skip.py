"""`skip_if_empty: true`: a recipe stage whose training split is empty once loaded and transformed is skipped (recorded
as "skipped", its input model passed on), a rerun keeps it skipped, and a later stage interrupted after it resumes."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from trl_ext import Recipe, Transform
from trl_ext.cli import main
from trl_ext.data.curation import current_split
from trl_ext.plugin.registry import registry
from trl_ext.run import stage as stage_module
from trl_ext.run.progress import MARKER
from trl_ext.run.recipe import RecipeError, checked_recipe

SEEN_SPLITS: list[tuple[str, str | None]] = []


def _emptying(name: str):
    """A transform that empties the train split and leaves the others whole (reading the split it is applied to)."""

    def build(**options):
        def fn(dataset):
            split = current_split()
            SEEN_SPLITS.append((name, split))
            return dataset.select([]) if split == "train" else dataset

        return fn

    return build


@pytest.fixture
def components(tiny_model_dir, tmp_path):
    """Registers the test transforms `tests_empty` / `tests_empty_with_model` and recipes made by the returned
    function; removes them afterwards."""
    reg = registry()
    records = [
        Transform(name="tests_empty", factory=_emptying("tests_empty")),
        Transform(name="tests_empty_with_model", factory=_emptying("tests_empty_with_model"), needs_model=True),
    ]
    for record in records:
        reg._register_fn(record.kind, "tests", [])(record)

    def recipe(run: str, stages: list[dict]) -> str:
        source = {
            "model_name_or_path": tiny_model_dir,
            "dataset_name": "builtin:arith",
            "output_dir": str(tmp_path / run),
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "report_to": "none",
            "logging_steps": 1,
            "save_strategy": "no",
            "stages": stages,
        }
        record = Recipe(name=f"tests_skip_{run}", source=source)
        reg._register_fn("recipe", "tests", [])(record)
        records.append(record)
        return record.name

    SEEN_SPLITS.clear()
    yield recipe
    for record in records:
        reg._remove(record)


_SKIPPED = {"method": "sft", "max_steps": 2, "transforms": "tests_empty", "skip_if_empty": True}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _state(folder: Path) -> str:
    import json

    return json.loads((folder / MARKER).read_text())["state"]


def test_an_emptied_last_stage_is_skipped_and_the_run_ends_with_the_previous_stages_model(
    components, tmp_path, capsys, monkeypatch
):
    name = components("last", [{"method": "sft", "max_steps": 2}, _SKIPPED])
    loaded = []
    build = stage_module.build_trainer
    monkeypatch.setattr(stage_module, "build_trainer", lambda s, d: loaded.append(s) or build(s, d))
    assert main(["train", name]) == 0
    out = capsys.readouterr().out
    first, second = tmp_path / "last" / "stage-1-sft", tmp_path / "last" / "stage-2-sft"
    assert _state(first) == "finished" and _state(second) == "skipped"
    assert not (second / "model.safetensors").exists()
    assert "stage 2/2: sft" in out and "skipped; the model stays" in out and str(first) in out
    assert f"Model saved to {first}" in out
    assert [s.config.output_dir for s in loaded] == [str(first)]  # no model was loaded for the skipped stage
    # The split the trainer reads went through the transform (no evaluation: not the test split; the helper names each).
    assert sorted(SEEN_SPLITS) == [("tests_empty", "train")]


def test_a_skipped_first_stage_passes_the_base_model_to_the_next(components, tmp_path, tiny_model_dir, monkeypatch):
    name = components("first", [_SKIPPED, {"method": "sft", "max_steps": 1}])
    trained_from = []
    build = stage_module.build_trainer

    def recording(stage, dataset):
        trained_from.append(stage.model_args.model_name_or_path)
        return build(stage, dataset)

    monkeypatch.setattr(stage_module, "build_trainer", recording)
    assert main(["train", name]) == 0
    assert trained_from == [tiny_model_dir]
    assert _state(tmp_path / "first" / "stage-1-sft") == "skipped"
    assert _state(tmp_path / "first" / "stage-2-sft") == "finished"


def test_a_stage_emptied_by_a_transform_that_needs_the_model_is_skipped_after_loading_it(components, tmp_path, capsys):
    skipped = {**_SKIPPED, "transforms": "tests_empty_with_model"}
    name = components("with_model", [{"method": "sft", "max_steps": 1}, skipped])
    assert main(["train", name]) == 0
    assert _state(tmp_path / "with_model" / "stage-2-sft") == "skipped"
    assert "skipped; the model stays" in capsys.readouterr().out


def test_every_stage_skipped_says_nothing_was_trained(components, tmp_path, tiny_model_dir, capsys):
    name = components("none", [_SKIPPED, _SKIPPED])
    assert main(["train", name]) == 0
    assert (
        f"No stage trained (every stage was skipped); the model is still {tiny_model_dir}" in capsys.readouterr().out
    )


def test_without_the_flag_an_emptied_split_is_refused_with_the_transforms_named(components, tmp_path, capsys):
    name = components("no_flag", [{"method": "sft", "max_steps": 1, "transforms": "tests_empty"}])
    assert main(["train", name]) == 2
    err = capsys.readouterr().err
    assert "no rows left after the transforms tests_empty" in err and "skip_if_empty" in err
    assert not (tmp_path / "no_flag" / "model.safetensors").exists()


class _KilledAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_a_run_interrupted_after_a_skipped_stage_resumes_and_matches_the_unbroken_run(
    components, tmp_path, monkeypatch, capsys
):
    stages = [
        {"method": "sft", "max_steps": 2},
        _SKIPPED,
        {"method": "sft", "max_steps": 4, "save_strategy": "steps", "save_steps": 2},
    ]
    assert main(["train", components("unbroken", stages)]) == 0
    expected = _weights(tmp_path / "unbroken" / "stage-3-sft")

    name = components("broken", stages)
    build = stage_module.build_trainer

    def build_with_a_kill(stage, dataset):
        trainer, tokenizer = build(stage, dataset)
        if stage.config.output_dir.endswith("stage-3-sft"):
            trainer.add_callback(_KilledAt(3))  # after checkpoint-2 was saved
        return trainer, tokenizer

    monkeypatch.setattr(stage_module, "build_trainer", build_with_a_kill)
    with pytest.raises(KeyboardInterrupt):
        main(["train", name])
    first, second, third = (tmp_path / "broken" / f"stage-{i}-sft" for i in (1, 2, 3))
    assert [_state(first), _state(second), _state(third)] == ["finished", "skipped", "started"]
    written = (first / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(stage_module, "build_trainer", build)
    SEEN_SPLITS.clear()
    capsys.readouterr()

    assert main(["train", name]) == 0  # the same command again
    out = capsys.readouterr().out
    assert "stage 1/3: sft" in out and "(finished by an earlier run of this recipe: kept)" in out
    assert "(skipped by an earlier run of this recipe: kept)" in out
    assert SEEN_SPLITS == []  # the skipped stage's data was not even loaded again
    assert (first / "model.safetensors").stat().st_mtime_ns == written
    assert f"resuming from {third / 'checkpoint-2'}" in out
    resumed = _weights(third)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6, msg=key)
    assert _state(third) == "finished"


def test_skip_if_empty_must_be_a_boolean():
    with pytest.raises(RecipeError, match="skip_if_empty"):
        checked_recipe({"stages": [{"method": "sft", "skip_if_empty": "yes"}]}, "recipe")
    with pytest.raises(RecipeError, match="skip_if_empty"):
        checked_recipe({"skip_if_empty": 1, "method": "sft"}, "recipe")


def test_current_split_is_none_outside_a_transform_run():
    assert current_split() is None
