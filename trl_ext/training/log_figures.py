"""Figures a callback adds to the Trainer's logs, so that they reach the run's trackers as well as its history.

transformers' `Trainer.log` appends a copy of the logs to `state.log_history` and then calls each callback's
`on_log` in order; the reporting integrations (wandb, tensorboard, trackio, ...) are built before any callback a
user passes, so a figure a callback adds in `on_log` reached neither. `add_to_log` puts it in both the logs and the
history's copy, and `log_before_reporters(trainer)` (which `trl-ext train` calls) moves every callback that is not
transformers' own ahead of the reporters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers.integrations import INTEGRATION_TO_CALLBACK


def add_to_log(state: Any, logs: dict[str, Any] | None, figures: Mapping[str, Any]) -> None:
    """From a callback's `on_log`: `figures` into `logs` (read by the callbacks after this one, the reporters among
    them) and into the copy `Trainer.log` already recorded in `state.log_history` for this step."""
    if logs is None:
        return
    logs.update(figures)
    history = getattr(state, "log_history", None)
    if history and history[-1].get("step") == state.global_step:
        history[-1].update(figures)


def is_reporter(callback: Any) -> bool:
    """One of transformers' reporting integrations (`report_to`), an instance or a class."""
    kind = callback if isinstance(callback, type) else type(callback)
    return issubclass(kind, tuple(INTEGRATION_TO_CALLBACK.values()))


def log_before_reporters(trainer: Any) -> None:
    """Reorder `trainer`'s callbacks so that every callback that is not transformers' own (plugins', the user's) runs
    before the reporting integrations; the order among the moved ones, and among the rest, is kept."""
    callbacks = trainer.callback_handler.callbacks
    reporters = [i for i, callback in enumerate(callbacks) if is_reporter(callback)]
    if not reporters:
        return
    first = reporters[0]

    def moves(callback: Any) -> bool:
        return not is_reporter(callback) and not type(callback).__module__.startswith("transformers.")

    tail = callbacks[first:]
    callbacks[first:] = [c for c in tail if moves(c)] + [c for c in tail if not moves(c)]
