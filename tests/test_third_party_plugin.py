"""A third-party plugin (examples/third_party_plugin) is discovered exactly like the built-ins, a plugin that fails
to import is reported without stopping the others, TRL_EXT_PLUGINS loads only the named plugins, and a name
registered twice is an error naming both plugins."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext import DuplicateComponentError, Method, Reward, UnknownComponentError, hookimpl
from trl_ext.plugin.registry import ALLOW_LIST_ENV, Registry
from trl_ext.testing import tiny_model, tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "third_party_plugin"
DIST = "trl-ext-example-plugin"
CPU = {"report_to": "none", "bf16": False, "use_cpu": True, "save_strategy": "no"}


def _has_distribution(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def example_installed() -> None:
    """Install the example plugin if it is not (the Makefile does it too), so that this file is self-sufficient."""
    if not _has_distribution(DIST):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", str(EXAMPLE)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(
                f"pip could not install {EXAMPLE} (needed to test entry-point discovery): {proc.stderr[-2000:]}"
            )
        importlib.invalidate_caches()
    assert _has_distribution(DIST)
    # An editable install's .pth file is only read when Python starts; the entry point itself was found above.
    if importlib.util.find_spec("trl_ext_example") is None:
        sys.path.append(str(EXAMPLE / "src"))


@pytest.fixture(scope="module")
def loaded(example_installed) -> Registry:
    """A fresh registry built from every installed entry point, as `trl-ext` builds it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ALLOW_LIST_ENV, raising=False)
        return Registry().load_entry_points()


# --- the example plugin ------------------------------------------------------------------------------------------------
def test_the_example_plugin_is_discovered_like_the_builtins(loaded):
    example, asft = loaded.plugins["example"], loaded.plugins["asft"]
    assert (example.status, example.error, example.version, example.module) == ("ok", None, "0.1.0", "trl_ext_example")
    assert (asft.status, asft.error, asft.module) == ("ok", None, "trl_ext_plugins.asft")

    method = loaded.get("method", "example_sft")
    assert method.plugin == "example" and method.base == "sft"
    assert issubclass(method.trainer, SFTTrainer) and issubclass(method.config, SFTConfig)
    assert loaded.get("reward", "example_length").plugin == "example"
    assert loaded.get("method", "asft").plugin == "asft"
    names = {(c.kind, c.name) for c in loaded.components()}
    assert {("method", "example_sft"), ("reward", "example_length"), ("method", "asft")} <= names


def test_example_length_scores_hand_cases(loaded):
    reward = loaded.get("reward", "example_length")
    assert set(reward.options) == {"min_chars", "max_chars"}
    fn = reward.build(min_chars=3, max_chars=5)
    assert fn.__name__ == "example_length"  # TRL logs each reward under its function's name
    completions = ["ab", "abc", "abcde", "abcdef", "", "ünï"]
    assert fn(prompts=["q"] * 6, completions=completions) == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    conversational = [
        [{"role": "assistant", "content": "abcd"}],
        [{"role": "assistant", "content": "abcdefgh"}],
        [{"role": "assistant", "content": "abcd"}, {"role": "tool", "content": "x"}],  # the last message counts
        [],
    ]
    prompts = [[{"role": "user", "content": "q"}]] * 4
    assert fn(prompts=prompts, completions=conversational, answer=["unused"] * 4) == [1.0, 0.0, 0.0, 0.0]
    default = reward.build()
    assert default(prompts=["q"] * 4, completions=["", "x", "x" * 200, "x" * 201]) == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"min_chars": -1}, "min_chars"), ({"min_chars": 5, "max_chars": 3}, "max_chars"), ({"max_chars": 2.5}, "max")],
)
def test_example_length_rejects_bad_options(loaded, options, field):
    with pytest.raises(ValueError, match=field):
        loaded.get("reward", "example_length").build(**options)


