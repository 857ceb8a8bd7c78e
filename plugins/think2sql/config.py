"""Configuration of Think2SQL's execution rewards (arXiv:2504.15077).

Think2SQL changes only the reward, so this is a plain dataclass, not a TRL config: training is TRL's `GRPOTrainer`
(the official code uses loss_type "dapo", beta 0), configured with `GRPOConfig` as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

REWARDS = ("qatch", "ex", "qatch_small_update", "ex_small_update")


@dataclass
class Think2SQLConfig:
    """Options of the [Think2SQL](https://arxiv.org/abs/2504.15077) execution reward: where the databases are, which
    score of the executed query is the reward, and the limits each query runs under."""

    db_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the databases, BIRD/Spider layout: {db_root}/{db_id}/{db_id}.sqlite. Default: the "
            "folder of `builtin:text2sql`'s database, created on first use."
        },
    )
    reward: Literal["qatch", "ex", "qatch_small_update", "ex_small_update"] = field(
        default="qatch",
        metadata={
            "help": "qatch: mean of cell precision, cell recall and tuple cardinality (the official script's "
            "reward); ex: execution accuracy (set equality of rows); *_small_update: the later code's variant, "
            "1 if the score is 1, else max(score, 0.1) when the format is right, else 0."
        },
    )
    max_rows: int = field(
        default=10_000, metadata={"help": "Rows read per query; a query returning more is an error."}
    )
    default_timeout_s: float = field(
        default=5.0,
        metadata={"help": "Gold execution time t_gold for rows without a `sql_execution_time` column (seconds)."},
    )
    max_timeout_s: float = field(
        default=500.0,
        metadata={"help": "Cap of the per-query time limit min(1.2·t_gold + 10, max_timeout_s) (seconds)."},
    )
    num_workers: int = field(
        default=2, metadata={"help": "Sandboxes that run one batch's queries side by side (per process)."}
    )
    think_tag: str = field(default="think", metadata={"help": "Tag of the reasoning span (<think>...</think>)."})
    answer_tag: str = field(default="answer", metadata={"help": "Tag of the answer span that holds the SQL."})

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r} is not one of {', '.join(REWARDS)}")
        if self.db_root is not None and not isinstance(self.db_root, (str, Path)):
            raise ValueError(f"db_root={self.db_root!r} must be a folder path or None")
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int) or self.max_rows < 1:
            raise ValueError(f"max_rows={self.max_rows!r} must be an integer >= 1")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ValueError(f"num_workers={self.num_workers!r} must be an integer >= 1")
        for name in ("default_timeout_s", "max_timeout_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"{name}={value!r} must be a finite number of seconds > 0")
        for name in ("think_tag", "answer_tag"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"{name}={value!r} must be a tag name (letters, digits, '_' or '-')")

    def timeout_for(self, gold_seconds: float | None) -> float:
        """The official per-query limit min(1.2·t_gold + 10, max_timeout_s), t_gold defaulting to
        `default_timeout_s` when the row gives none (or a value that is not a non-negative number)."""
        t_gold = gold_seconds
        if isinstance(t_gold, bool) or not isinstance(t_gold, (int, float)) or not math.isfinite(t_gold) or t_gold < 0:
            t_gold = self.default_timeout_s
        return min(1.2 * t_gold + 10.0, self.max_timeout_s)
