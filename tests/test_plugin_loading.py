"""Faulty plugins are isolated: one test per kind of fault. Each fake plugin is a module on a tmp path, registered
through an injected entry-point list (in-process) or a `.dist-info` folder on PYTHONPATH (the CLI in a subprocess)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from trl import SFTConfig, SFTTrainer

from trl_ext import Method, Reward, hookimpl
from trl_ext.plugin.registry import (
    ALLOW_LIST_ENV,
    BLOCK_LIST_ENV,
    ENTRY_POINT_GROUP,
    SLOW_IMPORT_ENV,
    Registry,
)

GOOD = """
from trl_ext import Reward, hookimpl

@hookimpl
def register_rewards(register):
    register(Reward(name="good_reward", factory=lambda: len))
"""


def _builtin(name: str) -> metadata.EntryPoint:
    """The real entry point of a built-in plugin (declared by the trl-ext distribution)."""
    return next(ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name)


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """`make(name, source)` writes a plugin module on sys.path and returns its third-party entry point."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ALLOW_LIST_ENV, raising=False)
    monkeypatch.delenv(BLOCK_LIST_ENV, raising=False)
    made: list[str] = []

    def make(name: str, source: str) -> metadata.EntryPoint:
        module = f"fake_{name}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        made.append(module)
        return metadata.EntryPoint(name=name, value=module, group=ENTRY_POINT_GROUP)

    yield make
    for module in made:
        sys.modules.pop(module, None)


def _load(*eps: metadata.EntryPoint, **kwargs) -> Registry:
    return Registry().load_entry_points(entry_points=list(eps), **kwargs)


def _assert_isolated(registry: Registry, bad: str, *fragments: str) -> None:
    """`bad` failed with an error holding every fragment; the good plugin still loaded and its reward is usable."""
    info = registry.plugins[bad]
    assert info.status == "error", info
    for fragment in fragments:
        assert fragment in info.error
    assert registry.plugins["good"].status == "ok"
    assert registry.get("reward", "good_reward").build()("abc") == 3
    (line,) = [p for p in registry.problems() if f"plugin {bad!r}" in p]
    assert f"{BLOCK_LIST_ENV}={bad}" in line and "\n" not in line


# --- faults at import ------------------------------------------------------------------------------------------------
def test_an_exception_at_import_is_isolated(fake_plugins):
    registry = _load(fake_plugins("good", GOOD), fake_plugins("raises", "raise ImportError('no module named xyz')\n"))
    _assert_isolated(registry, "raises", "ImportError: no module named xyz")


@pytest.mark.parametrize("call", ["sys.exit(3)", "sys.exit('bye')", "raise SystemExit"])
def test_sys_exit_at_import_is_isolated(fake_plugins, call):
    exits = fake_plugins("exits", f"import sys\n{call}\n")
    registry = _load(fake_plugins("good", GOOD), exits)
    expected_code = {"sys.exit(3)": "3", "sys.exit('bye')": "'bye'", "raise SystemExit": "None"}[call]
    _assert_isolated(registry, "exits", f"SystemExit: exited with code {expected_code}")


def test_a_slow_import_names_the_plugin_and_the_bypass(fake_plugins, monkeypatch):
    # The plugin waits until the notice is on stderr (at most 30 s), so the test does not depend on timing.
    slow = fake_plugins(
        "slow",
        """
        import sys, time
        for _ in range(3000):
            if "still importing" in sys.stderr.getvalue():
                break
            time.sleep(0.01)
        """,
    )
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv(SLOW_IMPORT_ENV, "0.05")
    registry = _load(slow)
    assert registry.plugins["slow"].status == "ok"
    assert "plugin 'slow' is still importing" in stderr.getvalue()
    assert f"{BLOCK_LIST_ENV}=slow" in stderr.getvalue()


def test_the_block_list_skips_a_plugin_without_importing_it(fake_plugins, monkeypatch):
    blocked = fake_plugins("blocked", "raise RuntimeError('must not be imported')\n")
    monkeypatch.setenv(BLOCK_LIST_ENV, " blocked ,other")
    registry = _load(fake_plugins("good", GOOD), blocked)
    assert set(registry.plugins) == {"good"} and registry.problems() == []
    assert set(_load(blocked, block=[]).plugins) == {"blocked"}  # an explicit list wins over the variable


