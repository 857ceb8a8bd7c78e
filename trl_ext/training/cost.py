"""What a run costs, measured the same way everywhere (`trl-ext bench`, `trl-ext compare`): CPU-seconds of this
process and of the children it waited for (a sandbox jail per reward batch), and peak memory: CUDA's allocator peak
on a GPU, the peak resident set (VmHWM, reset through /proc/self/clear_refs) on a CPU."""

from __future__ import annotations

import os
from typing import Any


def synchronize(device: Any) -> None:
    """Wait for the device's queued work, so a wall-clock reading covers it (a no-op off CUDA)."""
    import torch

    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def cpu_seconds() -> float:
    """User + system CPU-seconds of this process and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class PeakMemory:
    """Peak memory between `start()` and `stop()` (or inside `with`): `base` is what was in use at the start and
    `peak` the peak above it, in bytes (NaN where neither CUDA nor /proc/self is there to read)."""

    def __init__(self, device: Any):
        self.cuda = getattr(device, "type", device) == "cuda"
        self.base = self.peak = float("nan")

    def start(self) -> PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident set
            self.base = _status_kib("VmRSS") * 1024
        except OSError:
            self.base = float("nan")
        return self

    def stop(self) -> PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            try:
                self.peak = _status_kib("VmHWM") * 1024 - self.base
            except OSError:
                self.peak = float("nan")
        return self

    def __enter__(self) -> PeakMemory:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")
