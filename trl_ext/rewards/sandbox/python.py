"""Run generated Python: a script (`run_python`) or programs against their tests (`run_tests`)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trl_ext.rewards.sandbox.harness import RUN_MAIN, RUN_TESTS
from trl_ext.rewards.sandbox.jail import require_jail
from trl_ext.rewards.sandbox.limits import SandboxLimits, SandboxResult, TestOutcome
from trl_ext.rewards.sandbox.process import execute, read_regular_file, run_in_batches
from trl_ext.rewards.sandbox.verdicts import Check, judge, plan_checks

_MAX_SHARDS = 4
_MIN_SHARD = 32  # items below which a second sandbox costs more to start than it saves
_STARTUP_SLACK = 5.0  # seconds allowed on top of an item's timeout before the caller gives up on its sandbox


def _interpreter(allow_site_packages: bool) -> list[str]:
    return [sys.executable, "-I", "-B", "-X", "utf8"] + ([] if allow_site_packages else ["-S"])


def run_python(
    code: str,
    *,
    limits: SandboxLimits | None = None,
    stdin: str | None = None,
    files: Mapping[str, str] | None = None,
    read_back: Sequence[str] = (),
    allow_site_packages: bool = False,
) -> SandboxResult:
    """Run `code` as a script (`__main__`) in a sandboxed Python process and return its outcome.

    Args:
        code: the program text.
        limits: time, memory and file limits (`SandboxLimits()` by default: 10 s, 1 GiB, 16 MiB files).
        stdin: text fed to the program's standard input.
        files: extra files written into the sandbox directory before the run (relative path -> text).
        read_back: relative paths of files the program writes that should be returned in `SandboxResult.files`
            (regular files only: a FIFO or symlink left in their place is skipped, never waited on or followed).
        allow_site_packages: let the program import installed packages (off: the standard library only).

    Raises:
        SandboxUnavailableError: the jail cannot be set up here and the weak guard was not asked for.
    """
    limits = limits or SandboxLimits()
    bwrap = require_jail(limits.allow_weak_guard)
    with tempfile.TemporaryDirectory(prefix="trl-ext-sandbox-") as tmp:
        workdir = Path(tmp)
        _write_files(workdir, {"main.py": code, "runner.py": RUN_MAIN, "stdin.txt": stdin or "", **(files or {})})
        program = _interpreter(allow_site_packages) + ["runner.py"]
        run = execute(program, workdir, limits, bwrap=bwrap, stdin_path=workdir / "stdin.txt", timeout=limits.timeout)
        back = {}
        for name in read_back:
            text = read_regular_file(workdir / name) if _inside(workdir, workdir / name) else None
            if text is not None:
                back[name] = text
        return SandboxResult(
            run.returncode,
            run.stdout.decode("utf-8", errors="replace"),
            run.stderr.decode("utf-8", errors="replace"),
            run.timed_out,
            run.duration,
            bwrap is not None or _new_network_namespace(workdir),
            back,
        )


def _new_network_namespace(workdir: Path) -> bool:
    try:
        own = os.readlink("/proc/self/ns/net")
    except OSError:
        return False
    seen = read_regular_file(workdir / ".netns", 256)
    return bool(seen) and seen != own


def run_tests(
    items: Sequence[tuple[str, Sequence[str]]],
    *,
    per_item_timeout: float = 2.0,
    limits: SandboxLimits | None = None,
) -> list[TestOutcome]:
    """Run each program of `items` = [(code, [test statement, ...]), ...] against its tests (e.g. `assert f(1) == 2`).

    One sandbox serves the batch (its start-up cost is paid once) and forks a fresh child per program, so one
    program cannot change another's result; tests `assert EXPR == LITERAL` are judged here from the value of EXPR
    (see `verdicts`), so a program cannot forge its own pass. Each program gets `per_item_timeout` seconds of wall
    time; `limits` sets the memory, file and open-file limits of each (its `timeout` is not used). A program that
    brings the whole sandbox down is re-run alone, and the batch continues after it in a new sandbox.
    """
    if not items:
        return []
    if not per_item_timeout > 0:
        raise ValueError(f"per_item_timeout={per_item_timeout} must be > 0 seconds")
    limits = limits or SandboxLimits(timeout=per_item_timeout + _STARTUP_SLACK)
    bwrap = require_jail(limits.allow_weak_guard)
    plans = [(code, plan_checks(tests)) for code, tests in items]

    def run_shard(shard: Sequence[tuple[str, list[Check]]]) -> list[TestOutcome]:
        return run_in_batches(
            len(shard),
            lambda indices: _run_batch([shard[i] for i in indices], per_item_timeout, limits, bwrap),
            lambda i: TestOutcome(0, len(shard[i][1]), "sandbox process failed"),
        )

    # A fork per item costs a few milliseconds: large batches are split over one sandbox per core.
    shards = max(1, min(_MAX_SHARDS, os.cpu_count() or 1, len(plans) // _MIN_SHARD))
    if shards == 1:
        return run_shard(plans)
    size = -(-len(plans) // shards)
    with ThreadPoolExecutor(shards) as pool:
        parts = pool.map(run_shard, [plans[start : start + size] for start in range(0, len(plans), size)])
        return [outcome for part in parts for outcome in part]


def _run_batch(
    plans: Sequence[tuple[str, list[Check]]], per_item_timeout: float, limits: SandboxLimits, bwrap: str | None
) -> list[TestOutcome | None]:
    job = {
        "timeout": per_item_timeout,
        "items": [[code, [[c.kind, c.text] for c in checks]] for code, checks in plans],
    }
    with tempfile.TemporaryDirectory(prefix="trl-ext-sandbox-") as tmp:
        workdir = Path(tmp)
        _write_files(workdir, {"harness.py": RUN_TESTS, "job.json": json.dumps(job)})
        program = _interpreter(False) + ["harness.py", "jailed" if bwrap else "weak"]
        run = execute(
            program,
            workdir,
            limits,
            bwrap=bwrap,
            stdin_path=workdir / "job.json",
            timeout=None,
            idle_timeout=per_item_timeout + _STARTUP_SLACK,
        )
    outcomes: list[TestOutcome | None] = [None] * len(plans)
    for line in run.channel.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            index, output, timed_out = row["index"], row["output"], row["timed_out"]
        except (ValueError, KeyError, TypeError):
            break
        if not isinstance(index, int) or not 0 <= index < len(plans) or outcomes[index] is not None:
            break
        outcomes[index] = judge(plans[index][1], str(output), bool(timed_out))
    return outcomes


def _inside(root: Path, path: Path) -> bool:
    try:
        root, path = root.resolve(), path.resolve()
    except (OSError, RuntimeError):  # a symlink loop the program left
        return False
    return path == root or root in path.parents


def _write_files(workdir: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        target = workdir / name
        if not _inside(workdir, target):
            raise ValueError(f"sandbox file {name!r} would land outside the sandbox directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
