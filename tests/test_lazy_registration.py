"""Records name their trainer, config and factory by import path, imported on first use: the metadata commands
(`list`, `plugins`, `--help`, `info` of a reward, transform or dataset) import no torch, and every built-in path
resolves to an object of the right kind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trl_ext import Method, Reward
from trl_ext.plugin.lazy import ImportPathError, lazy_exports
from trl_ext.plugin.registry import ALLOW_LIST_ENV, BLOCK_LIST_ENV, Registry, registry

HEAVY = ("torch", "transformers", "trl", "datasets", "peft")

# Runs each command through `main` in one fresh interpreter and prints the heavy modules imported after each.
COMMANDS_SCRIPT = """
import contextlib, io, json, sys
from trl_ext.cli import main
report = {}
for command in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(command.split())
    heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
    report[command] = [code, len(out.getvalue()) > 0, heavy, "trl_ext_plugins.asft.trainer" in sys.modules]
print(json.dumps(report))
"""


def _run_commands(*commands: str) -> dict[str, list]:
    import json

    env = {k: v for k, v in os.environ.items() if k not in (ALLOW_LIST_ENV, BLOCK_LIST_ENV)}
    proc = subprocess.run(
        [sys.executable, "-c", COMMANDS_SCRIPT, json.dumps(list(commands)), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env={**env, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_metadata_commands_import_no_torch():
    report = _run_commands(
        "list", "plugins", "--help", "bench --help", "info json_validity", "info grape", "info arith_chains"
    )
    for command, (code, printed, heavy, _) in report.items():
        assert code == 0 and printed, command
        assert heavy == [], f"`trl-ext {command}` imported {heavy}"


def test_info_of_a_method_imports_its_config_but_not_its_trainer():
    (code, printed, heavy, trainer_imported) = _run_commands("info asft")["info asft"]
    assert code == 0 and printed
    assert "torch" in heavy  # the config (a TrainingArguments) is imported to list its fields
    assert not trainer_imported


@pytest.fixture
def target_module(tmp_path, monkeypatch):
    """A module on a tmp path, not imported yet: a trainer-like class, a factory and a non-class."""
    name = f"lazy_target_{os.getpid()}_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            class Trainer:
                pass

            def factory(scale=1):
                return lambda text: len(text) * scale

            NOT_A_CLASS = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_path_is_imported_on_first_read_and_cached(target_module):
    method = Method(name="m", trainer=f"{target_module}:Trainer", config=f"{target_module}:Trainer")
    reward = Reward(name="r", factory=f"{target_module}:factory")
    reg = Registry()
    reg._register_fn("method", "p", [])(method)
    reg._register_fn("reward", "p", [])(reward)
    assert target_module not in sys.modules  # registration checked the module exists without importing it
    assert method.import_paths() == {"trainer": f"{target_module}:Trainer", "config": f"{target_module}:Trainer"}
    trainer = method.trainer
    assert trainer is sys.modules[target_module].Trainer and method.trainer is trainer
    assert reward.build(scale=2)("abc") == 6
    assert reward.factory is sys.modules[target_module].factory


def test_a_path_to_the_wrong_kind_of_object_names_the_record_and_the_path(target_module):
    method = Method(name="m", trainer=f"{target_module}:NOT_A_CLASS")
    method.plugin = "p"
    with pytest.raises(
        ImportPathError, match=rf"trainer of method 'm' of plugin 'p' at '{target_module}:NOT_A_CLASS'"
    ):
        _ = method.trainer
    with pytest.raises(ImportPathError, match=r"AttributeError.*TRL_EXT_DISABLE_PLUGINS=p"):
        _ = Method(name="m2", plugin="p", config=f"{target_module}:Missing").config


def test_lazy_exports_import_the_submodule_on_first_access():
    module = type(sys)("lazy_exports_pkg")
    module.__getattr__, module.__dir__ = lazy_exports("lazy_exports_pkg", {"dumps": "json", "loads_": "json:loads"})
    sys.modules["lazy_exports_pkg"] = module
    try:
        import json

        assert module.dumps is json.dumps and module.loads_ is json.loads
        assert {"dumps", "loads_"} <= set(dir(module))
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            _ = module.nope
    finally:
        del sys.modules["lazy_exports_pkg"]


def test_every_builtin_path_resolves_to_the_right_kind():
    records = [r for r in registry().components() if r.import_paths()]
    assert {r.plugin for r in records} >= {"core", "asft", "fait", "grape", "soft", "tl_training"}
    for record in records:
        for attr in record.import_paths():
            value = getattr(record, attr)
            assert isinstance(value, type) if attr in ("trainer", "config") else callable(value), (record.name, attr)


def test_the_python_api_names_still_import_from_the_plugin_package():
    from trl_ext_plugins.asft import ASFTConfig, ASFTTrainer

    method = registry().get("method", "asft")
    assert method.trainer is ASFTTrainer and method.config is ASFTConfig


@pytest.mark.parametrize(("method", "offers_rewards"), [("asft", False), ("sft", False), ("grpo", True)])
def test_train_help_offers_rewards_only_where_the_base_takes_them(method, offers_rewards):
    from trl_ext.run.arguments import build_parser

    text = build_parser(registry().get("method", method)).format_help()
    assert ("--rewards" in text) is ("--reward" in text) is offers_rewards  # no reward flag at all without rewards
    for kind, flag in (("callback", "--callbacks"), ("adapter", "--adapter")):
        assert flag in text
        says_none = f"No installed plugin registers any {kind}s yet" in " ".join(text.split())
        assert says_none is (not registry().components(kind))
