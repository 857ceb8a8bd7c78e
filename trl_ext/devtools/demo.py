"""What the paper demonstrations under examples/demos share: training one arm through `trl-ext train` (the same
flags a user would type) and printing the comparison as a Markdown table for the plugin README."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Demonstration runs keep nothing but the final model and print to the terminal only.
# A demonstration is re-run into the same folders: each arm replaces its previous model.
ARM_DEFAULTS: dict[str, Any] = {
    "save_strategy": "no",
    "report_to": "none",
    "logging_steps": 10,
    "seed": 0,
    "overwrite_output_dir": True,
}


def arm_argv(method: str, output_dir: str | Path, extra: Sequence[str] = (), **flags: Any) -> list[str]:
    """`trl-ext train` arguments: `--name value` per flag (lists as several values, booleans as true/false) over
    `ARM_DEFAULTS`, then `--output_dir` and any `extra` arguments verbatim."""
    argv = ["train", method]
    for name, value in {**ARM_DEFAULTS, **flags}.items():
        if isinstance(value, (list, tuple)):
            argv += [f"--{name}", *map(str, value)]
        elif isinstance(value, bool):
            argv += [f"--{name}", str(value).lower()]
        else:
            argv += [f"--{name}", str(value)]
    return [*argv, "--output_dir", str(output_dir), *extra]


def train_arm(method: str, output_dir: str | Path, extra: Sequence[str] = (), **flags: Any) -> float:
    """Train one arm with `trl-ext train` (see `arm_argv`) and return its wall time in minutes; a failed run ends the
    demonstration with the CLI's exit code."""
    from trl_ext.cli import main as trl_ext

    start = time.time()
    code = trl_ext(arm_argv(method, output_dir, extra, **flags))
    if code:
        raise SystemExit(code)
    return (time.time() - start) / 60


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, cells as given (format numbers before)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def load_tuned(path: str | Path, base: str = "smollm2-135m"):
    """A trained arm's output folder as a plain model: LoRA adapters merged into `base`, a full model loaded as is."""
    from trl_ext.models import load_trained

    return load_trained(path, base)


def mean_with_interval(values: Sequence[float]) -> str:
    """'mean [lo, hi]': the 95% interval `trl-ext compare` reports, for demo tables that compare cannot produce."""
    from trl_ext.compare.metrics import mean_and_interval

    mean, low, high = mean_and_interval(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"
