"""Run untrusted SQL (a model's query) against a database file, read-only, and return its rows as plain data.

The query runs inside the same jail as generated Python, with the database bound read-only into it, not in the
trainer's process. The SQL text is the only untrusted part, and SQLite opened read-only and immutable
(`file:...?mode=ro&immutable=1`) with an authorizer that allows only reads (SELECT, reading columns, functions other
than `load_extension`, recursive CTEs, a few schema-reading PRAGMAs), extension loading off, and a progress handler
for the time limit is the standard guard; the jail adds what those cannot: a memory limit (a huge `zeroblob` or
sort cannot exhaust the trainer's memory), containment of a crash or a parser bug, and a kill on timeout. The rows
come back through the result channel and are decided on here, never taken from a file the query could write.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trl_ext.rewards.sandbox.jail import require_jail
from trl_ext.rewards.sandbox.limits import SandboxLimits
from trl_ext.rewards.sandbox.process import execute, run_in_batches

_DATABASE_IN_JAIL = "/tmp/trl-ext-database.sqlite"
_SLACK = 5.0

_RUN_SQL = r"""
import json, math, sqlite3, sys, time
_CHANNEL = int(sys.argv[-1])
_JOB = json.loads(sys.stdin.buffer.read())
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "foreign_key_list"}

def _authorize(action, arg1, arg2, db_name, trigger):
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() == "load_extension" else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in _PRAGMAS else sqlite3.SQLITE_DENY  # read-only ones
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY

def _plain(value):
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value

def _run(query):
    deadline = time.monotonic() + _JOB["timeout"]
    connection = sqlite3.connect(_JOB["uri"], uri=True, check_same_thread=False)
    try:
        connection.enable_load_extension(False)
    except AttributeError:  # built without extension support
        pass
    connection.set_authorizer(_authorize)
    connection.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        cursor = connection.execute(query)
        rows = cursor.fetchmany(_JOB["max_rows"] + 1)
        columns = [d[0] for d in cursor.description or ()]
        return {"columns": columns, "rows": [[_plain(v) for v in row] for row in rows[: _JOB["max_rows"]]],
                "truncated": len(rows) > _JOB["max_rows"]}
    except Exception as exc:
        timed_out = time.monotonic() > deadline and "interrupt" in str(exc).lower()
        return {"error": f"{type(exc).__name__}: {exc}"[:300], "timed_out": timed_out}
    finally:
        connection.close()

for _index, _query in enumerate(_JOB["queries"]):
    _result = _run(_query)
    _line = json.dumps(_result, allow_nan=False)
    if len(_line) > _JOB["max_bytes"]:
        _line = json.dumps({"error": f"result larger than {_JOB['max_bytes']} bytes"})
    import os
    os.write(_CHANNEL, (json.dumps({"index": _index, "result": json.loads(_line)}) + "\n").encode())
"""


@dataclass
class SqlResult:
    """Rows a query returned (at most `max_rows`; `truncated` when there were more), or the error that stopped it.
    Values are plain Python: None, int, float, str, bytes."""

    rows: list[tuple] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def run_sql(database: str | os.PathLike, query: str, **kwargs) -> SqlResult:
    """Run one query; see `run_sql_batch` for the arguments."""
    return run_sql_batch(database, [query], **kwargs)[0]


def run_sql_batch(
    database: str | os.PathLike,
    queries: Sequence[str],
    *,
    timeout: float = 5.0,
    max_rows: int = 1000,
    max_bytes: int = 1 << 20,
    limits: SandboxLimits | None = None,
) -> list[SqlResult]:
    """Run each of `queries` (one statement each) against the SQLite file `database`, read-only, in one jail.

    Args:
        timeout: seconds of each query (SQLite's progress handler stops it; the jail is killed a little later).
        max_rows: rows kept per query (`truncated` says there were more).
        max_bytes: size cap of one query's rows as JSON (larger results become an error).
        limits: memory and file limits of the jail (default `SandboxLimits()`).

    Raises:
        FileNotFoundError: `database` is not a file.
        SandboxUnavailableError: the jail cannot be set up here and the weak guard was not asked for.
    """
    path = Path(database).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database file at {path}")
    if not (timeout > 0 and max_rows >= 0 and max_bytes > 0):
        raise ValueError(f"timeout={timeout}, max_rows={max_rows}, max_bytes={max_bytes} must be positive")
    limits = limits or SandboxLimits(timeout=timeout + _SLACK)
    bwrap = require_jail(limits.allow_weak_guard)
    queries = list(queries)

    def run_batch(indices: list[int]) -> list[SqlResult | None]:
        inside = _DATABASE_IN_JAIL if bwrap else str(path)
        job = {
            "uri": f"file:{_quote(inside)}?mode=ro&immutable=1",
            "queries": [queries[i] for i in indices],
            "timeout": timeout,
            "max_rows": max_rows,
            "max_bytes": max_bytes,
        }
        with tempfile.TemporaryDirectory(prefix="trl-ext-sandbox-") as tmp:
            workdir = Path(tmp)
            (workdir / "job.json").write_text(json.dumps(job))
            (workdir / "run_sql.py").write_text(_RUN_SQL)
            run = execute(
                [sys.executable, "-I", "-S", "-B", "run_sql.py"],
                workdir,
                limits,
                bwrap=bwrap,
                stdin_path=workdir / "job.json",
                timeout=None,
                idle_timeout=timeout + _SLACK,
                read_only=[(str(path), _DATABASE_IN_JAIL)] if bwrap else (),
            )
        return _parse(run.channel, len(indices))

    return run_in_batches(len(queries), run_batch, lambda i: SqlResult(error="sandbox process failed"))


def _quote(path: str) -> str:
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _parse(channel: bytes, count: int) -> list[SqlResult | None]:
    results: list[SqlResult | None] = [None] * count
    for line in channel.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            index, result = row["index"], row["result"]
            if not isinstance(index, int) or not 0 <= index < count or results[index] is not None:
                break
            results[index] = _result(result)
        except (ValueError, KeyError, TypeError):
            break
    return results


def _result(data: dict) -> SqlResult:
    if "error" in data:
        return SqlResult(error=str(data["error"]), timed_out=bool(data.get("timed_out")))
    rows = [tuple(_value(v) for v in row) for row in data["rows"]]
    return SqlResult(rows, [str(c) for c in data["columns"]], truncated=bool(data["truncated"]))


def _value(value):
    if isinstance(value, dict):
        if "bytes" in value:
            return bytes.fromhex(value["bytes"])
        return float(value["float"])
    if value is None or isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"not a SQLite value: {value!r}")
