"""Transformers' Trainer checkpoint saving, reached where trl-ext makes checkpoints atomic.

Written against transformers 5.24.0: `Trainer._save_checkpoint(model, trial)` writes straight into
`<_get_output_dir(trial)>/checkpoint-<global_step>` (no temporary folder), and at its end calls `rotate_checkpoints`,
which may delete the older checkpoints before the callbacks' `on_save` (called by `_maybe_log_save_evaluate` right
after it) have written their files into the new one. tests/test_checkpoints.py fails when this changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


def checkpoint_folder(trainer, trial=None) -> str:
    """The `checkpoint-N` folder `Trainer._save_checkpoint` writes at the current step (transformers 5.24.0)."""
    return os.path.join(trainer._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


def wrap_save_checkpoint(trainer, before: Callable[[str], None]) -> None:
    """Make `trainer._save_checkpoint` (transformers 5.24.0) call `before(folder)` first and skip its own rotation of
    old checkpoints (`args.save_total_limit` is None while it runs): the caller rotates once the new checkpoint is
    complete, so a kill during a save never leaves fewer complete checkpoints than the limit asks for."""
    original = trainer._save_checkpoint

    def save_checkpoint(model, trial):
        before(checkpoint_folder(trainer, trial))
        limit = trainer.args.save_total_limit
        trainer.args.save_total_limit = None
        try:
            original(model, trial)
        finally:
            trainer.args.save_total_limit = limit

    trainer._save_checkpoint = save_checkpoint
