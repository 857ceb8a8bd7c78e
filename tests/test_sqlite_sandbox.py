"""trl_ext.rewards.sandbox.run_sql: untrusted SQL runs read-only in the jail and comes back as plain rows."""

import hashlib
import sqlite3
import time

import pytest

from trl_ext.rewards.sandbox import SandboxLimits, SandboxUnavailableError, jail, run_sql
from trl_ext.rewards.sandbox.sqlite import run_sql_batch

ROWS = [(1, "ann", b"\x00\xff", 1.5), (2, "bob", None, float("inf")), (3, "cy", b"", -2.0)]


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER, name TEXT, data BLOB, score REAL)")
        db.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", ROWS)
    db.close()
    return path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_select_returns_plain_rows(database):
    result = run_sql(database, "SELECT id, name, data, score FROM people ORDER BY id")
    assert result.ok and result.columns == ["id", "name", "data", "score"]
    assert result.rows == ROWS  # bytes, None and inf survive the trip


def test_rows_are_capped(database):
    result = run_sql(database, "SELECT id FROM people ORDER BY id", max_rows=2)
    assert result.rows == [(1,), (2,)] and result.truncated


def test_time_limit_stops_a_runaway_query(database):
    start = time.monotonic()
    query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    result = run_sql(database, query, timeout=0.3)
    assert result.timed_out and result.error and time.monotonic() - start < 30  # hang guard only


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO people VALUES (4, 'eve', NULL, 0)",
        "UPDATE people SET name = 'x'",
        "DELETE FROM people",
        "DROP TABLE people",
        "CREATE TABLE t (a)",
        "CREATE TEMP TABLE t (a)",
        "ATTACH DATABASE 'other.sqlite' AS other",
        "PRAGMA journal_mode = WAL",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('libevil')",
        "VACUUM",
    ],
)
def test_writes_attach_pragmas_and_extensions_are_refused(database, query):
    before = digest(database)
    result = run_sql(database, query)
    assert result.error and not result.rows
    assert digest(database) == before


def test_schema_pragmas_are_readable(database):
    result = run_sql(database, "PRAGMA table_info(people)")
    assert result.ok and [row[1] for row in result.rows] == ["id", "name", "data", "score"]


def test_a_failing_query_does_not_affect_the_batch(database):
    results = run_sql_batch(database, ["SELECT count(*) FROM people", "SELEC nonsense", "SELECT max(id) FROM people"])
    assert [r.rows for r in results] == [[(3,)], [], [(3,)]]
    assert results[1].error.startswith("OperationalError")


def test_memory_limit_holds_in_the_jail(database):
    result = run_sql(database, "SELECT length(randomblob(400000000))", limits=SandboxLimits(memory_mb=200))
    assert result.error and not result.rows


def test_missing_database_and_refusal_without_the_jail(database, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        run_sql(tmp_path / "absent.sqlite", "SELECT 1")
    monkeypatch.setattr(jail, "find_bwrap", lambda: None)
    monkeypatch.delenv("TRL_EXT_SANDBOX", raising=False)
    with pytest.raises(SandboxUnavailableError, match="no bwrap"):
        run_sql(database, "SELECT 1")
    monkeypatch.setenv("TRL_EXT_SANDBOX", "weak")
    weak = run_sql(database, "SELECT name FROM people WHERE id = 2")
    assert weak.rows == [("bob",)]
    assert run_sql(database, "DELETE FROM people").error  # the authorizer holds without the jail too