# --- invalid records -------------------------------------------------------------------------------------------------
INVALID_RECORDS = {
    "name_int": ("Reward(name=123, factory=len)", "reward name must be a non-empty str, got 123"),
    "name_empty": ("Reward(name='  ', factory=len)", "reward name must be a non-empty str"),
    "paper_str": ("Reward(name='r', paper='arXiv 2401.1', factory=len)", "paper must be a trl_ext.Paper or None"),
    "family": ("Reward(name='r', family='nope', factory=len)", "unknown family 'nope'"),
    "factory": ("Reward(name='r', factory=42)", "factory must be callable or an import path, got int"),
    "factory_str": ("Reward(name='r', factory='len')", "factory 'len' is not an import path"),
    "factory_no_module": (
        "Reward(name='r', factory='no_such_module_xyz.rewards:build')",
        "the module 'no_such_module_xyz.rewards' of its factory 'no_such_module_xyz.rewards:build' cannot be found",
    ),
    "trainer_no_module": (
        "Method(name='m', trainer='trl_ext.no_such_trainer:T')",
        "the module 'trl_ext.no_such_trainer' of its trainer",
    ),
    "trainer": ("Method(name='m', trainer=SFTTrainer(), config=None)", "trainer must be a class"),
    "config": (
        "Method(name='m', trainer=None, config=dict(a=1))",
        "config must be a class or an import path, got dict",
    ),
    "not_a_record": ("{'name': 'r'}", "must register Reward records, got dict"),
}


@pytest.mark.parametrize("case", list(INVALID_RECORDS))
def test_an_invalid_record_fails_its_plugin_with_the_plugin_named(fake_plugins, case):
    record, message = INVALID_RECORDS[case]
    hook = "register_methods" if record.startswith("Method") else "register_rewards"
    source = f"""
    from trl_ext import Method, Paper, Reward, hookimpl

    class SFTTrainer:
        pass

    @hookimpl
    def {hook}(register):
        register(Reward(name="bad_first", factory=len))  # registered before the fault: removed with the plugin
        register({record})
    """
    if hook == "register_methods":
        source = source.replace('register(Reward(name="bad_first", factory=len))', "pass")
    registry = _load(fake_plugins("good", GOOD), fake_plugins("bad", source))
    _assert_isolated(registry, "bad", message)
    assert "bad_first" not in {r.name for r in registry.components()}
    # `trl-ext list` reads every record's summary: none of them is malformed.
    assert [r.summary()["name"] for r in registry.components()] == ["good_reward"]


def test_a_hook_that_exits_fails_only_its_plugin(fake_plugins):
    source = """
    import sys
    from trl_ext import hookimpl

    @hookimpl
    def register_rewards(register):
        sys.exit(2)
    """
    registry = _load(fake_plugins("good", GOOD), fake_plugins("bad", source))
    _assert_isolated(registry, "bad", "SystemExit: exited with code 2")


# --- name collisions with a built-in ---------------------------------------------------------------------------------
SHADOW_ASFT = """
from trl import SFTConfig, SFTTrainer
from trl_ext import Method, hookimpl

@hookimpl
def register_methods(register):
    register(Method(name="asft", trainer=SFTTrainer, config=SFTConfig))
    register(Method(name="own_method", trainer=SFTTrainer, config=SFTConfig))
"""


def test_a_third_party_plugin_cannot_replace_a_builtin_name(fake_plugins):
    shadow = fake_plugins("shadow", SHADOW_ASFT)
    # "aaa" sorts before "asft": built-ins load first whatever the names.
    registry = _load(metadata.EntryPoint(name="aaa", value=shadow.value, group=ENTRY_POINT_GROUP), _builtin("asft"))
    assert registry.plugins["asft"].builtin and not registry.plugins["aaa"].builtin
    assert registry.get("method", "asft").plugin == "asft"
    assert registry.get("method", "asft").trainer.__name__ == "ASFTTrainer"
    assert registry.get("method", "own_method").plugin == "aaa"  # its other names stay usable
    (line,) = registry.problems()
    assert "plugin 'aaa' registers method 'asft', a name of the built-in plugin 'asft'" in line
    assert f"{BLOCK_LIST_ENV}=aaa" in line


