"""Private members of transformers' Trainer and TRL's trainers that trl-ext reads or extends, in one place.

Written against transformers 5.24 / trl 1.16; tests/test_compat.py fails loudly when a name changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def record_metric(trainer, mode: str, key: str, value: float) -> None:
    """Append to SFTTrainer/GRPOTrainer's per-mode metric lists (`_metrics`), which their `log` averages."""
    trainer._metrics[mode][key].append(value)


def count_train_tokens(trainer, inputs: dict[str, Any]) -> None:
    """SFTTrainer's `num_tokens` metric (attention-mask tokens over all processes, cumulative) for a subclass whose
    `compute_loss` does not call SFTTrainer's; a collective, so every process calls it for every micro-batch."""
    mask = inputs.get("attention_mask")
    if mask is None:  # padding-free batches: one packed row per process, as SFTTrainer counts them
        local = inputs["position_ids"].new_tensor(inputs["position_ids"].size(1))
    else:
        local = mask.sum()
    total = trainer.accelerator.gather_for_metrics(local.reshape(1)).sum().item()
    trainer._total_train_tokens += total // getattr(trainer, "_tp_size", 1)
    trainer._metrics["train"]["num_tokens"] = [trainer._total_train_tokens]


def keep_columns(trainer, columns: list[str]) -> None:
    """Keep dataset `columns` through `remove_unused_columns=True` (transformers drops every column outside the
    trainer's `_signature_columns`, which SFTTrainer sets to its collator's inputs), for a collator that reads them."""
    trainer._set_signature_columns_if_needed()
    trainer._signature_columns = [
        *trainer._signature_columns,
        *(c for c in columns if c not in trainer._signature_columns),
    ]


def prepare_inputs(trainer, batch: dict[str, Any]) -> dict[str, Any]:
    """A collated batch moved to the trainer's device as `training_step` receives it (`Trainer._prepare_inputs`)."""
    return trainer._prepare_inputs(batch)


def time_reward_computation(trainer, record: Callable[[float], None]) -> None:
    """Report the wall time of each of GRPOTrainer's reward computations (`_calculate_rewards`: the synchronous
    reward functions in turn, then the async ones awaited together on TRL's event loop) as `record(seconds)`."""
    inner = trainer._calculate_rewards

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            record(time.perf_counter() - start)

    trainer._calculate_rewards = timed


def forget_accelerator_state() -> None:
    """Let the next trainer of this process build its own `Accelerator` (a recipe's next stage under DeepSpeed):
    accelerate keeps the first one's plugins in a process-wide state and refuses a second DeepSpeed plugin. The
    process group (PartialState) stays."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
