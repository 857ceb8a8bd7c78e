"""Plugin discovery and lookup.

Entry points in the group `trl_ext` are loaded one by one, each in its own try/except (pluggy's
`load_setuptools_entrypoints` has no per-plugin guard, see simonw/llm#875), so one broken plugin is reported by
`trl-ext plugins` and never stops the others. `TRL_EXT_PLUGINS=a,b` loads only the named plugins (hermetic tests).
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from trl_ext.plugin import hookspecs
from trl_ext.plugin.records import KINDS, RECORD_TYPES, Component

ENTRY_POINT_GROUP = "trl_ext"
ALLOW_LIST_ENV = "TRL_EXT_PLUGINS"


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
        }


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._conflicts: dict[tuple[str, str], list[str]] = {}

    # --- loading ---------------------------------------------------------------------------------------------------
    def load_entry_points(self, allow: Iterable[str] | None = None) -> Registry:
        if allow is None and os.environ.get(ALLOW_LIST_ENV):
            allow = [n.strip() for n in os.environ[ALLOW_LIST_ENV].split(",") if n.strip()]
        allowed = set(allow) if allow is not None else None
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            version = ep.dist.version if getattr(ep, "dist", None) is not None else ""
            info = PluginInfo(name=ep.name, version=version, module=ep.value)
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self._fail(info, exc)
                continue
            self.add_plugin(module, ep.name, version=getattr(module, "__version__", version))
        return self

    def add_plugin(self, plugin: ModuleType | object, name: str, version: str = "") -> PluginInfo:
        """Register a plugin object (module or instance with `@hookimpl` functions) and collect what it adds."""
        info = self.plugins.get(name) or PluginInfo(name=name, version=version, module=getattr(plugin, "__name__", ""))
        info.version = info.version or version
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, exc)
            return info
        added: list[Component] = []
        try:
            for kind, hook_name in hookspecs.HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=self._register_fn(kind, name, added))
        except Exception as exc:
            for record in added:
                self._remove(record)
            self._fail(info, exc)
        return info

    def _register_fn(self, kind: str, plugin: str, added: list[Component]):
        record_type = RECORD_TYPES[kind]

        def register(record: Component) -> None:
            if not isinstance(record, record_type):
                raise TypeError(
                    f"{hookspecs.HOOKS[kind]} must register {record_type.__name__} records, got {type(record).__name__}"
                )
            record.plugin = plugin
            table = self._components[kind]
            if record.name in table and table[record.name].plugin != plugin:
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
        info.error = f"{type(exc).__name__}: {exc}{where}"

    # --- lookup ----------------------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        if kind not in self._components:
            raise ComponentError(f"Unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
        if (kind, name) in self._conflicts:
            raise DuplicateComponentError(kind, name, self._conflicts[(kind, name)])
        try:
            return self._components[kind][name]
        except KeyError:
            raise UnknownComponentError(kind, name, self._components[kind]) from None

    def components(self, kind: str | None = None, family: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        out = [rec for k in kinds for rec in self._components.get(k, {}).values()]
        if family:
            out = [rec for rec in out if rec.family == family]
        return sorted(out, key=lambda r: (KINDS.index(r.kind), r.name))

    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        return dict(self._conflicts)


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
