"""The trusted Python that runs inside the sandbox around the untrusted code (kept as source text: it is the
program the sandboxed interpreter starts with). Each script gets the result channel's fd as its last argument."""

from __future__ import annotations

# Installed before the untrusted code runs. `sys.addaudithook` hooks cannot be removed, and the hook refuses the
# events that would let code disable it (ctypes, which could patch memory) or leave the sandbox. Inside the jail it
# is a second layer; under the weak guard it is the main one.
GUARD = r"""
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

# Records its network namespace before the guard (the weak guard's parent compares it with its own), closes the
# channel it does not use, and runs main.py as __main__.
RUN_MAIN = (
    r"""
import os, sys
os.close(int(sys.argv[-1]))
try:
    with open(".netns", "w") as _f:
        _f.write(os.readlink("/proc/self/ns/net"))
except OSError:
    pass
"""
    + GUARD
    + r"""
import runpy
sys.argv = ["main.py"]
sys.path.insert(0, os.getcwd())  # `python -I` leaves the script's directory off sys.path
runpy.run_path("main.py", run_name="__main__")
"""
)

# One forked child per item: each starts from the harness's clean state, so nothing one program does (patched
# builtins, a forged line, a hard exit) reaches another's result. The harness is not dumpable, so a child cannot
# open its channel through /proc or trace it; it forwards what each child wrote, tagged with the item's index,
# which the child cannot choose. Children send the *values* of test expressions; the expected values never enter
# this process, and the verdict is made by the caller.
RUN_TESTS = (
    "_GUARD_SOURCE = " + repr(GUARD) + "\n"
    r"""
import ctypes, json, os, select, signal, sys, time
_GUARD = compile(_GUARD_SOURCE, "<guard>", "exec")
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
_CHANNEL = int(sys.argv[-1])
_IN_PID_NAMESPACE = sys.argv[-2] == "jailed" and os.getpid() == 2  # bwrap's init is 1, this harness 2
_JOB = json.loads(sys.stdin.buffer.read())
_ITEM_LIMIT = 1 << 20
_ATOMS = (type(None), bool, int, float, complex, str, bytes)

def _plain_repr(value):
    def check(v, depth):
        t = type(v)
        if t in _ATOMS:
            return
        if depth > 100:
            raise ValueError("test value nested too deeply")
        if t in (list, tuple, set):
            for x in v:
                check(x, depth + 1)
        elif t is dict:
            for k, x in v.items():
                check(k, depth + 1)
                check(x, depth + 1)
        else:
            raise TypeError(f"test value of type {t.__name__} is not plain data")
    check(value, 0)
    text = repr(value)
    if len(text) > 65536:
        raise ValueError("test value too large")
    return text

def _run_item(code, tests, write_fd):
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(_CHANNEL)
    os.setsid()
    exec(_GUARD, {})
    send = lambda entry: os.write(write_fd, (json.dumps(entry) + "\n").encode())
    namespace = {"__name__": "__sandbox_item__"}
    try:
        exec(compile(code, "<candidate>", "exec"), namespace)
    except BaseException as exc:
        send({"setup_error": f"{type(exc).__name__}: {exc}"[:300]})
        return
    for kind, text in tests:
        try:
            if kind == "expr":
                send({"value": _plain_repr(eval(compile(text, "<test>", "eval"), namespace))})
            else:
                exec(compile(text, "<test>", "exec"), namespace)
                send({"ok": True})
        except BaseException as exc:
            send({"error": f"{type(exc).__name__}: {exc}"[:300]})

def _end_item(pid):
    try:
        if _IN_PID_NAMESPACE:
            os.kill(-1, signal.SIGKILL)  # everything in the jail but its init and this harness
        else:
            os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

for _index, (_code, _tests) in enumerate(_JOB["items"]):
    _read, _write = os.pipe()
    _pid = os.fork()
    if _pid == 0:
        try:
            os.close(_read)
            _run_item(_code, _tests, _write)
        finally:
            os._exit(0)
    os.close(_write)
    _output, _timed_out = b"", False
    _deadline = time.monotonic() + _JOB["timeout"]
    while True:
        _left = _deadline - time.monotonic()
        if _left <= 0:
            _timed_out = True
            break
        if select.select([_read], [], [], _left)[0]:
            _chunk = os.read(_read, 65536)
            if not _chunk:
                break
            _output += _chunk[: max(0, _ITEM_LIMIT - len(_output))]
    os.close(_read)
    _end_item(_pid)
    _line = {"index": _index, "timed_out": _timed_out, "output": _output.decode("utf-8", "replace")}
    os.write(_CHANNEL, (json.dumps(_line) + "\n").encode())
"""
)
