"""Transforms, callbacks and adapters registered by a plugin compose with any method through `trl-ext train`."""

import pytest
from transformers import TrainerCallback

from trl_ext import Adapter, Callback, Transform, hookimpl, registry
from trl_ext.cli import main

SEEN: dict[str, object] = {}


class _Recorder(TrainerCallback):
    def __init__(self, tag: str = "default"):
        self.tag = tag

    def on_train_begin(self, args, state, control, **kwargs):
        SEEN["callback"] = self.tag


def _freeze_embeddings(model):
    model.get_input_embeddings().weight.requires_grad_(False)
    SEEN["adapter"] = True
    return model


def _keep_first(n: int = 4):
    def fn(dataset):
        SEEN.setdefault("transform_rows", []).append(len(dataset))
        return dataset.select(range(min(n, len(dataset))))

    return fn


class ComposePlugin:
    @hookimpl
    def register_callbacks(self, register):
        register(Callback(name="recorder", factory=_Recorder))

    @hookimpl
    def register_adapters(self, register):
        register(Adapter(name="freeze_embeddings", factory=lambda: _freeze_embeddings))

    @hookimpl
    def register_transforms(self, register):
        register(Transform(name="keep_first", factory=_keep_first, required_columns=("prompt",)))


@pytest.fixture
def compose_plugin():
    reg = registry()
    if "compose-test" not in reg.plugins:
        reg.add_plugin(ComposePlugin(), "compose-test")
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.mark.parametrize("method", ["sft", "asft"])
def test_callbacks_adapters_transforms_compose(compose_plugin, tiny_model_dir, tmp_path, method):
    code = main(
        [
            "train",
            method,
            "--model_name_or_path",
            tiny_model_dir,
            "--output_dir",
            str(tmp_path / "out"),
            "--transforms",
            "keep_first:n=3",
            "--callbacks",
            "recorder:tag=hello",
            "--adapter",
            "freeze_embeddings",
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "2",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
        ]
    )
    assert code == 0
    assert SEEN["callback"] == "hello"
    assert SEEN["adapter"] is True
    assert SEEN["transform_rows"] == [2000]  # applied before training, to the split the trainer reads
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`transform:keep_first`" in card and "`callback:recorder`" in card and "`adapter:freeze_embeddings`" in card


def test_transforms_run_on_the_test_split_only_when_the_trainer_evaluates(compose_plugin, tiny_model_dir, tmp_path):
    """builtin:arith has train (2,000) and test (200) splits; with --eval_strategy steps the trainer reads both, so
    the transform sees both (without evaluation it saw only train: the test above)."""
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "out")]
    argv += ["--transforms", "keep_first:n=3", "--max_steps", "1", "--per_device_train_batch_size", "2"]
    argv += ["--eval_strategy", "steps", "--eval_steps", "1", "--report_to", "none", "--save_strategy", "no"]
    assert main(argv) == 0
    assert SEEN["transform_rows"] == [2000, 200]


def test_unknown_component_names_close_match(compose_plugin, capsys):
    assert main(["train", "sft", "--callbacks", "recordr"]) == 2
    assert "Did you mean: recorder" in capsys.readouterr().err
