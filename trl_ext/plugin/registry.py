"""Plugin discovery and lookup.

Entry points in the group `trl_ext` are loaded one by one, each in its own try/except (pluggy's
`load_setuptools_entrypoints` has no per-plugin guard, see simonw/llm#875), so one broken plugin is reported by
`trl-ext plugins` and never stops the others. The guard catches `SystemExit` too (a plugin calling `sys.exit` at
import); `os._exit` or a hang at import cannot be caught in-process: `trl-ext plugins --check` imports each plugin in a
child process with a timeout to find it. `TRL_EXT_PLUGINS=a,b` loads only the named plugins (hermetic tests),
`TRL_EXT_DISABLE_PLUGINS=a,b` skips the named ones. A name registered both by a built-in plugin (an entry point of the
trl-ext distribution) and a third-party one keeps the built-in and records the conflict, so a plugin cannot silently
replace `asft`.

Records may name their trainer, config or factory by import path (imported on first use): registration checks that
each path's module exists without importing it, so a typo still fails its plugin here; `trl-ext plugins --check`
imports every path in the child process.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from trl_ext.plugin import hookspecs
from trl_ext.plugin.lazy import ImportPathError, module_findable
from trl_ext.plugin.records import KINDS, RECORD_TYPES, Component

ENTRY_POINT_GROUP = "trl_ext"
ALLOW_LIST_ENV = "TRL_EXT_PLUGINS"
BLOCK_LIST_ENV = "TRL_EXT_DISABLE_PLUGINS"
SLOW_IMPORT_ENV = "TRL_EXT_PLUGIN_SLOW_S"  # seconds before a still-importing plugin is named on stderr
BUILTIN_DISTRIBUTION = "trl-ext"


def names_from_env(variable: str) -> list[str] | None:
    """The comma-separated plugin names in `variable`, or None when it is unset or empty."""
    value = os.environ.get(variable, "")
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


def bypass_hint(plugin: str) -> str:
    """How to start without `plugin`: every startup failure ends with it."""
    return f"skip it with {BLOCK_LIST_ENV}={plugin}, or load only chosen plugins with {ALLOW_LIST_ENV}=a,b"


class ComponentError(LookupError):
    """Base class of lookup errors, so the CLI can print them without a traceback."""


class UnknownComponentError(ComponentError):
    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = ", ".join(known) if known else "none"
        super().__init__(f"Unknown {kind} {name!r}.{hint} Registered {kind}s: {listing}. See `trl-ext list`.")
        self.kind, self.name, self.suggestions = kind, name, close


class DuplicateComponentError(ComponentError):
    def __init__(self, kind: str, name: str, providers: list[str]):
        super().__init__(
            f"The {kind} {name!r} is registered by more than one plugin: {' and '.join(providers)}. "
            f"Uninstall one of them, or load only one with {ALLOW_LIST_ENV}=<plugins>."
        )
        self.kind, self.name, self.providers = kind, name, providers


@dataclass
class PluginInfo:
    name: str
    version: str = ""
    module: str = ""
    status: str = "ok"  # "ok" or "error"
    error: str | None = None
    builtin: bool = False  # an entry point of the trl-ext distribution itself

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "builtin": self.builtin,
        }


@dataclass
class Conflict:
    """A name a third-party plugin registered that a built-in plugin already provides: the built-in is kept."""

    kind: str
    name: str
    builtin: str  # the plugin whose record is used
    ignored: str  # the third-party plugin whose record is ignored

    def message(self) -> str:
        return (
            f"plugin {self.ignored!r} registers {self.kind} {self.name!r}, a name of the built-in plugin "
            f"{self.builtin!r}: the built-in is used, the one from {self.ignored!r} is ignored; {bypass_hint(self.ignored)}"
        )


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self.shadowed: list[Conflict] = []
        self.installed: list[str] = []  # every entry point's name, before the allow and block lists
        self.not_installed: list[str] = []  # names of the allow list that match no installed plugin

    # --- loading ---------------------------------------------------------------------------------------------------
    def load_entry_points(
        self,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
    ) -> Registry:
        """Load the plugins of the `trl_ext` entry-point group (or `entry_points`, for tests), built-ins first.

        `allow` / `block` default to TRL_EXT_PLUGINS / TRL_EXT_DISABLE_PLUGINS."""
        allow = names_from_env(ALLOW_LIST_ENV) if allow is None else allow
        block = names_from_env(BLOCK_LIST_ENV) if block is None else block
        allowed = set(allow) if allow is not None else None
        blocked = set(block or ())
        eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points)
        self.installed = sorted({ep.name for ep in eps})
        self.not_installed = sorted(allowed - set(self.installed)) if allowed is not None else []
        for ep in sorted(eps, key=lambda e: (not is_builtin(e), e.name)):
            if (allowed is not None and ep.name not in allowed) or ep.name in blocked:
                continue
            version = ep.dist.version if getattr(ep, "dist", None) is not None else ""
            info = PluginInfo(name=ep.name, version=version, module=ep.value, builtin=is_builtin(ep))
            self.plugins[ep.name] = info
            notice = _slow_import_notice(ep.name)
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # a broken plugin must not break the others, even sys.exit()
                self._fail(info, exc)
                continue
            finally:
                notice.cancel()
            self.add_plugin(module, ep.name, version=getattr(module, "__version__", version))
        return self

    def add_plugin(
        self, plugin: ModuleType | object, name: str, version: str = "", builtin: bool | None = None
    ) -> PluginInfo:
        """Register a plugin object (module or instance with `@hookimpl` functions) and collect what it adds.

        A record the plugin registers that is not valid (checked by the records' `__post_init__`) fails the whole
        plugin, with its name and the error in `plugins[name]`."""
        info = self.plugins.get(name) or PluginInfo(name=name, version=version, module=getattr(plugin, "__name__", ""))
        info.version = info.version or version
        if builtin is not None:
            info.builtin = builtin
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except (Exception, SystemExit) as exc:
            self._fail(info, exc)
            return info
        added: list[Component] = []
        shadowed_before = len(self.shadowed)
        try:
            for kind, hook_name in hookspecs.HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=self._register_fn(kind, name, added))
        except (Exception, SystemExit) as exc:
            for record in added:
                self._remove(record)
            del self.shadowed[shadowed_before:]
            self._fail(info, exc)
        return info

    def _is_builtin_plugin(self, name: str) -> bool:
        info = self.plugins.get(name)
        return bool(info and info.builtin)

    def _register_fn(self, kind: str, plugin: str, added: list[Component]):
        record_type = RECORD_TYPES[kind]

        def register(record: Component) -> None:
            if not isinstance(record, record_type):
                raise TypeError(
                    f"{hookspecs.HOOKS[kind]} must register {record_type.__name__} records, got {type(record).__name__}"
                )
            record.plugin = plugin
            for attr, path in record.import_paths().items():
                if not module_findable(path):
                    module = path.partition(":")[0]
                    raise ImportPathError(
                        f"{kind} {record.name!r}: the module {module!r} of its {attr} {path!r} cannot be found"
                    )
            table = self._components[kind]
            existing = table.get(record.name)
            if existing is not None and existing.plugin != plugin:
                ours, theirs = self._is_builtin_plugin(existing.plugin), self._is_builtin_plugin(plugin)
                if ours and not theirs:  # a third-party plugin never replaces a built-in name
                    self.shadowed.append(Conflict(kind, record.name, builtin=existing.plugin, ignored=plugin))
                    return
                if theirs and not ours:  # the built-in loaded second (add_plugin order): it wins all the same
                    self.shadowed.append(Conflict(kind, record.name, builtin=plugin, ignored=existing.plugin))
                    table[record.name] = record
                    added.append(record)
                    return
                providers = self._conflicts.setdefault((kind, record.name), [table[record.name].plugin])
                providers.append(plugin)
                return
            table[record.name] = record
            added.append(record)

        return register

    def _remove(self, record: Component) -> None:
        if self._components[record.kind].get(record.name) is record:
            del self._components[record.kind][record.name]

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "error"
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        what = f"exited with code {exc.code!r}" if isinstance(exc, SystemExit) else str(exc)
        info.error = " ".join(f"{type(exc).__name__}: {what}{where}".split())

    def allow_list_notice(self) -> str | None:
        """The allow-listed names that match no installed plugin, with the installed names; None when there are none.

        Without it, a misspelt or uninstalled name in TRL_EXT_PLUGINS shows an empty `trl-ext list` without a word."""
        if not self.not_installed:
            return None
        one = len(self.not_installed) == 1
        missing = ", ".join(repr(name) for name in self.not_installed)
        return (
            f"{ALLOW_LIST_ENV} names {'a plugin' if one else 'plugins'} that {'is' if one else 'are'} not installed: "
            f"{missing}; installed plugins: {', '.join(self.installed) or 'none'}. Install "
            f"{'it' if one else 'them'} (e.g. `pip install -e ./<folder>`) or correct the name in {ALLOW_LIST_ENV}"
        )

    def problems(self) -> list[str]:
        """One line per plugin that failed to load and per name conflict, each saying how to bypass the plugin."""
        lines = [
            f"plugin {p.name!r} failed to load: {p.error}; {bypass_hint(p.name)}"
            for p in self.plugins.values()
            if p.status != "ok"
        ]
        lines += [c.message() for c in self.shadowed]
        for (kind, name), providers in self._conflicts.items():
            lines.append(
                f"{kind} {name!r} is registered by {' and '.join(providers)} and cannot be used; "
                f"{bypass_hint(providers[-1])}"
            )
        return lines

    # --- lookup ----------------------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        if kind not in self._components:
            raise ComponentError(f"Unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
        if (kind, name) in self._conflicts:
            raise DuplicateComponentError(kind, name, self._conflicts[(kind, name)])
        found = self._components[kind].get(name)
        if found is None and "-" in name:  # `trl-ext train lt-sft` finds `lt_sft`: names are registered with "_"
            found = self._components[kind].get(name.replace("-", "_"))
        if found is None:
            raise UnknownComponentError(kind, name, self._components[kind])
        return found

    def components(self, kind: str | None = None, family: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        out = [rec for k in kinds for rec in self._components.get(k, {}).values()]
        if family:
            out = [rec for rec in out if rec.family == family]
        return sorted(out, key=lambda r: (KINDS.index(r.kind), r.name))

    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        return dict(self._conflicts)


def _slow_import_notice(plugin: str) -> threading.Timer:
    """A timer that, unless cancelled, tells the user which plugin is still importing and how to skip it: a plugin that
    hangs at import would otherwise hang every command without a word."""
    seconds = float(os.environ.get(SLOW_IMPORT_ENV) or 30)

    def warn() -> None:
        print(
            f"trl-ext: warning: plugin {plugin!r} is still importing after {seconds:g} s; if it hangs, "
            f"{bypass_hint(plugin)} (`trl-ext plugins --check` imports each plugin apart, with a timeout)",
            file=sys.stderr,
            flush=True,
        )

    timer = threading.Timer(seconds, warn)
    timer.daemon = True
    timer.start()
    return timer


def is_builtin(ep: metadata.EntryPoint) -> bool:
    """Whether `ep` is one of trl-ext's own plugins (declared by the trl-ext distribution itself)."""
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    return bool(name) and name.lower().replace("_", "-") == BUILTIN_DISTRIBUTION


_REGISTRY: Registry | None = None


def registry(reload: bool = False) -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        _REGISTRY = Registry().load_entry_points()
    return _REGISTRY


def get(kind: str, name: str) -> Any:
    """Look up a registered component: `get("method", "asft").trainer`, `get("reward", "x").build()`."""
    return registry().get(kind, name)


def components(kind: str | None = None, family: str | None = None) -> list[Component]:
    return registry().components(kind, family)
