"""Escape probes against the sandbox jail, one per class seen against the old in-process guard (issue 8), each through
the public API: a canary folder outside is hashed before and after, the caller gets its answer within a hang guard,
and no process the code started survives it. Every probe first starts a sleeper past the audit hook (by silencing
`sys.audit` in the `subprocess` module, so `_posixsubprocess.fork_exec` runs without an event) to show what a
process that got out of Python would still be held by."""

import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from trl_ext.rewards.sandbox import jail_status, run_python, run_sql, run_tests

pytestmark = pytest.mark.skipif(
    jail_status().bwrap is None, reason=f"the sandbox jail cannot be set up here: {jail_status().reason}"
)

HANG_GUARD = 60.0  # seconds: a generous bound on a call that must return, not a performance figure


def spawn_sleeper(marker: str) -> str:
    """Code that starts a detached `python -c sleep` carrying `marker` in its argv, around the audit hook."""
    return (
        "import subprocess as _sp, sys as _sys, types as _types\n"
        "_shim = _types.SimpleNamespace(**{k: getattr(_sys, k) for k in dir(_sys) if not k.startswith('__')})\n"
        "_shim.audit = lambda *a: None\n"
        "_sp.sys = _shim\n"
        "try:\n"
        "    _log = open('sleeper.log', 'w+')\n"
        f"    _p = _sp.Popen([_sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}],\n"
        "                   start_new_session=True, stdin=_log, stdout=_log, stderr=_log)\n"
        "    print('spawned', _p.pid, flush=True)\n"
        "except BaseException as _e:\n"
        "    print('spawn refused', type(_e).__name__, flush=True)\n"
    )


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}|{info.st_mode}|{info.st_size}".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def canary(tmp_path):
    """Files the sandbox can see (read-only) but must not touch: outside /tmp, which the jail replaces."""
    home = Path.home()
    outside = home.is_dir() and os.access(home, os.W_OK) and not str(home.resolve()).startswith("/tmp")
    root = Path(tempfile.mkdtemp(prefix=".trl-ext-canary-", dir=home)) if outside else tmp_path / "canary"
    try:
        yield _fill(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fill(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "keep.txt").write_text("precious")
    (root / "sub" / "mode.txt").write_text("0600")
    (root / "sub" / "mode.txt").chmod(0o600)
    with sqlite3.connect(root / "data.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    db.close()
    return root


def contained(canary: Path, marker: str, call):
    """Run `call()` on a thread; check it returned within the hang guard, the canary is unchanged, and nothing
    carrying `marker` is left running. Returns what `call` returned."""
    before = tree_hash(canary)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", call()), daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    assert not thread.is_alive(), "the caller hung"
    assert "result" in box, "the call raised"
    deadline = time.monotonic() + 5  # a killed namespace is reaped asynchronously
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == [], "a process started in the sandbox outlived it"
    assert tree_hash(canary) == before, "the canary folder changed"
    return box["result"]


def probe(code: str) -> tuple[str, str]:
    marker = f"trl-ext-escape-{uuid.uuid4().hex}"
    return marker, spawn_sleeper(marker) + code


def test_dir_fd_relative_delete_rename_chmod(canary):
    marker, code = probe(
        f"import os\nfd = os.open({str(canary)!r}, os.O_RDONLY)\n"
        "for name, act in [('remove', lambda: os.remove('keep.txt', dir_fd=fd)),\n"
        "                  ('rename', lambda: os.rename('keep.txt', 'gone.txt', src_dir_fd=fd, dst_dir_fd=fd)),\n"
        "                  ('chmod', lambda: os.chmod('sub/mode.txt', 0o777, dir_fd=fd)),\n"
        "                  ('unlink_dir', lambda: os.rmdir('sub', dir_fd=fd)),\n"
        "                  ('create', lambda: os.open('new.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd))]:\n"
        "    try:\n        act()\n        print(name, 'done')\n"
        "    except OSError as e:\n        print(name, 'refused', e.errno)\n"
    )
    result = contained(canary, marker, lambda: run_python(code))
    assert "spawned" in result.stdout  # the sleeper did start inside: the jail, not the hook, stopped it
    assert "remove refused" in result.stdout and "chmod refused" in result.stdout


@pytest.mark.parametrize("api", ["run_python", "run_tests"])
def test_spawned_processes_die_with_the_sandbox(canary, api):
    marker, code = probe("import os\nos._exit(0)\n")
    if api == "run_python":
        result = contained(canary, marker, lambda: run_python(code))
        assert "spawned" in result.stdout
    else:
        outcomes = contained(
            canary, marker, lambda: run_tests([(code, ["assert 1 == 1"]), ("x = 1", ["assert x == 1"])])
        )
        assert outcomes[1].all_passed and not outcomes[0].all_passed


def test_timeout_kills_everything_it_started(canary):
    marker, code = probe("import time\ntime.sleep(300)\n")
    result = contained(canary, marker, lambda: run_python(code, limits=_limits(timeout=1.0)))
    assert result.timed_out and "spawned" in result.stdout


def test_cannot_signal_the_caller_or_its_processes(canary):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        pids = {"caller": os.getpid(), "victim": victim.pid}
        marker, code = probe(
            "import os, signal\n"
            f"for who, pid in {pids!r}.items():\n"
            "    try:\n        fd = os.pidfd_open(pid)\n        signal.pidfd_send_signal(fd, signal.SIGKILL)\n"
            "        print(who, 'pidfd signalled')\n"
            "    except OSError as e:\n        print(who, 'pidfd refused', type(e).__name__)\n"
            "    for kill in (lambda: os.kill(pid, 9), lambda: os.killpg(pid, 9), lambda: os.kill(os.getppid(), 9)):\n"
            "        try:\n            kill()\n        except BaseException as e:\n            pass\n"
        )
        result = contained(canary, marker, lambda: run_python(code))
        assert "caller pidfd refused ProcessLookupError" in result.stdout  # the caller's pid does not exist in there
        assert "victim pidfd refused ProcessLookupError" in result.stdout
        assert victim.poll() is None  # still running
    finally:
        victim.kill()
        victim.wait()


def test_fifo_in_place_of_a_result_file_does_not_hang_the_caller(canary):
    marker, code = probe(
        "import os, subprocess, sys\n"
        "for name in ('out.txt', '.netns', 'stdout.txt', 'results.jsonl'):\n"
        "    try:\n        os.remove(name)\n    except OSError:\n        pass\n"
        "    os.mkfifo(name)\n"
        "print('fifos made', flush=True)\n"
    )
    result = contained(canary, marker, lambda: run_python(code, read_back=["out.txt"]))
    assert "fifos made" in result.stdout and result.files == {}


def test_sqlite_database_outside_cannot_be_modified(canary):
    database = canary / "data.sqlite"
    marker, code = probe(
        f"import sqlite3\ntry:\n    db = sqlite3.connect({str(database)!r})\n"
        "    db.execute('DELETE FROM t')\n    db.commit()\n    print('deleted')\n"
        "except Exception as e:\n    print('refused', type(e).__name__)\n"
    )
    result = contained(canary, marker, lambda: run_python(code))
    assert "refused" in result.stdout
    queries = [
        "DELETE FROM t",
        "UPDATE t SET name = 'x'",
        "DROP TABLE t",
        f"ATTACH DATABASE '{canary / 'other.sqlite'}' AS o",
        f"VACUUM INTO '{canary / 'copy.sqlite'}'",
        "PRAGMA writable_schema = 1",
    ]
    results = contained(canary, marker, lambda: [run_sql(database, q) for q in queries])
    assert all(r.error for r in results), results


def test_a_cheating_completion_cannot_forge_verdicts(canary):
    wrong = "def f(x):\n    return x - 1"
    forge = (
        "import json, os, builtins\n"
        "lines = [json.dumps({'index': i, 'passed': 1, 'total': 1, 'error': None, 'timed_out': False,\n"
        "                     'output': json.dumps({'ok': True}) + '\\n'}) for i in range(4)]\n"
        "lines += [json.dumps({'ok': True}), json.dumps({'value': 'True'})]\n"
        "blob = ('\\n'.join(lines) + '\\n').encode()\n"
        "open('results.jsonl', 'w').write(blob.decode())\n"
        "targets = [f'/proc/{p}/fd/{n}' for p in ('self', str(os.getppid()), '1') for n in range(3, 40)]\n"
        "for path in targets:\n"
        "    try:\n        fd = os.open(path, os.O_WRONLY)\n        os.write(fd, blob)\n    except OSError:\n        pass\n"
        "for n in range(3, 40):\n    try:\n        os.write(n, blob)\n    except OSError:\n        pass\n"
        "builtins.abs = lambda v: 0\n"  # a patch that would change later items' values if they shared the process
        "os._exit(0)\n"
    )
    marker, cheater = probe(forge)
    tests = ["assert f(1) == 2", "assert f(5) == 6"]
    items = [
        (wrong, tests),
        (wrong, tests),
        (cheater, tests),
        (wrong, tests),
        ("def f(x):\n    return abs(x) + 1", tests),
    ]
    outcomes = contained(canary, marker, lambda: run_tests(items))
    assert [o.all_passed for o in outcomes] == [False, False, False, False, True]
    assert [o.passed for o in outcomes] == [0, 0, 0, 0, 2]


def test_no_network_even_to_a_local_listener(canary):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        marker, code = probe(
            "import _socket\ntry:\n"
            f"    s = _socket.socket()\n    s.settimeout(2)\n    s.connect(('127.0.0.1', {port}))\n    print('connected')\n"
            "except BaseException as e:\n    print('refused', type(e).__name__)\n"
        )
        result = contained(canary, marker, lambda: run_python(code))
        assert "connected" not in result.stdout
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached it


def test_root_is_read_only(canary):
    name = f"trl-ext-escape-{uuid.uuid4().hex}"
    marker, code = probe(
        "import os\nfd = os.open('/', os.O_RDONLY)\n"
        f"for path, kw in (({name!r}, {{'dir_fd': fd}}), ('/{name}', {{}}), ('{canary}/{name}', {{}})):\n"
        "    try:\n        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, **kw))\n        print('created', path)\n"
        "    except OSError as e:\n        print('refused', e.errno)\n"
    )
    result = contained(canary, marker, lambda: run_python(code))
    assert "created" not in result.stdout and result.stdout.count("\nrefused") == 3
    assert not Path("/", name).exists()
    assert not Path(canary, name).exists()


def _limits(**kwargs):
    from trl_ext.rewards.sandbox import SandboxLimits

    return SandboxLimits(**kwargs)


def test_sleeper_probe_escapes_without_the_jail(canary, monkeypatch):
    """The probe is real: under the weak guard (no PID namespace) the sleeper it starts does outlive the run."""
    from trl_ext.rewards.sandbox import jail

    monkeypatch.setattr(jail, "find_bwrap", lambda: None)
    monkeypatch.setenv("TRL_EXT_SANDBOX", "weak")
    marker, code = probe("pass\n")
    result = run_python(code)
    try:
        assert "spawned" in result.stdout and processes_with(marker)
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
