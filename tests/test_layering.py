"""The package's structure, checked: no import circle between trl_ext's modules, and private names of trl,
transformers, peft, accelerate and datasets reached only from `trl_ext/compat/` (the one place a release's change
to them has to be mended, each with its own test there)."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ("trl", "transformers", "peft", "accelerate", "datasets")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / "trl_ext").rglob("*.py")}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """trl_ext modules that `path` imports anywhere in it (function-local imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_between_core_modules():
    """A package `__init__` that re-exports its modules is not a circle with them: only module-to-module edges."""
    modules = _core_modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    for name, path in modules.items():
        if path.name == "__init__.py":  # `from trl_ext.x import y` names the package on the way to its module
            for other in graph:
                if other != name and not other.startswith(name + "."):
                    graph[other].discard(name) if any(t.startswith(name + ".") for t in graph[other]) else None
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"


def test_no_import_circle_between_layers():
    """The same at the level of the layers (`trl_ext.plugin`, `trl_ext.run`, ...; a top-level module is its own
    layer): a layer that imports another must not be imported back by it."""
    modules = _core_modules()

    def layer(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph.setdefault(layer(name), set()).update(
            layer(t) for t in _imports(path, name, modules) if layer(t) != layer(name)
        )
    assert _cycle(graph) is None, f"layers import each other: {' -> '.join(_cycle(graph))}"


def _upstream_private_names() -> set[str]:
    """Underscored names the upstream libraries define (functions, classes, attributes, module globals)."""
    pattern = re.compile(
        r"(?:def|class)\s+(_[A-Za-z0-9]\w*)|self\.(_[A-Za-z0-9]\w*)\s*[:=]|^(_[A-Za-z0-9]\w*)\s*[:=]", re.M
    )
    names = set()
    for lib in UPSTREAM:
        spec = importlib.util.find_spec(lib)
        for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
            names.update(next(g for g in m.groups() if g) for m in pattern.finditer(path.read_text(errors="ignore")))
    return names


def _private_reaches(paths: list[Path], upstream: set[str]) -> list[str]:
    """`file:line name` for each underscored upstream name that code outside compat reads, writes, imports or
    names in getattr/hasattr/setattr/delattr, and that the project does not define itself."""
    trees = {path: ast.parse(path.read_text()) for path in paths}
    ours: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                ours.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                ours.add(node.id)
            elif isinstance(node, ast.arg):
                ours.add(node.arg)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
            ):
                if node.value.id in ("self", "cls"):  # an attribute our own classes define
                    ours.add(node.attr)
    found = []
    for path, tree in trees.items():
        if "compat" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UPSTREAM:
                names = [alias.name for alias in node.names] + (node.module or "").split(".")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "getattr",
                "hasattr",
                "setattr",
                "delattr",
            ):
                names = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for name in names:
                if name.startswith("_") and not name.startswith("__") and name in upstream and name not in ours:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


@pytest.fixture(scope="module")
def upstream_private() -> set[str]:
    return _upstream_private_names()


def test_private_name_finder_flags_a_planted_reach(tmp_path, upstream_private):
    assert "_prepare_inputs" in upstream_private and "_metrics" in upstream_private
    planted = ROOT / "trl_ext" / "_planted_for_test.py"
    planted.write_text("def f(trainer):\n    return trainer._prepare_inputs({}), getattr(trainer, '_metrics')\n")
    try:
        found = _private_reaches([planted], upstream_private)
    finally:
        planted.unlink()
    assert sorted(f.split()[-1] for f in found) == ["_metrics", "_prepare_inputs"]


def test_private_upstream_names_only_in_compat(upstream_private):
    paths = [p for folder in ("trl_ext", "plugins", "examples") for p in (ROOT / folder).rglob("*.py")]
    found = _private_reaches(paths, upstream_private)
    assert not found, "private upstream names outside trl_ext/compat/ (wrap them there):\n" + "\n".join(found)
