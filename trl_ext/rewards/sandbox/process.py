"""Start one sandboxed process (jailed, or under the weak guard) and read what it says through pipes.

Output comes back only through pipes the caller created (stdout, stderr and a result channel): the code cannot swap
them for a FIFO or a symlink the way it could a file, each is read with a size cap, and every wait is bounded.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from trl_ext.rewards.sandbox.jail import jail_command
from trl_ext.rewards.sandbox.limits import SandboxLimits

OUTPUT_LIMIT = 1 << 20  # bytes of each stream kept; more is read and dropped so the writer never blocks
T = TypeVar("T")
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000

try:  # resolved once in the parent: nothing is imported between fork and exec
    _UNSHARE = getattr(ctypes.CDLL(None, use_errno=True), "unshare", None)
except OSError:  # pragma: no cover - platforms without a C library handle
    _UNSHARE = None


@dataclass
class Finished:
    """A finished sandboxed process: its exit status, what it wrote to each pipe (capped), and whether it was
    killed for running past its time."""

    returncode: int
    stdout: bytes
    stderr: bytes
    channel: bytes
    timed_out: bool
    duration: float


def _preexec(limits: SandboxLimits, weak: bool):
    cpu = limits.cpu_seconds or math.ceil(limits.timeout) + 1
    memory = limits.memory_mb << 20
    file_size = limits.file_size_mb << 20

    def apply() -> None:  # runs in the child between fork and exec: no allocation-heavy work, no imports
        if weak and limits.isolate_network and _UNSHARE is not None:
            _UNSHARE(_CLONE_NEWUSER | _CLONE_NEWNET)  # refused where the kernel forbids it: the audit hook remains
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def execute(
    program: Sequence[str],
    workdir: Path,
    limits: SandboxLimits,
    *,
    bwrap: str | None,
    stdin_path: Path,
    timeout: float | None,
    idle_timeout: float | None = None,
    read_only: Sequence[tuple[str, str]] = (),
) -> Finished:
    """Run `program` + [channel fd] in `workdir`. It is killed (with all it started) after `timeout` seconds, or
    `idle_timeout` seconds after the channel last completed a line; the caller never waits longer than that."""
    channel_read, channel_write = os.pipe()
    command = list(program) + [str(channel_write)]
    if bwrap is not None:
        command = jail_command(bwrap, str(workdir), read_only) + command
    env = {"HOME": str(workdir), "TMPDIR": str(workdir)}  # nothing of the parent's environment (tokens, proxies)
    start = time.monotonic()
    try:
        with open(stdin_path, "rb") as stdin:
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=_preexec(limits, weak=bwrap is None),
                start_new_session=True,  # its own process group, killed as one on timeout
                pass_fds=(channel_write,),
            )
    except BaseException:
        os.close(channel_read)
        raise
    finally:
        os.close(channel_write)
    streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), channel_read: bytearray()}
    timed_out = _drain(streams, channel_read, proc, start, timeout, idle_timeout)
    if timed_out:
        _kill(proc)
    else:
        try:
            proc.wait(timeout=5)  # every pipe is closed: it is exiting; bound the wait anyway
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
    stdout, stderr = bytes(streams[proc.stdout.fileno()]), bytes(streams[proc.stderr.fileno()])
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    os.close(channel_read)
    channel = bytes(streams[channel_read])
    return Finished(proc.returncode, stdout, stderr, channel, timed_out, time.monotonic() - start)


def _drain(streams, channel_fd, proc, start, timeout, idle_timeout) -> bool:
    """Read every pipe until all are closed; True when a deadline passed first."""
    selector = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    last_line = start
    try:
        while selector.get_map():
            now = time.monotonic()
            deadlines = [d for d in (timeout and start + timeout, idle_timeout and last_line + idle_timeout) if d]
            left = min(deadlines) - now if deadlines else None
            if left is not None and left <= 0:
                return True
            for key, _ in selector.select(left):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                kept = streams[key.fd]
                kept += chunk[: max(0, OUTPUT_LIMIT - len(kept))]
                if key.fd == channel_fd and b"\n" in chunk:
                    last_line = time.monotonic()
        return False
    finally:
        selector.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap's process group; the jail's PID namespace dies with it
    except ProcessLookupError:
        pass
    proc.wait()


def read_regular_file(path: Path, limit: int = OUTPUT_LIMIT) -> str | None:
    """The text of `path` if it is a regular file (never following a symlink or waiting on a FIFO), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def run_in_batches(
    count: int, run_batch: Callable[[list[int]], list[T | None]], failed: Callable[[int], T]
) -> list[T]:
    """Results of items 0..count-1 run through `run_batch` (None for an item its sandbox did not report). When a
    sandbox dies on an item, that item is re-run alone (`failed(i)` if it dies again) and a new batch starts after
    it, so one item that brings its sandbox down costs the others nothing but time."""
    outcomes: list[T | None] = [None] * count
    pending = list(range(count))
    while pending:
        results = run_batch(pending)
        done = next((k for k, outcome in enumerate(results) if outcome is None), len(results))
        for k in range(done):
            outcomes[pending[k]] = results[k]
        if done == len(pending):
            break
        index = pending[done]
        outcomes[index] = run_batch([index])[0] or failed(index)
        pending = pending[done + 1 :]
    return outcomes  # type: ignore[return-value]
