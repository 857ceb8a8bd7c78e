"""Checkpoints a kill cannot fake: written with an in-progress mark, sealed by a manifest written last, and checked
before a resume.

Transformers 5.24's `Trainer._save_checkpoint` writes straight into `checkpoint-N` (no temporary folder), rotates old
checkpoints away before the callbacks' `on_save` (EMA teachers, plugin state) have written into the new one, and
`get_last_checkpoint` takes the highest `checkpoint-N` folder whatever it holds. A rename of a finished temporary
folder would have to wait for those callbacks, which write into `output_dir/checkpoint-N` by name, so instead:

1. before the save, `checkpoint-N` is created holding `IN_PROGRESS` (a killed save's leftovers of the same step are
   removed first);
2. transformers and every callback's `on_save` write into it as usual;
3. then every file is fsynced, `MANIFEST` (each file and its size) is written through a temporary file and renamed
   into place, `IN_PROGRESS` is removed, and only now are old checkpoints rotated (`save_total_limit`).

A folder holding `IN_PROGRESS`, or whose files differ from its manifest, is incomplete; one with neither file (saved
by plain transformers) is judged by its files. Resuming from the latest (`--resume_from_checkpoint true`) skips
incomplete ones and names them; an explicit incomplete path, or one missing its optimizer or scheduler state, is
refused unless `--resume_with_fresh_optimizer` allows the latter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from trl_ext.compat.checkpoints import wrap_save_checkpoint

logger = logging.getLogger(__name__)

MANIFEST = "trl_ext_checkpoint.json"
IN_PROGRESS = "trl_ext_checkpoint.incomplete"
LATEST = {"true", "latest"}
FRESH_OPTIMIZER_FLAG = "--resume_with_fresh_optimizer"
OPTIMIZER_STATE = ("optimizer.pt", "scheduler.pt")  # what FRESH_OPTIMIZER_FLAG lets a resume start anew

_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (incomplete, corrupt, or lacking optimizer state), or none to
    resume from; raised before the model loads."""


# --- writing -----------------------------------------------------------------------------------------------------
class AtomicCheckpoints:
    """Makes `trainer`'s checkpoints atomic (see the module docstring). Install with `protect_checkpoints`."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.pending: str | None = None

    def begin(self, folder: str) -> None:
        trainer = self.trainer
        if trainer.args.should_save:
            if os.path.isdir(folder):  # a killed save of this step, or a re-save after resuming from an earlier one
                shutil.rmtree(folder)
            os.makedirs(folder)
            Path(folder, IN_PROGRESS).write_text("")
            _fsync_dir(folder)
            _fsync_dir(os.path.dirname(folder))
        trainer.accelerator.wait_for_everyone()  # no rank writes into the folder before it is fresh
        self.pending = folder

    def finish(self) -> None:
        folder, self.pending = self.pending, None
        if folder is None:
            return
        trainer = self.trainer
        trainer.accelerator.wait_for_everyone()  # every rank's files (RNG states, shards) are written
        if trainer.args.should_save:
            seal(folder)
            rotate_checkpoints(
                output_dir=os.path.dirname(folder),
                save_total_limit=trainer.args.save_total_limit,
                best_model_checkpoint=trainer.state.best_model_checkpoint,
                use_mtime=True,
            )
        trainer.accelerator.wait_for_everyone()


def protect_checkpoints(trainer) -> AtomicCheckpoints:
    """Install `AtomicCheckpoints` on `trainer`: its save marks the folder in progress, and its callbacks' `on_save`
    is followed by the seal and the rotation (whatever callbacks are added later, they run before the seal)."""
    atomic = AtomicCheckpoints(trainer)
    wrap_save_checkpoint(trainer, atomic.begin)
    handler = trainer.callback_handler
    callbacks_on_save = handler.on_save

    def on_save(args, state, control):
        control = callbacks_on_save(args, state, control)
        atomic.finish()
        return control

    handler.on_save = on_save
    return atomic


def seal(folder: str) -> None:
    """fsync every file of `folder`, write its manifest last (atomically), and drop the in-progress mark."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name not in (MANIFEST, IN_PROGRESS):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    for sub in sorted({p.parent for p in Path(folder).rglob("*")}):
        _fsync_dir(str(sub))
    match = _CHECKPOINT.match(os.path.basename(folder))
    manifest = {"step": int(match.group(1)) if match else None, "files": files}
    tmp = os.path.join(folder, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, MANIFEST))
    Path(folder, IN_PROGRESS).unlink(missing_ok=True)
    _fsync_dir(folder)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- checking ----------------------------------------------------------------------------------------------------
