"""Run untrusted generated code (model completions, programmatic mutants) in a separate, limited process.

Everything that executes text a model or a generator wrote goes through here, never through `exec` in the trainer's
process. Layers, each cheap and each independent of the others:

- a fresh Python process (`python -I`, `-S` unless site-packages are asked for) with an empty environment, its
  working directory and `HOME`/`TMPDIR` in a new temporary directory that is deleted afterwards;
- kernel limits set with `resource.setrlimit` in the child before `exec`: CPU seconds, address space, size of any
  file written, open files, no core dumps, and no new processes (`RLIMIT_NPROC = 0` makes `fork` fail);
- a wall-clock timeout that kills the whole process group;
- no network: a new (empty) network namespace through an unprivileged user namespace where the kernel allows it
  (`unshare(CLONE_NEWUSER | CLONE_NEWNET)`, reported as `SandboxResult.network_isolated`), and in every case a
  Python audit hook (PEP 578, cannot be removed from Python code) that refuses creating or using sockets,
  subprocesses, importing `ctypes`, and any file write, rename or deletion outside the temporary directory.

The audit hook guards Python-level behaviour; the kernel limits hold even against code that gets around it. This is
a sandbox for mistakes and mischief in generated code, not a boundary against a determined attacker with a kernel
exploit: for that, run the whole job in a container or VM.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SandboxLimits", "SandboxResult", "TestOutcome", "run_python", "run_tests"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_OUTPUT_LIMIT = 1 << 20  # bytes of stdout/stderr read back

try:  # resolved once in the parent: nothing is imported between fork and exec
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _UNSHARE = getattr(_LIBC, "unshare", None)
except OSError:  # pragma: no cover - platforms without a C library handle
    _UNSHARE = None


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run. `cpu_seconds=None` means the wall timeout rounded up, plus one."""

    timeout: float = 10.0
    cpu_seconds: int | None = None
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_open_files: int = 64
    isolate_network: bool = True

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout={self.timeout} must be > 0 seconds")
        for name in ("memory_mb", "file_size_mb", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.cpu_seconds is not None and self.cpu_seconds < 1:
            raise ValueError(f"cpu_seconds={self.cpu_seconds} must be >= 1 or None")


@dataclass
class SandboxResult:
    """What a sandboxed run did. `returncode` is negative when a signal ended it (-9 after a timeout)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration: float
    network_isolated: bool
    files: dict[str, str] = field(default_factory=dict)  # files it wrote that were asked back, by relative path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


# Installed before the untrusted code runs. `sys.addaudithook` hooks cannot be removed, and the hook refuses the
# events that would let code disable it (ctypes, which could patch memory) or leave the sandbox.
_GUARD = r"""
import os, sys
_ROOT = os.path.realpath(os.getcwd())
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                     "os.system", "os.kill", "os.killpg", "pty.", "ctypes.", "_posixsubprocess.", "winreg.",
                     "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "os.startfile", "sys._debugmallocstats",
                     "signal.pthread_kill", "os.setuid", "os.setgid")
_BLOCKED_IMPORTS = {"ctypes", "_ctypes", "cffi"}  # could patch the interpreter's memory, and the hook with it
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "os.chroot", "os.mkfifo", "os.mknod"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path):
    if isinstance(path, int):
        return True
    try:
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)

def _guard(event, args):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the sandbox directory is not allowed: {path!r}")
    elif event == "import":
        name = args[0] if args else ""
        if name.split(".")[0] in _BLOCKED_IMPORTS:
            raise ImportError(f"sandbox: module {name!r} is not allowed")
    elif event in _PATH_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
                raise PermissionError(f"sandbox: {event} outside the sandbox directory is not allowed: {path!r}")
    elif event.startswith(_BLOCKED_PREFIXES):
        raise PermissionError(f"sandbox: {event} is not allowed")

sys.addaudithook(_guard)
del _guard
"""

_RUN_MAIN = r"""
import os, runpy, sys
sys.argv = ["main.py"]
sys.path.insert(0, os.getcwd())  # `python -I` leaves the script's directory off sys.path
runpy.run_path("main.py", run_name="__main__")
"""

# Runs many (code, tests) items in one process: each item in fresh globals, under its own CPU-time alarm, each test
# statement counted separately; one JSON line per item goes to results.jsonl.
_RUN_TESTS = r"""
import json, signal, sys, traceback
class _ItemTimeout(BaseException):
    pass
def _alarm(signum, frame):
    raise _ItemTimeout()
signal.signal(signal.SIGALRM, _alarm)
with open("items.json") as f:
    _items = json.load(f)
_out = open("results.jsonl", "w", buffering=1)
for _index, (_code, _tests, _seconds) in enumerate(_items):
    _passed, _error = 0, None
    signal.setitimer(signal.ITIMER_REAL, _seconds)
    try:
        _namespace = {"__name__": "__sandbox_item__"}
        exec(compile(_code, "<candidate>", "exec"), _namespace)
        for _test in _tests:
            try:
                exec(compile(_test, "<test>", "exec"), _namespace)
                _passed += 1
            except _ItemTimeout:
                raise
            except BaseException as exc:
                _error = _error or f"{type(exc).__name__}: {exc}"[:300]
    except _ItemTimeout:
        _error = "timeout"
    except BaseException as exc:
        _error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    _out.write(json.dumps({"index": _index, "passed": _passed, "total": len(_tests), "error": _error}) + "\n")