def test_a_builtin_registered_second_still_wins():
    class ThirdParty:
        @hookimpl
        def register_methods(self, register):
            register(Method(name="asft", trainer=SFTTrainer, config=SFTConfig))

    class BuiltIn:
        @hookimpl
        def register_methods(self, register):
            register(Method(name="asft", trainer=SFTTrainer, config=SFTConfig, description="built-in"))

        @hookimpl
        def register_rewards(self, register):
            register(Reward(name="r", factory=len))

    registry = Registry()
    registry.add_plugin(ThirdParty(), "third")
    registry.add_plugin(BuiltIn(), "core", builtin=True)
    assert registry.get("method", "asft").description == "built-in"
    assert [(c.kind, c.name, c.builtin, c.ignored) for c in registry.shadowed] == [("method", "asft", "core", "third")]


# --- the CLI: a line per problem on every command, and `plugins --check` ----------------------------------------------
def _install(site: Path, name: str, source: str) -> None:
    module = f"cli_{name}_mod"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text(f"[trl_ext]\n{name} = {module}\n")


def _cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    base = {k: v for k, v in os.environ.items() if k not in (ALLOW_LIST_ENV, BLOCK_LIST_ENV)}
    env = {**base, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "trl_ext", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_every_command_prints_each_problem_with_the_bypass(tmp_path):
    _install(tmp_path, "exits", "import sys\nsys.exit(5)\n")
    _install(tmp_path, "badpaper", GOOD.replace('name="good_reward"', 'name="x", paper="not a Paper"'))
    _install(tmp_path, "shadow", SHADOW_ASFT)
    plugins = "asft,exits,badpaper,shadow"
    for command in (["list"], ["info", "asft"]):
        result = _cli(tmp_path, *command, **{ALLOW_LIST_ENV: plugins})
        assert result.returncode == 0, result.stderr[-2000:]
        warnings = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("trl-ext: warning:") and "still importing" not in line  # a slow machine's notice
        ]
        assert len(warnings) == 3, result.stderr
        for bad, what in [
            ("exits", "SystemExit: exited with code 5"),
            ("badpaper", "paper must be a trl_ext.Paper or None, got str"),
            ("shadow", "registers method 'asft', a name of the built-in plugin 'asft'"),
        ]:
            (line,) = [w for w in warnings if f"plugin {bad!r}" in w]
            assert what in line and f"{BLOCK_LIST_ENV}={bad}" in line
    assert "Anchored Supervised Fine-Tuning" in result.stdout  # `info asft` shows the built-in
    listing = _cli(tmp_path, "list", "--json", **{ALLOW_LIST_ENV: plugins, BLOCK_LIST_ENV: "exits,badpaper,shadow"})
    assert listing.returncode == 0 and "trl-ext: warning" not in listing.stderr
    assert {r["name"]: r["plugin"] for r in json.loads(listing.stdout)} == {"asft": "asft"}


