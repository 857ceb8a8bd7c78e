"""`trl-ext new-plugin`: an installable distribution (or, with --builtin, a folder of trl-ext's plugins/) whose
generated test passes as generated; the README's three commands, from scaffold to a running loss, for real; bad slugs
and existing folders are refused; TRL_EXT_PLUGINS names an allow-listed plugin that is not installed."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from trl_ext.cli.new_plugin import class_name, create_plugin, distribution_name
from trl_ext.plugin.registry import ALLOW_LIST_ENV, BLOCK_LIST_ENV, Registry

REPO = Path(__file__).resolve().parents[1]
MODULES = ["__init__.py", "paper.py", "config.py", "trainer.py"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The default layout: the distribution `my_paper/` with the package `my_paper/my_paper/`."""
    dest = tmp_path_factory.mktemp("scaffold")
    return dest, create_plugin("my_paper", dest)


@pytest.fixture(scope="module")
def generated_builtin(tmp_path_factory) -> tuple[Path, list[Path]]:
    dest = tmp_path_factory.mktemp("scaffold_builtin")
    return dest, create_plugin("my_paper", dest, builtin=True)


def _check_modules(package: Path, files: list[Path]) -> None:
    """The plugin's modules follow the SFT base's pattern and leave the base's chores to it."""
    for path in files:
        if path.suffix == ".py":
            ast.parse(path.read_text(), filename=str(path))
    config, trainer = [(package / n).read_text() for n in ("config.py", "trainer.py")]
    assert "class MyPaperConfig(FusedSFTConfig):" in config and "example_weight: float = field(" in config
    assert "PAPER = Paper(" in (package / "paper.py").read_text() and "own_loss: ClassVar[str]" in config
    assert "class MyPaperTrainer(FusedSFTTrainer):" in trainer and "def compute_loss(" in trainer
    assert "config_class = MyPaperConfig" in trainer and "paper = PAPER" in trainer
    init = (package / "__init__.py").read_text()
    assert "from .paper import PAPER" in init and 'trainer=f"{__name__}.trainer:MyPaperTrainer"' in init
    for chore in ("._paper", "_paper = {", "loss_type !=", 'mode = "train"', "record_metric"):
        assert chore not in "".join(p.read_text() for p in files if not p.name.startswith("test_")), chore
    text = "".join(p.read_text() for p in files)
    assert "{slug}" not in text and "{dist}" not in text and "{name}" not in text  # every placeholder was filled


def _check_readme(readme: str) -> None:
    for section in ("## What it does", "## Usage", "## Fidelity", "## Measured demo", "## Citation"):
        assert section in readme


def tomllib_loads(text: str) -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads(text)