def checkpoint_problems(folder: str, fresh_optimizer: bool = False) -> list[str]:
    """Why `folder` cannot be resumed from, each naming the file; empty when it can."""
    root = Path(folder)
    if not root.is_dir():
        return [f"{folder} is not a folder"]
    if (root / IN_PROGRESS).exists():
        return [f"its save did not finish ({IN_PROGRESS} is still there: the run was stopped while writing it)"]
    problems = []
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            return [f"{MANIFEST} is unreadable"]
        for name, size in recorded.items():
            path = root / name
            if not path.is_file():
                if not (fresh_optimizer and name in OPTIMIZER_STATE):
                    problems.append(f"{name} is missing")
            elif path.stat().st_size != size:
                problems.append(f"{name} has {path.stat().st_size} bytes, {size} when it was saved (truncated?)")
    deepspeed = any(root.glob("global_step*/*optim_states.pt"))
    if not (root / "trainer_state.json").is_file():
        problems.append("trainer_state.json is missing")
    if not (any((root / name).is_file() for name in WEIGHTS) or any(root.glob("global_step*/*model_states.pt"))):
        problems.append(f"it holds no model weights (none of {', '.join(WEIGHTS)})")
    if not fresh_optimizer:
        if not ((root / "optimizer.pt").is_file() or deepspeed or any(root.glob("optimizer_0*"))):
            problems.append(
                f"optimizer.pt is missing (pass {FRESH_OPTIMIZER_FLAG} true to resume with a new optimizer)"
            )
        if not ((root / "scheduler.pt").is_file() or deepspeed):
            problems.append(
                f"scheduler.pt is missing (pass {FRESH_OPTIMIZER_FLAG} true to resume with a new schedule)"
            )
    if not problems:
        problems = [p for path in sorted(root.rglob("*")) if (p := file_problem(path, root))]
    return problems


def file_problem(path: Path, root: Path) -> str | None:
    """Why a weights/state file cannot be loaded, read from its structure alone (a safetensors header that promises
    more bytes than the file has, a torch zip without its central directory); None when it looks whole."""
    name = path.relative_to(root).as_posix()
    try:
        if path.suffix == ".safetensors":
            with open(path, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + length + end != path.stat().st_size:
                return (
                    f"{name} is truncated or corrupt ({path.stat().st_size} bytes, its header says {8 + length + end})"
                )
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path):
                pass
        elif path.name == "trainer_state.json":
            json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as exc:
        return f"{name} is truncated or corrupt ({type(exc).__name__})"
    return None


def checkpoints_newest_first(output_dir: str) -> list[str]:
    """The `checkpoint-N` folders of `output_dir`, highest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir) if (m := _CHECKPOINT.match(name))]
    return [os.path.join(output_dir, name) for _, name in sorted(found, reverse=True)]


def latest_complete(output_dir: str, fresh_optimizer: bool = False) -> tuple[str | None, dict[str, list[str]]]:
    """The newest checkpoint in `output_dir` that can be resumed from, and the newer ones skipped with their
    problems."""
    skipped: dict[str, list[str]] = {}
    for folder in checkpoints_newest_first(output_dir):
        problems = checkpoint_problems(folder, fresh_optimizer)
        if not problems:
            return folder, skipped
        skipped[folder] = problems
    return None, skipped


def resolve_resume(value: str | bool | None, output_dir: str, fresh_optimizer: bool = False) -> str | None:
    """The checkpoint folder `--resume_from_checkpoint value` resumes from: `true`/`latest` (any case) is the latest
    complete one in `output_dir`, `false`/`none`/empty is a fresh run, anything else a path. Raises CheckpointError
    when there is nothing complete to resume from."""
    if value is None or value is False:
        return None
    text = str(value).strip()
    if text.lower() in ("", "false", "none"):
        return None
    if value is True or text.lower() in LATEST:
        found, skipped = latest_complete(output_dir, fresh_optimizer)
        for folder, problems in skipped.items():
            logger.warning("Skipping incomplete checkpoint %s: %s", folder, "; ".join(problems))
        if found is None:
            detail = "".join(f"\n  {f}: {'; '.join(p)}" for f, p in skipped.items())
            raise CheckpointError(
                f"--resume_from_checkpoint {text}: no complete checkpoint in {output_dir}"
                + (f"; incomplete ones:{detail}" if detail else ".")
            )
        logger.info("Resuming from %s", found)
        return found
    problems = checkpoint_problems(text, fresh_optimizer)
    if problems:
        raise CheckpointError(f"--resume_from_checkpoint {text} cannot be resumed from: {'; '.join(problems)}.")
    if fresh_optimizer and not (Path(text) / "optimizer.pt").is_file():
        logger.warning("Resuming from %s with a new optimizer and schedule (%s).", text, FRESH_OPTIMIZER_FLAG)
    return text