def test_plugins_check_finds_the_plugin_that_exits_or_hangs(tmp_path):
    _install(tmp_path, "hardexit", "import os\nos._exit(7)\n")
    _install(tmp_path, "hangs", "import threading\nthreading.Event().wait()\n")
    _install(tmp_path, "exits", "import sys\nsys.exit(5)\n")
    _install(tmp_path, "good", GOOD)
    result = _cli(
        tmp_path,
        "plugins",
        "--check",
        "--json",
        "--timeout",
        "3",
        **{ALLOW_LIST_ENV: "hardexit,hangs,exits,good"},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    by_name = {r["name"]: r for r in json.loads(result.stdout)}
    assert {n: r["status"] for n, r in by_name.items()} == {
        "exits": "error",
        "good": "ok",
        "hangs": "timeout",
        "hardexit": "exited",
    }
    assert "ended with code 7" in by_name["hardexit"]["detail"]
    assert "did not finish within 3 s" in by_name["hangs"]["detail"]
    text = _cli(tmp_path, "plugins", "--check", "--timeout", "3", **{ALLOW_LIST_ENV: "hardexit,good"})
    assert text.stdout.splitlines()[0] == "good: ok"
    assert text.stdout.splitlines()[1].endswith(
        f"{BLOCK_LIST_ENV}=hardexit, or load only chosen plugins with {ALLOW_LIST_ENV}=a,b"
    )


def test_plugins_check_reports_conflicts_without_importing_what_exited_or_hung(tmp_path, monkeypatch):
    from trl_ext.plugin.check import CheckResult, add_conflicts

    _install(tmp_path, "shadow", SHADOW_ASFT)
    imported = tmp_path / "imported"
    _install(tmp_path, "hung", f"open({str(imported)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    results = [CheckResult("asft", "ok"), CheckResult("shadow", "ok"), CheckResult("hung", "timeout", "no answer")]
    add_conflicts(results)
    assert [(r.name, r.status) for r in results] == [("asft", "ok"), ("shadow", "conflict"), ("hung", "timeout")]
    assert "registers method 'asft', a name of the built-in plugin 'asft'" in results[1].detail
    assert (
        results[1].line().endswith(f"{BLOCK_LIST_ENV}=shadow, or load only chosen plugins with {ALLOW_LIST_ENV}=a,b")
    )
    assert not imported.exists()


LAZY_BROKEN = """
from trl_ext import Method, hookimpl

@hookimpl
def register_methods(register):
    register(Method(name="broken_m", trainer="cli_lazy_target:Trainer", config="cli_lazy_target:Config"))
"""


def test_a_path_that_fails_to_import_is_reported_by_check_and_on_use_not_by_list(tmp_path):
    """`list` names the method without importing its paths; `plugins --check` imports them in the child and reports
    the failure; using the method prints one line naming the plugin and the path, without a traceback."""
    _install(tmp_path, "lazybroken", LAZY_BROKEN)
    (tmp_path / "cli_lazy_target.py").write_text("raise ImportError('needs the package frobnicate')\n")
    _install(tmp_path, "good", GOOD)
    env = {ALLOW_LIST_ENV: "lazybroken,good"}
    listing = _cli(tmp_path, "list", "--json", **env)
    assert listing.returncode == 0 and "trl-ext: warning" not in listing.stderr, listing.stderr[-2000:]
    assert {r["name"] for r in json.loads(listing.stdout)} == {"broken_m", "good_reward"}
    check = _cli(tmp_path, "plugins", "--check", "--json", **env)
    assert check.returncode == 1, check.stderr[-2000:]
    by_name = {r["name"]: r for r in json.loads(check.stdout)}
    assert by_name["good"]["status"] == "ok" and by_name["lazybroken"]["status"] == "error"
    detail = by_name["lazybroken"]["detail"]
    for fragment in (
        "cannot import the trainer of method 'broken_m' of plugin 'lazybroken' from 'cli_lazy_target:Trainer'",
        "needs the package frobnicate",
        f"{BLOCK_LIST_ENV}=lazybroken",
    ):
        assert fragment in detail
    info = _cli(tmp_path, "info", "broken_m", **env)
    assert info.returncode == 2 and "Traceback" not in info.stderr
    assert "cannot import the config of method 'broken_m' of plugin 'lazybroken' from 'cli_lazy_target:Config'" in (
        info.stderr
    )


def test_a_method_saving_its_own_format_names_marker_and_loader_together(tmp_path):
    """`output_marker` without `load_output` (or the reverse) is refused at registration (an lta-thinker folder read
    through `load_trained` is tested in tests/plugins/test_lta_thinker.py)."""
    with pytest.raises(TypeError, match="output_marker and load_output together"):
        Method(name="half", trainer=SFTTrainer, config=SFTConfig, output_marker="mine.json")
    with pytest.raises(TypeError, match="output_marker and load_output together"):
        Method(name="half", trainer=SFTTrainer, config=SFTConfig, load_output=lambda folder: folder)
    method = Method(
        name="own-format", trainer=SFTTrainer, config=SFTConfig, output_marker="mine.json", load_output=str
    )
    assert method.output_marker == "mine.json" and method.load_output("x") == "x"