def test_writes_an_installable_distribution(generated):
    dest, files = generated
    root = dest / "my_paper"
    names = ["pyproject.toml", "README.md", *(f"my_paper/{m}" for m in MODULES), "tests/test_my_paper.py"]
    assert files == [root / name for name in names]
    assert all(path.is_file() for path in files)
    _check_modules(root / "my_paper", files)
    pyproject = tomllib_loads((root / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    assert pyproject["project"]["name"] == "trl-ext-my-paper" and pyproject["project"]["dependencies"] == ["trl-ext"]
    assert pyproject["project"]["entry-points"] == {"trl_ext": {"my_paper": "my_paper"}}
    assert pyproject["tool"]["setuptools"]["packages"] == ["my_paper"]
    readme = (root / "README.md").read_text()
    _check_readme(readme)
    assert "pip install -e ." in readme and "trl-ext train my_paper --max_steps 5" in readme
    assert "trl_ext_plugins" not in readme


def test_builtin_writes_the_plugin_folder_of_trl_exts_plugins(generated_builtin):
    dest, files = generated_builtin
    folder = dest / "my_paper"
    assert files == [folder / name for name in [*MODULES, "README.md", "test_my_paper.py"]]
    _check_modules(folder, files)
    readme = (folder / "README.md").read_text()
    _check_readme(readme)
    assert '[project.entry-points.trl_ext]\nmy_paper = "trl_ext_plugins.my_paper"' in readme
    assert "pyproject.toml" not in {p.name for p in files}


@pytest.mark.parametrize(("slug", "expected"), [("my_loss", "trl-ext-my-loss"), ("asft", "trl-ext-asft")])
def test_distribution_names(slug, expected):
    assert distribution_name(slug) == expected


def test_the_generated_test_passes_as_generated(generated):
    """Run from the distribution's root, as `pytest tests` would be, before it is installed."""
    dest, _ = generated
    env = {k: v for k, v in os.environ.items() if k not in (ALLOW_LIST_ENV, BLOCK_LIST_ENV)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_my_paper.py"],
        cwd=dest / "my_paper",
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "7 passed" in proc.stdout


def test_registering_the_generated_plugin_imports_no_torch(generated):
    """The registration module names the trainer and config by path: a fresh interpreter that registers the plugin
    has not imported torch, and reading the record's trainer then imports the generated class. (--builtin writes the
    same modules.)"""
    dest, _ = generated
    folder = dest / "my_paper"  # the distribution's root, which holds the package
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import my_paper\n"
        "from trl_ext.plugin.registry import Registry\n"
        "registry = Registry(); info = registry.add_plugin(my_paper, 'my_paper')\n"
        "method = registry.get('method', 'my_paper')\n"
        "print(info.status, 'torch' in sys.modules, method.import_paths()['trainer'])\n"
        "print(method.trainer is my_paper.MyPaperTrainer, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["ok", "False", "my_paper.trainer:MyPaperTrainer", "True", "True"]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install ruff)")
def test_the_generated_code_is_lint_clean(generated, generated_builtin):
    folders = [str(generated[0] / "my_paper"), str(generated_builtin[0] / "my_paper")]
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", str(REPO / "pyproject.toml"), *folders],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("slug", "expected"), [("my_paper", "MyPaper"), ("asft", "Asft"), ("grpo2_lite", "Grpo2Lite"), ("a_b_c", "ABC")]
)
def test_class_names_are_camel_case(slug, expected):
    assert class_name(slug) == expected


@pytest.mark.parametrize("slug", ["", "MyPaper", "my-paper", "my paper", "1paper", "_paper", "päper", "my.paper"])
def test_invalid_slugs_are_refused(tmp_path, slug):
    with pytest.raises(ValueError, match=r"\[a-z\]\[a-z0-9_\]\*"):
        create_plugin(slug, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("slug", "reason"), [("class", "keyword"), ("json", "installed module"), ("trl", "installed module")]
)
def test_slugs_that_cannot_be_imported_as_themselves_are_refused(tmp_path, slug, reason):
    with pytest.raises(ValueError, match=reason):
        create_plugin(slug, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="kind='reward'"):
        create_plugin("my_reward", tmp_path, kind="reward")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path):
    [init, *_] = create_plugin("my_paper", tmp_path)
    init.write_text("# edited by hand\n")
    with pytest.raises(FileExistsError, match="already exists; refusing to overwrite"):
        create_plugin("my_paper", tmp_path)
    assert init.read_text() == "# edited by hand\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError, match="empty"):
        create_plugin("empty", tmp_path)
    assert list((tmp_path / "empty").iterdir()) == []


def test_creates_missing_destination_folders(tmp_path):
    files = create_plugin("my_paper", tmp_path / "a" / "b")
    assert files[0] == tmp_path / "a" / "b" / "my_paper" / "pyproject.toml"
    files = create_plugin("my_other", tmp_path / "c", builtin=True)
    assert files[0] == tmp_path / "c" / "my_other" / "__init__.py"


