"""One run per output folder: a second run into a folder that a running one writes to is refused with the owner's pid.

The lock is `fcntl.flock` on `OUTPUT_LOCK` inside the folder, and the file holds the owner's pid and host. A flock
belongs to the open file, so the kernel releases it when its process dies however it dies (SIGKILL, OOM): a killed
run's file stays behind with its dead pid but locks nothing, and no liveness check of a pid (which the system may
have reused) is needed. The file is never deleted: deleting it would let a run that opened the old file and one that
creates a new one both hold "the" lock. flock is local to a machine (not reliable across NFS clients).

Under torchrun/accelerate one run is several processes: only global rank 0 (`RANK` unset or 0) takes the lock, so
the ranks of one run never refuse each other; when rank 0 is refused it exits and the launcher stops the others.
A recipe locks each stage's output folder while that stage trains.
"""

from __future__ import annotations

import fcntl
import os
import socket

from trl_ext.run.checks import BadInputError

OUTPUT_LOCK = ".trl-ext.lock"

_held: dict[str, int] = {}  # real path of a locked folder -> the open lock file's descriptor


class OutputDirLockedError(BadInputError):
    """Another run holds the output folder's lock."""


def hold_output_lock(output_dir: str) -> None:
    """Take `output_dir`'s lock for this run (rank 0 only) until `release_output_lock`, or refuse naming the owner."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    os.makedirs(output_dir, exist_ok=True)
    key = os.path.realpath(output_dir)
    path = os.path.join(key, OUTPUT_LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown pid"
        os.close(fd)
        raise OutputDirLockedError(
            f"--output_dir {output_dir} is in use by another run ({owner}). Wait for it to finish, stop it, or choose "
            "another --output_dir."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release_output_lock(output_dir: str) -> None:
    """Release this process's lock on `output_dir`, if it holds one (the file stays, see the module docstring)."""
    fd = _held.pop(os.path.realpath(output_dir), None)
    if fd is not None:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
