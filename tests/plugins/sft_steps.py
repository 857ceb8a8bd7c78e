"""The one-step trainer of the normalisation checks shared by SFT-loss plugin tests (test_curiosft.py, test_soft.py):
the same four rows and the same SGD step, so that one process, gradient accumulation and 2 processes (the test file
run under torchrun by `run_layout`) train on the same global batch. Imported as a plain module: pytest's default
(prepend) import mode, and a script's own folder, put tests/plugins on sys.path."""

from __future__ import annotations

from typing import Any

from trl_ext.testing import SGD_STEP_ARGS, tiny_trainer


def unequal_rows() -> list[dict[str, Any]]:
    """Four prompt-completion rows whose completions have unequal lengths (a token mean differs from a mean of
    per-micro-batch means)."""
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
            "completion": [{"role": "assistant", "content": f"{a} + {b} = {a + b}." + " So" * k + f" {a + b}."}],
        }
        for a, b, k in [(3, 4, 1), (12, 30, 6), (7, 8, 2), (100, 23, 0)]
    ]


def sgd_step_trainer(
    trainer_cls: type, config_cls: type, model: Any, out: Any, per_device: int, accumulation: int, **kw: Any
):
    """`trainer_cls` for one SGD step (`SGD_STEP_ARGS`, `kw` on top) of `model` on `unequal_rows()`, `per_device`
    rows per micro-batch and `accumulation` micro-batches, writing to `out`."""
    config = config_cls(
        output_dir=str(out),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        **{**SGD_STEP_ARGS, **kw},
    )
    return tiny_trainer(trainer_cls, config, unequal_rows(), model)