# --- the README's three commands, for real: new-plugin, install, train ------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    """The test's environment without the allow and block lists, offline, on one thread."""
    base = {k: v for k, v in os.environ.items() if k not in (ALLOW_LIST_ENV, BLOCK_LIST_ENV)}
    return {**base, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PIP_NO_INPUT": "1", **extra}


def _trl_ext(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trl_ext", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"trl-ext {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """`trl-ext new-plugin my_loss` and an install of `./my_loss`, into a folder of its own: `pip install -e` would
    change the test venv, so the distribution is built and installed with `--target`, found through PYTHONPATH, the
    way an installed distribution's entry point is found (its metadata, not the source folder)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: pip cannot build the generated distribution without build isolation")
    work = tmp_path_factory.mktemp("three_commands")
    _trl_ext("new-plugin", "my_loss", cwd=work, env=_env())
    site = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    proc = subprocess.run(
        [*pip, "--disable-pip-version-check", "--target", str(site), "./my_loss"],
        cwd=work,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = work / "run"  # not `work`, where the source folder `my_loss/` would be importable as a namespace
    run_dir.mkdir()
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return run_dir, _env(PYTHONPATH=pythonpath)


def test_the_installed_plugin_is_listed(installed):
    run_dir, env = installed
    listing = json.loads(_trl_ext("list", "--json", "--kind", "method", cwd=run_dir, env=env).stdout)
    (record,) = [r for r in listing if r["name"] == "my_loss"]
    assert record["plugin"] == "my_loss"
    plugins = json.loads(_trl_ext("plugins", "--json", cwd=run_dir, env=env).stdout)
    (info,) = [p for p in plugins if p["name"] == "my_loss"]
    assert (info["status"], info["version"], info["module"], info["builtin"]) == ("ok", "0.1.0", "my_loss", False)


def _first_step(output_dir: Path) -> dict:
    (state,) = output_dir.glob("checkpoint-*/trainer_state.json")
    return json.loads(state.read_text())["log_history"][0]


def test_train_runs_the_plugins_loss(installed, tiny_model_dir):
    """`trl-ext train my_loss --example_weight 2`: the scaffold's loss is 2 x SFT's, so its first logged loss (and
    gradient norm) is twice that of `trl-ext train sft` (TRL's SFTTrainer) on the same model, data and seed."""
    run_dir, env = installed
    common = ["--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith", "--logging_steps", "1"]
    common += ["--report_to", "none", "--per_device_train_batch_size", "4"]
    _trl_ext("train", "my_loss", "--max_steps", "2", "--example_weight", "2", "--output_dir", "ours", *common,
             cwd=run_dir, env=env)  # fmt: skip
    _trl_ext("train", "sft", "--max_steps", "1", "--output_dir", "sft", *common, cwd=run_dir, env=env)
    ours, sft = _first_step(run_dir / "ours"), _first_step(run_dir / "sft")
    assert ours["step"] == sft["step"] == 1
    assert ours["loss"] == pytest.approx(2.0 * sft["loss"], rel=1e-4)
    assert ours["grad_norm"] == pytest.approx(2.0 * sft["grad_norm"], rel=1e-3)
    assert json.loads((run_dir / "ours" / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2


def test_an_allow_listed_name_that_is_not_installed_is_named(installed):
    run_dir, env = installed
    proc = _trl_ext("list", cwd=run_dir, env={**env, ALLOW_LIST_ENV: "my_los"})
    (warning,) = [line for line in proc.stderr.splitlines() if line.startswith("trl-ext: warning:")]
    assert "TRL_EXT_PLUGINS names a plugin that is not installed: 'my_los'" in warning
    installed_names = warning.split("installed plugins: ")[1].split(".")[0].split(", ")
    assert "my_loss" in installed_names and "asft" in installed_names
    assert proc.stdout.split() == ["NAME", "KIND", "FAMILY", "PLUGIN", "PAPER"]  # the empty table, now explained
    quiet = _trl_ext("plugins", cwd=run_dir, env={**env, ALLOW_LIST_ENV: "my_loss"})
    assert "warning" not in quiet.stderr and "my_loss" in quiet.stdout


def _entry_point(name: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=f"{name}_module", group="trl_ext")


@pytest.mark.parametrize(
    ("allow", "block", "expected"),
    [
        (["a", "nosuch"], [], "names a plugin that is not installed: 'nosuch'; installed plugins: a, b."),
        (["x", "y"], [], "names plugins that are not installed: 'x', 'y'; installed plugins: a, b."),
        (["b"], ["b"], None),  # blocked, but installed
        (["a", "b"], [], None),
    ],
)
def test_the_allow_list_notice(allow, block, expected):
    """Entry points whose modules do not exist: an allowed one fails to load (that is `problems()`'s line), it is
    installed all the same; only names that match no entry point are in the notice."""
    registry = Registry().load_entry_points(
        allow=allow, block=block, entry_points=[_entry_point("b"), _entry_point("a")]
    )
    assert registry.installed == ["a", "b"]
    notice = registry.allow_list_notice()
    if expected is None:
        assert notice is None and registry.not_installed == []
    else:
        assert notice.startswith(f"{ALLOW_LIST_ENV} {expected}")
        assert registry.not_installed == [n for n in allow if n not in ("a", "b")]
    assert not any("not installed" in line for line in registry.problems())  # list and plugins say it, once


def test_no_allow_list_no_notice():
    registry = Registry().load_entry_points(allow=None, block=["a"], entry_points=[_entry_point("a")])
    assert registry.not_installed == [] and registry.allow_list_notice() is None
