"""Random draws inside a loss (rollouts, auxiliary batches) that a resumed run repeats without saving RNG state.

Each micro-batch's generator is seeded from (seed, optimizer step, process, micro-batch within the step, train/eval)
only: a run resumed at step k draws what an unbroken run draws at step k, processes draw differently from each other,
and evaluation never moves the training stream.
"""

from __future__ import annotations

import hashlib

import torch


def step_seed(seed: int, global_step: int, process_index: int, micro_step: int, mode: str, stream: str = "") -> int:
    """A 63-bit seed from the micro-batch's coordinates; `stream` names the draw, so two draws of one micro-batch
    (e.g. rollouts and a side batch) are independent."""
    key = f"{stream}:{seed}:{global_step}:{process_index}:{micro_step}:{mode}"
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_generator(
    seed: int,
    global_step: int,
    process_index: int,
    micro_step: int,
    mode: str,
    device: torch.device | str = "cpu",
    stream: str = "",
) -> torch.Generator:
    """A `torch.Generator` on `device` seeded with `step_seed` of the same coordinates."""
    seed_value = step_seed(seed, global_step, process_index, micro_step, mode, stream)
    return torch.Generator(device=device).manual_seed(seed_value)


class MicroStepCounter:
    """The index of the current micro-batch within its optimizer step, per (stream, mode): `next(step, key)` returns
    0 at the first call of a step and counts up until `global_step` changes."""

    def __init__(self) -> None:
        self.position: dict[tuple[str, str], tuple[int, int]] = {}

    def next(self, global_step: int, key: tuple[str, str]) -> int:
        step, micro = self.position.get(key, (-1, 0))
        micro = micro + 1 if step == global_step else 0
        self.position[key] = (global_step, micro)
        return micro
