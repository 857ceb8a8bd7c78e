"""Adapters: the home of tuners that plug into peft (see trl_ext.compat.peft_tuners for how) and of the pieces they
share. Importing this module imports no torch or peft.

Registration contract for a new tuner (ssf is the first; loramoe and spiel follow it):

1. Write `NameConfig(peft.PeftConfig)` whose `__post_init__` sets `self.peft_type = tuner_type("name")`, and
   `NameModel(peft.tuners.tuners_utils.BaseTuner)` with `prefix = "name_"`, whose layers keep each adapter's tensors
   in `nn.ModuleDict`s keyed by adapter name (parameter names then contain `.default.`, which GRPOTrainer's reference
   copy needs).
2. Describe it with `PeftTuner(name=..., config="pkg.module:NameConfig", model="pkg.module:NameModel",
   prefix="name_")` and either list that object under the `trl_ext.peft_tuners` entry-point group of your package
   (`name = "pkg.light_module:TUNER"`) or call `declare(TUNER)` at import of your plugin package.
3. `import trl_ext` then registers every declared tuner with peft as soon as peft is imported (at once if it already
   is), so `PeftModel.from_pretrained` of a saved adapter works; without `import trl_ext` that call fails with a
   KeyError whose text says to import trl_ext (the saved `peft_type` is that sentence).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata

ENTRY_POINT_GROUP = "trl_ext.peft_tuners"


@dataclass(frozen=True)
class PeftTuner:
    """A peft tuner type trl-ext adds: its name (lower case), config and model classes as "module:Name" import paths
    (imported once peft is), and the prefix its parameter names carry. `category` (the PEFT survey's: selective,
    additive, prompt, reparameterization, hybrid) and `knob` (the int config field that sets its size, if any) place
    it in `trl-ext peft-zoo` (trl_ext.adapters.zoo)."""

    name: str
    config: str
    model: str
    prefix: str
    category: str | None = None
    knob: str | None = None

    def register(self) -> None:
        from trl_ext.compat.peft_tuners import register_tuner

        register_tuner(self.name, _resolve(self.config), _resolve(self.model), self.prefix)


def _resolve(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_DECLARED: dict[str, PeftTuner] = {}


def declare(tuner: PeftTuner) -> None:
    """Declare a tuner: registered with peft when peft is imported, or now if it already is."""
    old = _DECLARED.get(tuner.name)
    if old is not None and old != tuner:
        raise ValueError(f"peft tuner {tuner.name!r} is already declared as {old}")
    _DECLARED[tuner.name] = tuner
    if "peft.mapping" in sys.modules:
        tuner.register()


def declared() -> dict[str, PeftTuner]:
    """Every declared tuner, those of the `trl_ext.peft_tuners` entry points included, by name."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _DECLARED:
            try:
                tuner = ep.load()
            except Exception as exc:  # a broken third-party declaration must not break `import peft`
                warnings.warn(f"trl-ext: peft tuner entry point {ep.value!r} failed to load: {exc}", stacklevel=2)
                continue
            _DECLARED[tuner.name] = tuner
    return dict(_DECLARED)


def register_declared() -> list[str]:
    """Register every declared tuner with peft (imports peft); the names registered. Idempotent."""
    names = []
    for name, tuner in declared().items():
        tuner.register()
        names.append(name)
    return names


class _AfterPeftImport(importlib.abc.MetaPathFinder):
    """Runs `register_declared` right after the `peft` package has been executed, so `import trl_ext` costs no peft
    import and a later `import peft` still sees the tuners."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "peft":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _remove_hook()
        try:
            register_declared()
        except Exception as exc:
            warnings.warn(f"trl-ext: registering its peft tuners failed: {exc}", stacklevel=2)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the wrapped loader
        return getattr(self._loader, name)


_HOOK = _AfterPeftImport()


def _remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def install_peft_hook() -> None:
    """Called by `import trl_ext`: register the declared tuners once peft is imported (now, if it is)."""
    if "peft" in sys.modules:
        if "peft.mapping" in sys.modules:
            register_declared()
        return  # peft is being imported right now: its own imports of our tuners register them
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


__all__ = ["ENTRY_POINT_GROUP", "PeftTuner", "declare", "declared", "install_peft_hook", "register_declared"]
