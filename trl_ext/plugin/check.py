"""`trl-ext plugins --check`: import each plugin in its own child process, with a timeout.

A plugin that calls `os._exit` or hangs at import cannot be caught by the in-process guard of the registry: it ends
or hangs the whole command. A child process per plugin survives both, so this names the plugin at fault and says how to
skip it. The child also imports every trainer, config and factory the plugin named by import path (an ordinary
command imports them only when used). Then the plugins that neither exited nor hung are loaded together here, to report name conflicts. Run as `python -m trl_ext.plugin.check NAME`, the child loads that one plugin and prints its status as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata

from trl_ext.plugin.registry import (
    ALLOW_LIST_ENV,
    BLOCK_LIST_ENV,
    ENTRY_POINT_GROUP,
    Registry,
    bypass_hint,
    names_from_env,
)

_MARKER = "trl-ext-plugin-check:"


@dataclass
class CheckResult:
    name: str
    status: str  # "ok", "error", "conflict", "exited" or "timeout"
    detail: str = ""

    def line(self) -> str:
        if self.status == "ok":
            return f"{self.name}: ok"
        hint = "" if BLOCK_LIST_ENV in self.detail else f"; {bypass_hint(self.name)}"
        return f"{self.name}: {self.status}: {self.detail}{hint}"


def plugin_names() -> list[str]:
    """The plugins `trl-ext` would load: the entry points, filtered by TRL_EXT_PLUGINS and TRL_EXT_DISABLE_PLUGINS."""
    allowed, blocked = names_from_env(ALLOW_LIST_ENV), set(names_from_env(BLOCK_LIST_ENV) or ())
    names = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    return [n for n in names if (allowed is None or n in allowed) and n not in blocked]


def check_plugin(name: str, timeout: float) -> CheckResult:
    """Load plugin `name` alone in a child Python and classify what happened."""
    cmd = [sys.executable, "-m", "trl_ext.plugin.check", name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CheckResult(name, "timeout", f"importing it did not finish within {timeout:g} s (a hang at import?)")
    for line in proc.stdout.splitlines():
        if line.startswith(_MARKER):
            report = json.loads(line[len(_MARKER) :])
            return CheckResult(name, report["status"], report["error"] or "")
    tail = " ".join(proc.stderr.strip().splitlines()[-1:])
    return CheckResult(
        name,
        "exited",
        f"the process ended with code {proc.returncode} while loading it (os._exit or a crash at import)"
        + (f": {tail}" if tail else ""),
    )


def check_plugins(names: list[str], timeout: float, workers: int = 4) -> list[CheckResult]:
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        return list(pool.map(lambda n: check_plugin(n, timeout), names))


def add_conflicts(results: list[CheckResult]) -> None:
    """Load, in this process, the plugins whose child neither exited nor hung, and mark those that lose a name."""
    safe = [r.name for r in results if r.status not in ("exited", "timeout")]
    registry = Registry().load_entry_points(allow=safe, block=())
    by_name = {r.name: r for r in results}
    losers = [(c.ignored, c.message()) for c in registry.shadowed]
    for (kind, name), providers in registry.conflicts().items():
        losers += [(p, f"{kind} {name!r} is registered by {' and '.join(providers)}") for p in providers]
    for plugin, message in losers:
        result = by_name.get(plugin)
        if result is not None and result.status in ("ok", "conflict"):
            result.status = "conflict"
            result.detail = "; ".join(filter(None, [result.detail, message]))


def unresolved_paths(registry: Registry, plugin: str) -> list[str]:
    """Import every path the records of `plugin` name; one message per path that fails."""
    errors = []
    for record in registry.components():
        if record.plugin != plugin:
            continue
        for attr in record.import_paths():
            try:
                getattr(record, attr)
            except ImportError as exc:
                errors.append(str(exc))
    return errors


def _child(name: str) -> int:
    """Load plugin `name` alone, import what its records name by path, and print its status."""
    registry = Registry().load_entry_points(allow=[name], block=())
    info = registry.plugins.get(name)
    if info is None:
        report = {"status": "error", "error": f"no entry point named {name!r} in the group {ENTRY_POINT_GROUP!r}"}
    elif info.status == "ok" and (errors := unresolved_paths(registry, name)):
        report = {"status": "error", "error": "; ".join(errors)}
    else:
        report = {"status": info.status, "error": info.error}
    print(_MARKER + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
