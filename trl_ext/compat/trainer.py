"""Private members of transformers' Trainer and TRL's trainers that trl-ext reads or extends, in one place.

Written against transformers 5.24 / trl 1.16; tests/test_compat.py fails loudly when a name changes.
"""

from __future__ import annotations

from typing import Any


def record_metric(trainer, mode: str, key: str, value: float) -> None:
    """Append to SFTTrainer/GRPOTrainer's per-mode metric lists (`_metrics`), which their `log` averages."""
    trainer._metrics[mode][key].append(value)


def prepare_inputs(trainer, batch: dict[str, Any]) -> dict[str, Any]:
    """A collated batch moved to the trainer's device as `training_step` receives it (`Trainer._prepare_inputs`)."""
    return trainer._prepare_inputs(batch)
