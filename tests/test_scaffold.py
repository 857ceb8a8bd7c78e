"""`trl_ext.cli.new_plugin.create_plugin`: the generated plugin passes its own test as generated; bad slugs and existing
folders are refused."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trl_ext.cli.new_plugin import class_name, create_plugin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list[Path]]:
    dest = tmp_path_factory.mktemp("scaffold")
    return dest, create_plugin("my_paper", dest)


def test_writes_the_plugin_folder(generated):
    dest, files = generated
    folder = dest / "my_paper"
    names = ["__init__.py", "paper.py", "config.py", "trainer.py", "README.md", "test_my_paper.py"]
    assert files == [folder / name for name in names]
    assert all(path.is_file() for path in files)
    for path in files:
        if path.suffix == ".py":
            ast.parse(path.read_text(), filename=str(path))
    config, trainer, readme = [(folder / n).read_text() for n in ("config.py", "trainer.py", "README.md")]
    assert "class MyPaperConfig(FusedSFTConfig):" in config and "example_weight: float = field(" in config
    assert "PAPER = Paper(" in (folder / "paper.py").read_text() and "own_loss: ClassVar[str]" in config
    assert "class MyPaperTrainer(FusedSFTTrainer):" in trainer and "def compute_loss(" in trainer
    assert "config_class = MyPaperConfig" in trainer and "paper = PAPER" in trainer
    init = (folder / "__init__.py").read_text()
    assert "from .paper import PAPER" in init and 'trainer=f"{__name__}.trainer:MyPaperTrainer"' in init
    # the chores the base does are not repeated in the plugin
    for chore in ("._paper", "_paper = {", "loss_type !=", 'mode = "train"', "record_metric"):
        assert chore not in "".join(p.read_text() for p in files if p.name != "test_my_paper.py"), chore
    assert '[project.entry-points.trl_ext]\nmy_paper = "<package>.my_paper"' in readme
    for section in ("## What it does", "## Usage", "## Fidelity", "## Measured demo", "## Citation"):
        assert section in readme
    assert "{slug}" not in "".join(p.read_text() for p in files)  # every placeholder was filled


def test_the_generated_test_passes_as_generated(generated):
    dest, _ = generated
    env = {k: v for k, v in os.environ.items() if k != "TRL_EXT_PLUGINS"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "my_paper/test_my_paper.py"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "7 passed" in proc.stdout


def test_registering_the_generated_plugin_imports_no_torch(generated):
    """The registration module names the trainer and config by path: a fresh interpreter that registers the plugin
    has not imported torch, and reading the record's trainer then imports the generated class."""
    dest, _ = generated
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import my_paper\n"
        "from trl_ext.plugin.registry import Registry\n"
        "registry = Registry(); info = registry.add_plugin(my_paper, 'my_paper')\n"
        "method = registry.get('method', 'my_paper')\n"
        "print(info.status, 'torch' in sys.modules, method.import_paths()['trainer'])\n"
        "print(method.trainer is my_paper.MyPaperTrainer, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(dest)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["ok", "False", "my_paper.trainer:MyPaperTrainer", "True", "True"]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install ruff)")
def test_the_generated_code_is_lint_clean(generated):
    dest, _ = generated
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", str(REPO / "pyproject.toml"), str(dest / "my_paper")],
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
    assert files[0] == tmp_path / "a" / "b" / "my_paper" / "__init__.py"
