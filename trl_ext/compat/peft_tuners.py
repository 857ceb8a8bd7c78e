"""Registering a tuner type that peft does not ship (written against peft 0.21.2).

`peft.utils.register_peft_method` refuses every name that is not already a member of peft's `PeftType` enum, so a new
tuner is registered here by writing its config class, model class and parameter prefix into the four
`peft.mapping.PEFT_TYPE_TO_*` dicts under a plain string key (PeftType is a str enum, so peft's lookups by
`config.peft_type` find it). tests/test_compat_peft_tuners.py fails when these internals change.

The key is a sentence, not a bare name: it is what a saved `adapter_config.json` carries as `peft_type`, and peft looks
it up in `PEFT_TYPE_TO_CONFIG_MAPPING` before any of our code can run, so a process that loads such an adapter without
`import trl_ext` fails with a KeyError whose text says to import trl_ext.
"""

from __future__ import annotations

PEFT_VERSION = "0.21.2"


class TunerType(str):
    """A peft_type key for a trl-ext tuner: a str (peft compares and hashes it as one) with the `.value` that peft's
    error messages read from a PeftType member."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


def tuner_type(name: str) -> TunerType:
    """The `peft_type` under which the trl-ext tuner `name` is registered and saved."""
    return TunerType(f"{name.upper()} (a trl-ext tuner: run `import trl_ext` before PeftModel.from_pretrained)")


def register_tuner(name: str, config_cls: type, model_cls: type, prefix: str) -> TunerType:
    """Register `name` with peft: `get_peft_model(model, config_cls(...))`, `save_pretrained`,
    `PeftModel.from_pretrained`, `add_adapter` and `merge_and_unload` then work. Idempotent for the same classes; a
    different class under a registered name or a prefix already taken raises."""
    from peft.mapping import (
        PEFT_TYPE_TO_CONFIG_MAPPING,
        PEFT_TYPE_TO_PREFIX_MAPPING,
        PEFT_TYPE_TO_TUNER_MAPPING,
    )

    if not name or not name.islower() or name.endswith("_"):
        raise ValueError(f"peft tuner name must be lower case without a trailing '_', got {name!r}")
    if getattr(model_cls, "prefix", prefix) != prefix:
        raise ValueError(f"peft tuner {name!r}: prefix {prefix!r} differs from {model_cls.__name__}.prefix")
    key = tuner_type(name)
    known = PEFT_TYPE_TO_CONFIG_MAPPING.get(key), PEFT_TYPE_TO_TUNER_MAPPING.get(key)
    if known == (config_cls, model_cls):
        return key
    if any(k is not None for k in known):
        raise ValueError(f"peft tuner {name!r} is already registered with other classes: {known}")
    taken = {p: t for t, p in PEFT_TYPE_TO_PREFIX_MAPPING.items()}
    if prefix in taken:
        raise ValueError(f"peft tuner {name!r}: prefix {prefix!r} is already used by {taken[prefix]}")
    PEFT_TYPE_TO_PREFIX_MAPPING[key] = prefix
    PEFT_TYPE_TO_CONFIG_MAPPING[key] = config_cls
    PEFT_TYPE_TO_TUNER_MAPPING[key] = model_cls
    return key


def is_registered(name: str) -> bool:
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    return tuner_type(name) in PEFT_TYPE_TO_TUNER_MAPPING


def _tuner_base():
    """`TrlExtTuner`, built on first use (peft imported then, not at `import trl_ext.compat.peft_tuners`)."""
    from peft.tuners.tuners_utils import BaseTuner

    class TrlExtTuner(BaseTuner):
        """peft's BaseTuner with public hooks, so a trl-ext tuner overrides no private peft method itself:

        - `is_target(config, key) -> bool` (classmethod): does module `key` get a layer;
        - `create_layer(config, adapter_name, target, key) -> nn.Module | None`: the tuner layer wrapping `target`,
          or None after adding `adapter_name` to an existing tuner layer in place;
        - `before_merge(adapter_names, safe_merge)`: runs before any layer merges in `merge_and_unload()` (cross-layer
          folding, e.g. SSF's norm shifts into the next linears);
        - `after_merge(model)`: runs on the unloaded model (config flags, e.g. SSF's bias flags);
        - `mergeable = False` on a tuner whose layers cannot fold into the base weights (input-dependent gates):
          `trl_ext.models.load_trained` then returns the adapted model unmerged.
        """

        target_module_mapping: dict = {}
        mergeable: bool = True

        @classmethod
        def is_target(cls, config, key: str) -> bool:
            raise NotImplementedError

        def create_layer(self, config, adapter_name: str, target, key: str):
            raise NotImplementedError

        def before_merge(self, adapter_names, safe_merge: bool) -> None:
            pass

        def after_merge(self, model) -> None:
            pass

        @classmethod
        def _check_target_module_exists(cls, peft_config, key):
            return cls.is_target(peft_config, key)

        def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key):
            new_module = self.create_layer(peft_config, adapter_name, target, current_key)
            if new_module is None:
                return
            if adapter_name not in self.active_adapters:
                new_module.requires_grad_(False)  # an added adapter is not trainable until set active
            self._replace_module(parent, target_name, new_module, target)

        def _unload_and_optionally_merge(self, merge=True, progressbar=False, safe_merge=False, adapter_names=None):
            if merge:
                self._check_merge_allowed()
                self.before_merge(adapter_names, safe_merge)
            model = super()._unload_and_optionally_merge(
                merge=merge, progressbar=progressbar, safe_merge=safe_merge, adapter_names=adapter_names
            )
            if merge:
                self.after_merge(model)
            return model

    return TrlExtTuner


_TUNER_BASE = None


def __getattr__(name: str):
    global _TUNER_BASE
    if name == "TrlExtTuner":
        if _TUNER_BASE is None:
            _TUNER_BASE = _tuner_base()
        return _TUNER_BASE
    raise AttributeError(name)
