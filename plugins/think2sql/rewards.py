"""Think2SQL's rewards as TRL reward functions on trl_ext's reward toolkit.

- `think2sql_qatch` / `think2sql_ex` (async): execute the predicted and the gold SQL in the sandbox and score the
  predicted rows against the gold rows (QATCH partial credit or execution accuracy, optionally "small-update").
  A batch's queries (gold and predicted, deduplicated) run together before the items are scored, several sandboxes
  side by side; results are cached by (database, SQL), so a gold query runs once per dataset row, not per generation.
- `think2sql_format`, `think2sql_tag_count`: the format rewards on the completion's text alone.

Both execution rewards log `sql/exec_error_rate`, `sql/timeout_rate` and `sql/ex` (EX is logged even when training
on QATCH), and `sql/gold_error_rate`: a row whose gold query fails, or whose `target_sql` is not text, or whose
`db_id` names no database file, scores None (not applicable; a missing database is also a warning, once per id).
"""

from __future__ import annotations

import logging
import os
import reprlib
from typing import Any, ClassVar

from trl_ext.rewards import (
    AsyncRewardFunction,
    Scored,
    cap_text,
    column,
    completion_text,
    reward_function,
)

from .config import Think2SQLConfig
from .database import DB_ID, database_path, default_root, ensure_database
from .executor import Query, SafeSQLiteExecutor
from .scoring import execution_accuracy, extract_sql, format_ok, qatch_score, small_update, tag_count_score

logger = logging.getLogger(__name__)


def _metrics(exec_error: float = 0.0, timeout: float = 0.0, ex: float = 0.0, gold_error: float = 0.0) -> dict:
    # Every metric for every item, so a batch without errors logs a rate of 0 rather than nothing.
    return {
        "sql/exec_error_rate": exec_error,
        "sql/timeout_rate": timeout,
        "sql/ex": ex,
        "sql/gold_error_rate": gold_error,
    }


class Think2SQLExecutionReward(AsyncRewardFunction):
    """Base of the execution rewards: `kind` picks the score ("qatch" or "ex"); options are `small_update` and the
    fields of `Think2SQLConfig` (or a whole `config`, whose `reward` then decides)."""

    kind: ClassVar[str] = "qatch"
    columns = ("target_sql", "db_id")

    def __init__(self, small_update: bool = False, config: Think2SQLConfig | None = None, **fields: Any) -> None:
        if config is None:
            if not isinstance(small_update, bool):
                raise ValueError(f"small_update={small_update!r} must be true or false")
            config = Think2SQLConfig(reward=self.kind + ("_small_update" if small_update else ""), **fields)
        elif fields:
            raise ValueError(f"give either config or its fields, not both (got {', '.join(sorted(fields))})")
        self.config = config
        self.executor = SafeSQLiteExecutor(max_rows=config.max_rows, num_workers=config.num_workers)
        self._databases: dict[str, str] = {}

    async def __call__(  # type: ignore[override]
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        items = list(completions) if isinstance(completions, (list, tuple)) else []
        n = len(items)
        db_ids = column(kwargs, "db_id", self.__name__, n)
        golds = column(kwargs, "target_sql", self.__name__, n)
        times = kwargs.get("sql_execution_time")
        times = list(times) if isinstance(times, (list, tuple)) and len(times) == n else [None] * n
        queries = []
        for item, db_id, gold, seconds in zip(items, db_ids, golds, times, strict=True):
            database, timeout = self._database(db_id), self.config.timeout_for(seconds)
            if database is None or not isinstance(gold, str):
                continue  # scored None (not applicable) by `score`
            queries.append(Query(database, gold, timeout))
            text = cap_text(completion_text(item), self.max_chars)
            if text is not None:
                queries.append(Query(database, extract_sql(text, self.config.answer_tag), timeout))
        await self.executor.run_many(queries)  # the whole batch at once; `score` then reads the cache
        return await super().__call__(prompts, completions, completion_ids, **kwargs)

    async def score(self, completion: str, **row: Any) -> Scored:  # type: ignore[override]
        database, gold_sql = self._database(row["db_id"]), row["target_sql"]
        if database is None or not isinstance(gold_sql, str):
            return Scored(None, _metrics(gold_error=1.0))
        timeout = self.config.timeout_for(row.get("sql_execution_time"))
        gold = await self.executor.run(Query(database, gold_sql, timeout))
        if not gold.ok:
            return Scored(None, _metrics(gold_error=1.0))
        predicted = await self.executor.run(Query(database, extract_sql(completion, self.config.answer_tag), timeout))
        if not predicted.ok:
            return Scored(0.0, _metrics(exec_error=1.0, timeout=float(predicted.timed_out)))
        ex = execution_accuracy(predicted.rows, gold.rows)
        reward = qatch_score(predicted.rows, gold.rows) if self.config.reward.startswith("qatch") else ex
        if self.config.reward.endswith("_small_update"):
            reward = small_update(reward, format_ok(completion, self.config.think_tag, self.config.answer_tag))
        return Scored(reward, _metrics(ex=ex))

    def _database(self, db_id: Any) -> str | None:
        """The database file of `db_id` ({db_root}/{db_id}/{db_id}.sqlite), looked up once; None (with a warning
        once per id) when the row names none that exists: its items are not applicable."""
        key = db_id if isinstance(db_id, str) else None
        if key in self._databases:
            return self._databases[key]
        path = None
        if key and os.sep not in key and key not in (".", "..") and len(key) < 256:
            root = self.config.db_root
            if root is None and key == DB_ID:
                path = ensure_database()
            else:
                path = database_path(root if root is not None else default_root(), key)
        try:
            found = str(path.resolve()) if path is not None and path.is_file() else None
        except OSError:
            found = None
        if found is None:
            logger.warning(
                "reward %r: column 'db_id' names %s, and there is no database at %s; its rows score None (set the "
                "option db_root to the folder holding {db_id}/{db_id}.sqlite)",
                self.__name__,
                reprlib.repr(db_id),
                path,
            )
        if key is not None:
            self._databases[key] = found
        return found

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "executor": SafeSQLiteExecutor(self.config.max_rows, self.config.num_workers)}


class QatchReward(Think2SQLExecutionReward):
    """R_qatch = (cell precision + cell recall + tuple cardinality) / 3 of the executed query (ERROR -> 0)."""

    name = "think2sql_qatch"
    kind = "qatch"


class ExecutionAccuracyReward(Think2SQLExecutionReward):
    """EX: 1 if the executed query returns the gold query's set of rows, else 0 (ERROR -> 0)."""

    name = "think2sql_ex"
    kind = "ex"


@reward_function(name="think2sql_format")
def think2sql_format(completion: str, *, think_tag: str = "think", answer_tag: str = "answer", **row: Any) -> float:
    """1.0 iff the completion is <think>...</think><answer>...</answer> (official regex, case-insensitive)."""
    return float(format_ok(completion, think_tag, answer_tag))


@reward_function(name="think2sql_tag_count")
def think2sql_tag_count(completion: str, *, think_tag: str = "think", answer_tag: str = "answer", **row: Any) -> float:
    """The v1 tag-count reward: 0.25 per tag line written exactly once."""
    return tag_count_score(completion, think_tag, answer_tag)
