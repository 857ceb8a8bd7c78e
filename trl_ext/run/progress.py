"""Where a multi-stage recipe got to, so a rerun of the same command resumes instead of retraining.

Each stage writes `trl_ext_stage.json` into its output folder: "started" before training, "finished" once the model,
tokenizer and card are saved, or "skipped" when a `skip_if_empty` stage found no training rows (nothing saved; its
input model passes on to the next stage). The record holds the stage's settings as parsed (the method and every flag or recipe
key that differs from the defaults). On a rerun, a stage whose folder says "finished" for the same settings is kept
(its saved model is checked, not retrained), a "skipped" one stays skipped; a "started" one resumes from its latest complete checkpoint. A stage
whose settings changed, or any stage after one that trained again, trains from the start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trl_ext.run.checks import saved_model_files

MARKER = "trl_ext_stage.json"
STATES = ("started", "finished", "skipped")
# Flags that say how to run, not what to train: a rerun may add or drop them and still resume.
_VOLATILE = frozenset({"resume_from_checkpoint", "overwrite_output_dir", "resume_with_fresh_optimizer"})


def stage_settings(method: str, asked: dict[str, Any]) -> dict[str, Any]:
    """The settings a finished stage is matched on (JSON-plain, volatile flags left out)."""
    return json.loads(json.dumps({"method": method, **{k: v for k, v in asked.items() if k not in _VOLATILE}}))


def recorded_state(output_dir: str | Path, settings: dict[str, Any]) -> str | None:
    """ "finished", "skipped" or "started" when `output_dir` holds a stage record for these settings; None otherwise
    (no record, other settings, or a "finished" record whose model files are gone)."""
    path = Path(output_dir) / MARKER
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings") != settings:
        return None
    state = record.get("state")
    if state == "finished" and not saved_model_files(output_dir):
        return None
    return state if state in STATES else None


def write_state(output_dir: str | Path, settings: dict[str, Any], state: str) -> None:
    """Record `state` (one of STATES) for the stage in `output_dir` (written whole, then renamed: never half a
    record)."""
    if state not in STATES:
        raise ValueError(f"stage state {state!r}: one of {', '.join(STATES)}")
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"state": state, "settings": settings}, indent=2, sort_keys=True))
    tmp.replace(folder / MARKER)