def test_example_sft_scales_the_sft_loss(loaded, tmp_path):
    method = loaded.get("method", "example_sft")
    with pytest.raises(ValueError, match="nll_scale=0"):
        method.config(output_dir=str(tmp_path), nll_scale=0.0, **CPU)

    rows = [
        {"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
        for q, a in [("3 + 4?", "3 + 4 = 7."), ("12 - 5?", "12 - 5 = 7."), ("6 * 8?", "6 * 8 = 48.")]
    ]
    data, args = Dataset.from_list(rows), dict(output_dir=str(tmp_path), per_device_train_batch_size=3, **CPU)
    sft = SFTTrainer(model=tiny_model(), args=SFTConfig(**args), train_dataset=data, processing_class=tiny_tokenizer())
    ours = method.trainer(
        model=tiny_model(),
        args=method.config(nll_scale=0.5, **args),
        train_dataset=data,
        processing_class=tiny_tokenizer(),
    )
    batch = next(iter(sft.get_train_dataloader()))
    with torch.no_grad():
        expected = 0.5 * sft.compute_loss(sft.model, dict(batch)).item()
        assert ours.compute_loss(ours.model, dict(batch)).item() == pytest.approx(expected, rel=1e-5)


# --- a plugin that fails to import ---------------------------------------------------------------------------------------
def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text('raise RuntimeError("broken on purpose: missing dependency xyz")\n')
    dist_info = tmp_path / "broken_plugin-0.0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.0.1\n")
    (dist_info / "entry_points.txt").write_text("[trl_ext]\nbroken = broken_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ALLOW_LIST_ENV, raising=False)

    registry = Registry().load_entry_points()
    broken = registry.plugins["broken"]
    assert (broken.status, broken.version, broken.module) == ("error", "0.0.1", "broken_plugin")
    assert "RuntimeError: broken on purpose: missing dependency xyz" in broken.error
    assert "broken_plugin.py" in broken.error
    assert registry.plugins["asft"].status == "ok"
    assert registry.get("method", "asft").plugin == "asft"
    assert "broken_plugin" not in sys.modules


# --- TRL_EXT_PLUGINS ---------------------------------------------------------------------------------------------------
def test_the_allow_list_loads_only_the_named_plugins(example_installed, monkeypatch):
    monkeypatch.setenv(ALLOW_LIST_ENV, "asft")
    only_asft = Registry().load_entry_points()
    assert set(only_asft.plugins) == {"asft"}
    assert only_asft.get("method", "asft").plugin == "asft"
    with pytest.raises(UnknownComponentError, match="example_sft"):
        only_asft.get("method", "example_sft")

    monkeypatch.setenv(ALLOW_LIST_ENV, " asft , example ")
    both = Registry().load_entry_points()
    assert set(both.plugins) == {"asft", "example"}
    assert both.get("method", "example_sft").plugin == "example"

    # An explicit allow list wins over the environment variable.
    assert set(Registry().load_entry_points(allow=["example"]).plugins) == {"example"}


# --- the same name from two plugins ------------------------------------------------------------------------------------
def _module_plugin(module_name: str, *method_names: str) -> types.ModuleType:
    module = types.ModuleType(module_name)

    @hookimpl
    def register_methods(register):
        for name in method_names:
            register(Method(name=name, trainer=SFTTrainer, config=SFTConfig))

    module.register_methods = register_methods
    return module


class _ClassPlugin:
    @hookimpl
    def register_methods(self, register):
        register(Method(name="shared", trainer=SFTTrainer, config=SFTConfig))

    @hookimpl
    def register_rewards(self, register):
        register(Reward(name="class_reward", factory=lambda: None))


def test_the_same_name_from_two_plugins_is_an_error_naming_both():
    registry = Registry()
    assert registry.add_plugin(_module_plugin("first_mod", "shared", "only_first"), "first").status == "ok"
    assert registry.add_plugin(_ClassPlugin(), "second").status == "ok"

    with pytest.raises(DuplicateComponentError) as excinfo:
        registry.get("method", "shared")
    assert excinfo.value.providers == ["first", "second"]
    assert "'shared'" in str(excinfo.value) and "first and second" in str(excinfo.value)
    # Everything else both plugins registered stays usable.
    assert registry.get("method", "only_first").plugin == "first"
    assert registry.get("reward", "class_reward").plugin == "second"

    registry.add_plugin(_module_plugin("third_mod", "shared"), "third")
    with pytest.raises(DuplicateComponentError, match="first and second and third"):
        registry.get("method", "shared")