"""


def _preexec(limits: SandboxLimits):
    cpu = limits.cpu_seconds or math.ceil(limits.timeout) + 1
    memory = limits.memory_mb << 20
    file_size = limits.file_size_mb << 20

    def apply() -> None:  # runs in the child between fork and exec: no allocation-heavy work, no imports
        if limits.isolate_network and _UNSHARE is not None:
            _UNSHARE(_CLONE_NEWUSER | _CLONE_NEWNET)  # refused where the kernel forbids it: the audit hook remains
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))

    return apply


def _own_netns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def _read(path: Path) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        return f.read(_OUTPUT_LIMIT).decode("utf-8", errors="replace")


def _execute(
    script: str, workdir: Path, limits: SandboxLimits, allow_site_packages: bool, stdin: str | None
) -> tuple[int, bool, float, bool]:
    flags = ["-I", "-B", "-X", "utf8"] + ([] if allow_site_packages else ["-S"])
    # The child records its network namespace before the guard is installed, so the parent can tell whether it is
    # a new one (the unshare worked) or its own.
    probe = (
        "import os\ntry:\n    open('.netns', 'w').write(os.readlink('/proc/self/ns/net'))\nexcept OSError:\n    pass\n"
    )
    (workdir / "runner.py").write_text(probe + _GUARD + script)
    (workdir / "stdin.txt").write_text(stdin or "")
    env = {"HOME": str(workdir), "TMPDIR": str(workdir)}  # nothing of the parent's environment (tokens, proxies)
    start = time.monotonic()
    timed_out = False
    with (
        open(workdir / "stdin.txt", "rb") as fin,
        open(workdir / "stdout.txt", "wb") as fout,
        open(workdir / "stderr.txt", "wb") as ferr,
    ):
        proc = subprocess.Popen(
            [sys.executable, *flags, "runner.py"],
            cwd=workdir,
            env=env,
            stdin=fin,
            stdout=fout,
            stderr=ferr,
            preexec_fn=_preexec(limits),
            start_new_session=True,
            close_fds=True,
        )
        try:
            returncode = proc.wait(timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            returncode = proc.wait()
    duration = time.monotonic() - start
    network_isolated = (
        _own_netns() is not None
        and (workdir / ".netns").exists()
        and ((workdir / ".netns").read_text() not in ("", _own_netns()))
    )
    return returncode, timed_out, duration, network_isolated


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
        read_back: relative paths of files the program writes that should be returned in `SandboxResult.files`.
        allow_site_packages: let the program import installed packages (off: the standard library only).
    """
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="trl-ext-sandbox-") as tmp:
        workdir = Path(tmp)
        _write_files(workdir, {"main.py": code, **(files or {})})
        returncode, timed_out, duration, netns = _execute(_RUN_MAIN, workdir, limits, allow_site_packages, stdin)
        back = {name: _read(workdir / name) for name in read_back if _inside(workdir, workdir / name)}
        return SandboxResult(
            returncode, _read(workdir / "stdout.txt"), _read(workdir / "stderr.txt"), timed_out, duration, netns, back
        )


@dataclass
class TestOutcome:
    """How one program did on its tests: `passed` of `total` test statements, and the first error if any."""

    __test__ = False  # not a pytest test class

    passed: int
    total: int
    error: str | None = None

    @property
    def all_passed(self) -> bool:
        return self.error is None and self.passed == self.total


def run_tests(
    items: Sequence[tuple[str, Sequence[str]]],
    *,
    per_item_timeout: float = 2.0,
    limits: SandboxLimits | None = None,
) -> list[TestOutcome]:
    """Run each program of `items` = [(code, [test statement, ...]), ...] against its tests (e.g. `assert f(1) == 2`).

    Items run in one sandboxed process to keep the per-process start-up cost off the per-item cost; each item gets
    fresh globals and its own `per_item_timeout`. Items that a crash of the whole process left without a result
    (memory exhausted, a hard exit) are re-run one per process, so one bad program cannot fail the others. Items in
    one process share the interpreter: a program that patches builtins can affect the ones after it, which only
    makes results conservative for the generated code this is meant for.
    """
    if not items:
        return []
    if not per_item_timeout > 0:
        raise ValueError(f"per_item_timeout={per_item_timeout} must be > 0 seconds")
    limits = limits or SandboxLimits(timeout=min(600.0, 5.0 + per_item_timeout * len(items)))
    outcomes = _run_test_batch(list(items), per_item_timeout, limits)
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            single = SandboxLimits(
                timeout=per_item_timeout + 5.0,
                memory_mb=limits.memory_mb,
                file_size_mb=limits.file_size_mb,
                isolate_network=limits.isolate_network,
            )
            outcomes[index] = _run_test_batch([items[index]], per_item_timeout, single)[0] or TestOutcome(
                0, len(items[index][1]), "sandbox process failed"
            )
    return outcomes  # type: ignore[return-value]


def _run_test_batch(items, per_item_timeout, limits) -> list[TestOutcome | None]:
    payload = [[code, list(tests), per_item_timeout] for code, tests in items]
    with tempfile.TemporaryDirectory(prefix="trl-ext-sandbox-") as tmp:
        workdir = Path(tmp)
        (workdir / "items.json").write_text(json.dumps(payload))
        _execute(_RUN_TESTS, workdir, limits, False, None)
        outcomes: list[TestOutcome | None] = [None] * len(items)
        results = workdir / "results.jsonl"
        if results.exists():
            for line in results.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
                outcomes[row["index"]] = TestOutcome(row["passed"], row["total"], row["error"])
        return outcomes


def _inside(root: Path, path: Path) -> bool:
    root, path = root.resolve(), path.resolve()
    return path == root or root in path.parents


def _write_files(workdir: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        target = workdir / name
        if not _inside(workdir, target):
            raise ValueError(f"sandbox file {name!r} would land outside the sandbox directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
