"""SafeSQLiteExecutor: runs a batch of model-written and gold queries through trl_ext's SQLite sandbox, side by side,
with an LRU cache of results keyed by (database, SQL).

The card asks for a worker-process pool around a read-only SQLite connection; trl_ext's sandbox
(`trl_ext.rewards.sandbox.sqlite.run_sql_batch`) is that and more (a bubblewrap jail with a memory limit and no
network, an authorizer that allows only reads, a progress-handler time limit and a kill of the jail past it), so the
executor only groups queries by (database, time limit), splits each group over `num_workers` jails run from threads,
and turns results it must not score (no columns, too many rows) into errors.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trl_ext.rewards.sandbox import SqlResult
from trl_ext.rewards.sandbox.sqlite import run_sql_batch


@dataclass(frozen=True)
class Query:
    """One query to run: the database file, the SQL text and its time limit in seconds."""

    database: str
    sql: str
    timeout: float


class SafeSQLiteExecutor:
    """Runs queries read-only in the sandbox, caches their results, and never raises for a bad query (the result's
    `error` says what went wrong); only a sandbox that cannot start raises (`SandboxUnavailableError`)."""

    def __init__(self, max_rows: int = 10_000, num_workers: int = 2, cache_size: int = 4096) -> None:
        self.max_rows = max_rows
        self.num_workers = num_workers
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], SqlResult] = OrderedDict()

    def cached(self, query: Query) -> SqlResult | None:
        key = (query.database, query.sql)
        result = self._cache.get(key)
        if result is not None:
            self._cache.move_to_end(key)
        return result

    def clear(self) -> None:
        """Forget every cached result (call it when a database file is replaced by another)."""
        self._cache.clear()

    async def run(self, query: Query) -> SqlResult:
        """The result of one query, from the cache when it ran before."""
        await self.run_many([query])
        result = self.cached(query)
        assert result is not None
        return result

    async def run_many(self, queries: Iterable[Query]) -> None:
        """Run every query not yet cached, each group of one database and time limit split over `num_workers`
        sandboxes that run concurrently; results land in the cache."""
        groups: dict[tuple[str, float], list[str]] = {}
        for query in queries:
            if self.cached(query) is not None:
                continue
            if not query.sql.strip():
                self._store(query.database, query.sql, SqlResult(error="empty query: nothing to execute"))
                continue
            pending = groups.setdefault((query.database, query.timeout), [])
            if query.sql not in pending:
                pending.append(query.sql)
        if not groups:
            return
        workers = asyncio.Semaphore(self.num_workers)

        async def run_chunk(database: str, timeout: float, chunk: list[str]) -> None:
            async with workers:
                results = await asyncio.to_thread(
                    run_sql_batch, database, chunk, timeout=timeout, max_rows=self.max_rows
                )
            for sql, result in zip(chunk, results, strict=True):
                self._store(database, sql, _scorable(result, self.max_rows))

        chunks = [
            (database, timeout, sqls[i :: self.num_workers])
            for (database, timeout), sqls in groups.items()
            for i in range(min(self.num_workers, len(sqls)))
        ]
        await asyncio.gather(*(run_chunk(*chunk) for chunk in chunks))

    def run_sync(self, database: str | os.PathLike, sqls: Iterable[str], timeout: float = 5.0) -> list[SqlResult]:
        """Run `sqls` on `database` from synchronous code (outside a running event loop)."""
        queries = [Query(str(Path(database).resolve()), sql, timeout) for sql in sqls]
        asyncio.run(self.run_many(queries))
        return [self.cached(query) or SqlResult(error="not run") for query in queries]

    def _store(self, database: str, sql: str, result: SqlResult) -> None:
        self._cache[(database, sql)] = result
        self._cache.move_to_end((database, sql))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _scorable(result: SqlResult, max_rows: int) -> SqlResult:
    """Errors for results the rewards must not score: more rows than `max_rows` (the card's overflow rule) and a
    statement that returns no result set at all (a comment, an empty statement)."""
    if result.ok and result.truncated:
        return SqlResult(error=f"more than {max_rows} rows")
    if result.ok and not result.columns:
        return SqlResult(error="not a query: no result columns")
    return result
