"""Callbacks that need the trainer itself, not only the `(args, state, control, model, ...)` that transformers hands
every callback: one that changes how a GRPO run samples (its rollout temperature), or wraps one of its steps.

transformers builds callbacks before the trainer exists and never passes the trainer to them; `trl-ext train` builds
the trainer with the stage's callbacks and then calls `bind_callbacks(trainer)`, which gives each `BoundCallback`
its trainer once. In Python, do the same after constructing a trainer (or call `callback.bind(trainer)`).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class BoundCallback(TrainerCallback):
    """A `TrainerCallback` that holds its trainer (`self.trainer`, None until bound). Subclasses extend `bind`
    (call `super().bind(trainer)` first) to check the trainer kind and install what they need on it."""

    trainer: Any = None

    def bind(self, trainer: Any) -> None:
        self.trainer = trainer


def bind_callbacks(trainer: Any) -> list[BoundCallback]:
    """Bind every `BoundCallback` among `trainer`'s callbacks to it (each once); returns them."""
    bound = []
    for callback in list(trainer.callback_handler.callbacks):
        if isinstance(callback, BoundCallback):
            if callback.trainer is not trainer:
                callback.bind(trainer)
            bound.append(callback)
    return bound
