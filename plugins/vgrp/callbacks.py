"""`vgrp_metrics`: the benchmark's summary of a run, per (game, size, number of clues) bucket.

The vgrp solve rewards log each batch's solve rate per bucket (`vgrp/solve/<game><n>x<n>_c<clues>`) and the
perception accuracy (`vgrp/perception_acc`); this callback averages them over the whole run (weighting every logged
value equally), prints the table at the end of training and writes it to `<output_dir>/vgrp_metrics.json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)
PREFIX = "vgrp/solve/"
KEYS = ("vgrp/solve_rate", "vgrp/perception_acc", "vgrp/format_rate")


def summarize(log_history: list[dict]) -> dict[str, float]:
    """Mean of each vgrp metric over the log entries that hold it."""
    sums: dict[str, list[float]] = {}
    for entry in log_history:
        for key, value in entry.items():
            if (key.startswith(PREFIX) or key in KEYS) and isinstance(value, (int, float)):
                sums.setdefault(key, []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sorted(sums.items())}


class VGRPMetricsCallback(TrainerCallback):
    def on_train_end(self, args, state, control, **kwargs):
        summary = summarize(state.log_history)
        if not summary or not state.is_world_process_zero:
            return
        lines = [f"  {key}: {value:.3f}" for key, value in summary.items()]
        print("vgrp metrics over the run:\n" + "\n".join(lines), flush=True)
        path = Path(args.output_dir) / "vgrp_metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))


def make_metrics_callback() -> VGRPMetricsCallback:
    return VGRPMetricsCallback()
