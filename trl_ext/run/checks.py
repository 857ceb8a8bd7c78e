"""Checks made before training, each with a message that names the problem: dataset columns (before any model
loads), the process group a launcher started."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from trl_ext.plugin.records import Component, Method
from trl_ext.run.bases import training_base


class DatasetColumnError(ValueError):
    pass


class DistributedSetupError(RuntimeError):
    pass


def check_inputs(required: Sequence[str], columns: Sequence[str], who: str, dataset_name: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetColumnError(
            f"Dataset {dataset_name} lacks column(s) {', '.join(repr(c) for c in missing)} that {who} needs. "
            f"Available columns: {sorted(columns)}."
        )


def check_columns(
    columns: Sequence[str], method: Method, config: Any, dataset_name: str, extra: dict[str, list[str]]
) -> None:
    """Refuse a dataset that lacks what the method's base, the method and its components read."""
    have = set(columns)
    shapes = training_base(method.base).shapes_for(config)
    if shapes and not any(set(shape) <= have for shape in shapes):
        wanted = " or ".join("+".join(s) for s in shapes)
        raise DatasetColumnError(
            f"Dataset {dataset_name} has columns {sorted(have)}, but method {method.name!r} ({method.base}) needs "
            f"{wanted}."
        )
    needs = {f"method {method.name!r}": method.columns_for(config), **extra}
    for who, cols in needs.items():
        check_inputs(cols, list(columns), who, dataset_name)


def reward_columns(rewards: Sequence[tuple[Component, dict]]) -> dict[str, list[str]]:
    return {f"reward {r.name!r}": list(getattr(r, "required_columns", ())) for r, _ in rewards}


def check_process_group(trainer) -> None:
    """Refuse to train when the launcher started several processes but the trainer sees one: each rank would train
    alone on the whole dataset and all of them would write the same output_dir."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and trainer.accelerator.num_processes != launched:
        raise DistributedSetupError(
            f"The launcher started {launched} processes but the trainer sees {trainer.accelerator.num_processes}: "
            "the process group was not formed (on CPU pass --use_cpu, the default without CUDA)."
        )
