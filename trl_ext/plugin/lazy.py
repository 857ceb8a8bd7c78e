"""Heavy parts of a record named by import path ("package.module:Name"), imported on first use.

A plugin's registration module runs on every `trl-ext` command, `list` and `--help` included. Importing a trainer
there pulls in TRL, transformers and torch (~7 CPU-seconds), so records take their trainer, config and factory as a
path, resolved the first time the attribute is read and cached on the record. Classes and callables given directly
still work (plugins written before paths were accepted).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from typing import Any

_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ImportPathError(ImportError):
    """A record's import path could not be resolved; the message names the plugin, the record and the path."""


def is_import_path(value: Any) -> bool:
    return isinstance(value, str) and bool(_PATH.match(value))


def import_object(path: str) -> Any:
    """The object at "package.module:Name" (or "package.module:Outer.Name")."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in qualname.split("."):
        obj = getattr(obj, attr)
    return obj


def module_findable(path: str) -> bool:
    """Whether the module of `path` can be found, without importing it: a typo in a plugin's path shows at registration.

    Finding a submodule imports its parent packages (a path into `trl.trainer` would import TRL), so the lookup stops
    at the first package not imported yet: "pkg.sub.mod" with `pkg` unimported checks only that `pkg` exists."""
    parts = path.partition(":")[0].split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in sys.modules:
            continue
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False
    return True


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Any, Any]:
    """A package's module `__getattr__` and `__dir__` (PEP 562) for public names that live in heavy submodules.

    `exports` maps a name to ".submodule" (the same name there) or ".submodule:other_name"; the submodule is imported
    the first time the name is read, so `from trl_ext_plugins.asft import ASFTTrainer` works while importing the
    package to register it stays light."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module_name, package), attr or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


class LazyImport:
    """A dataclass field holding an object or its import path; reading it resolves the path once and caches the
    object. `accepts(obj)` says whether an object is of the right kind, described by `allowed` ("a class")."""

    def __init__(self, accepts: Callable[[Any], bool], allowed: str, default: Any = None) -> None:
        self.accepts, self.allowed, self.default = accepts, allowed, default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.attr = name, "_lazy_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.default  # what the dataclass takes as the field's default
        value = obj.__dict__.get(self.attr, self.default)
        if isinstance(value, str):
            value = self._resolve(obj, value)
            obj.__dict__[self.attr] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.attr] = value

    def raw(self, obj: Any) -> Any:
        """The value as given: an import path stays a string (nothing is imported)."""
        return obj.__dict__.get(self.attr, self.default)

    def check(self, obj: Any) -> str | None:
        """Check the value as given, without importing; returns its import path if it is one."""
        value = self.raw(obj)
        if value is None or self.accepts(value):
            return None
        if not isinstance(value, str):
            raise TypeError(
                f"{obj.kind} {obj.name!r}: {self.name} must be {self.allowed} or an import path, "
                f"got {type(value).__name__}"
            )
        if not is_import_path(value):
            raise TypeError(
                f"{obj.kind} {obj.name!r}: {self.name} {value!r} is not an import path; write it as "
                "'package.module:Name'"
            )
        return value

    def _resolve(self, obj: Any, path: str) -> Any:
        owner = f"{obj.kind or 'component'} {obj.name!r}" + (f" of plugin {obj.plugin!r}" if obj.plugin else "")
        try:
            value = import_object(path)
        except Exception as exc:
            skip = f"; skip the plugin with TRL_EXT_DISABLE_PLUGINS={obj.plugin}" if obj.plugin else ""
            raise ImportPathError(
                f"cannot import the {self.name} of {owner} from {path!r}: {type(exc).__name__}: {exc}{skip}"
            ) from exc
        if not self.accepts(value):
            raise ImportPathError(f"the {self.name} of {owner} at {path!r} is not {self.allowed}")
        return value
