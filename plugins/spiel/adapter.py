"""`--adapter spiel`: wrap the loaded model with SpIEL's sparse deltas (peft supertuning) before the trainer is built.
The support stays the random initial one unless the run also has `--callbacks spiel` (or is `trl-ext train spiel`)."""

from __future__ import annotations

from typing import Any

from .support import DEFAULT_TARGETS, wrap_spiel

DEFAULT_TARGET_NAMES = ",".join(DEFAULT_TARGETS)


def _targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return list(value)


def make_spiel_adapter(
    density: float = 0.01,
    num_tunable: int | None = None,
    target_modules: str | list[str] = DEFAULT_TARGET_NAMES,
    seed: int | None = 0,
    adapter_name: str = "default",
):
    """`fn(model) -> PeftModel` with a SpIEL adapter of budget T = num_tunable or density x all parameters."""
    density = float(density)
    num_tunable = None if num_tunable in (None, "", "None") else int(num_tunable)
    seed = None if seed in (None, "", "None") else int(seed)
    targets = _targets(target_modules)
    if not 0.0 < density <= 1.0:
        raise ValueError(f"spiel: density={density} must be in (0, 1]")

    def apply(model):
        import trl_ext.adapters

        trl_ext.adapters.register_declared()
        return wrap_spiel(model, density, num_tunable, targets, seed, adapter_name)

    return apply
