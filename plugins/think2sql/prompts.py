"""`text2sql_prompt`: BIRD/Spider-style rows -> Think2SQL's GRPO rows, each prompt within a token budget.

Input rows: `question`, `db_id`, the gold SQL in `SQL` (BIRD) or `query` (Spider) or `target_sql`, and BIRD's
optional `evidence`. Output: `prompt` (a system message with the answer format, then a user message with the schema
DDL, the question and the evidence), `target_sql`, `db_id`; the other columns are kept.

The schema is read from `{db_root}/{db_id}/{db_id}.sqlite`, opened read-only (`mode=ro&immutable=1`), and written one
`CREATE TABLE` line per table from `PRAGMA table_info` / `foreign_key_list` (column names, types, primary keys,
foreign keys as inline `REFERENCES`): the same shape as `builtin:text2sql`'s prompts.

GRPO in TRL 1.16 does not truncate prompts, so each prompt is bounded to `max_prompt_tokens`: measured with
`tokenizer` (the chat template applied with its generation prompt, exactly what GRPO feeds the model) when one is
given, else estimated as ceil(UTF-8 bytes of the messages / `chars_per_token`) + `TEMPLATE_TOKENS` per message.
The default 3.0 bytes per token is an estimate (SQL DDL and English run at 3-4 with SmolLM2's and Qwen's
tokenizers); `chars_per_token=1` is a guaranteed bound for byte-level BPE tokenizers, whose tokens each cover at least
one byte. A prompt over budget has its schema trimmed, never its question or evidence, one piece at a time until it
fits: (1) tables neither the gold SQL nor the question mention, last first; (2) columns that are not mentioned and
not keys, of the question's tables and then of the gold SQL's; (3) tables only the question mentions; (4) unmentioned
key columns of the gold SQL's tables. Every table keeps at least one column. A row that still does not fit (its
question, or the gold SQL's tables and columns, are too long) is dropped and counted (`on_overflow=drop`, the
default) or refused with an error naming it (`on_overflow=error`).
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import SYSTEM_PROMPT
from .database import database_path, default_root, ensure_database

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROMPT_TOKENS = 1024
DEFAULT_CHARS_PER_TOKEN = 3.0
TEMPLATE_TOKENS = 8  # per message, for the chat template's role markers when estimating
GOLD_COLUMNS = ("SQL", "query", "target_sql")  # BIRD, Spider, already converted
_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|`([^`]+)`|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*)')
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class PromptBudgetError(ValueError):
    pass


@dataclass
class Column:
    name: str
    type: str
    primary_key: bool
    references: str | None  # "table(column)"

    @property
    def key(self) -> bool:
        return self.primary_key or self.references is not None

    def ddl(self) -> str:
        text = " ".join(part for part in (_quote(self.name), self.type) if part)
        if self.primary_key:
            text += " PRIMARY KEY"
        if self.references:
            text += f" REFERENCES {self.references}"
        return text


@dataclass
class Table:
    name: str
    columns: list[Column] = field(default_factory=list)

    def ddl(self, keep: list[Column] | None = None) -> str:
        return f"CREATE TABLE {_quote(self.name)} ({', '.join(c.ddl() for c in (keep or self.columns))});"


def _quote(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def read_schema(path: Path) -> list[Table]:
    """The tables of the SQLite file at `path` (read-only), in creation order, internal `sqlite_*` tables left out."""
    if not path.is_file():
        raise FileNotFoundError(
            f"text2sql_prompt: no database at {path} (expected {{db_root}}/{{db_id}}/{{db_id}}.sqlite)"
        )
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        tables = []
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            # foreign_key_list rows: (id, seq, table, from, to, ...); `to` is NULL for a reference to the primary key
            refs = {
                row[3]: _quote(row[2]) + (f"({_quote(row[4])})" if row[4] else "")
                for row in connection.execute(f"PRAGMA foreign_key_list({quoted})")
            }
            columns = [
                Column(row[1], row[2] or "", bool(row[5]), refs.get(row[1]))
                for row in connection.execute(f"PRAGMA table_info({quoted})")
            ]
            tables.append(Table(name, columns))
        return tables
    finally:
        connection.close()


def sql_identifiers(sql: str) -> set[str]:
    """The identifiers of `sql`, lower-cased: bare words and "quoted", `backquoted` and [bracketed] names."""
    found = set()
    for match in _IDENTIFIER.finditer(re.sub(r"'(?:[^']|'')*'", " ", sql)):  # string literals are not names
        quoted, back, bracket, bare = match.groups()
        found.add((quoted.replace('""', '"') if quoted else back or bracket or bare).lower())
    return found


def _mentioned_in_text(name: str, text: str) -> bool:
    variants = {name.lower(), name.lower().replace("_", " ")}
    return any(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text) for v in variants if v)


class PromptMeasure:
    """Tokens of a conversational prompt: with `tokenizer`, its chat template with the generation prompt (plain
    concatenated contents for a tokenizer without a template); else the documented bytes-per-token estimate."""

    def __init__(self, tokenizer: Any = None, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN):
        if not chars_per_token or chars_per_token <= 0:
            raise ValueError(f"text2sql_prompt: chars_per_token must be > 0, got {chars_per_token!r}")
        self.tokenizer, self.chars_per_token = tokenizer, float(chars_per_token)

    def text(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text.encode("utf-8")) / self.chars_per_token)

    def messages(self, messages: list[dict[str, str]]) -> int:
        if self.tokenizer is None:
            return sum(self.text(m["content"]) + TEMPLATE_TOKENS for m in messages)
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            return len(ids)
        return self.text("\n".join(m["content"] for m in messages))


def _messages(system_prompt: str, schema: str, question: str, evidence: str | None) -> list[dict[str, str]]:
    user = f"Database schema:\n{schema}\n\nQuestion: {question}"
    if evidence:
        user += f"\nHint: {evidence}"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def bounded_prompt(
    tables: list[Table],
    question: str,
    gold_sql: str,
    evidence: str | None,
    *,
    max_tokens: int,
    measure: PromptMeasure,
    system_prompt: str = SYSTEM_PROMPT,
) -> tuple[list[dict[str, str]] | None, bool]:
    """(the prompt, whether its schema was trimmed), or (None, True) when even the smallest schema does not fit."""
    gold = sql_identifiers(gold_sql)
    text = f"{question}\n{evidence or ''}".lower()
    gold_tables = [t for t in tables if t.name.lower() in gold]
    question_tables = [t for t in tables if t not in gold_tables and _mentioned_in_text(t.name, text)]
    others = [t for t in tables if t not in gold_tables and t not in question_tables]

    def mentioned(column: Column) -> bool:
        return column.name.lower() in gold or _mentioned_in_text(column.name, text)

    # Schema in its display order (creation order); removal order: the steps in the module docstring.
    kept: dict[str, list[Column]] = {t.name: list(t.columns) for t in tables}
    removals: list[tuple[str, str | None]] = [(t.name, None) for t in reversed(others)]
    for group in (question_tables, gold_tables):
        for t in reversed(group):
            removals += [(t.name, c.name) for c in reversed(t.columns) if not mentioned(c) and not c.key]
    removals += [(t.name, None) for t in reversed(question_tables)]
    for t in reversed(gold_tables):
        removals += [(t.name, c.name) for c in reversed(t.columns) if not mentioned(c) and c.key]

    def render() -> list[dict[str, str]]:
        schema = "\n".join(t.ddl(kept[t.name]) for t in tables if t.name in kept)
        return _messages(system_prompt, schema, question, evidence)

    prompt = render()
    size = measure.messages(prompt)
    trimmed = False
    queue = list(removals)
    while size > max_tokens:
        if not queue:
            return None, True
        # Remove pieces until their estimated size covers the excess, then measure the whole prompt again.
        excess, freed = size - max_tokens, 0
        while queue and freed < excess:
            table, column = queue.pop(0)
            if table not in kept:
                continue
            if column is None:
                freed += measure.text(next(t for t in tables if t.name == table).ddl(kept.pop(table)))
            elif len(kept[table]) > 1:
                gone = next(c for c in kept[table] if c.name == column)
                kept[table] = [c for c in kept[table] if c is not gone]
                freed += measure.text(gone.ddl()) + 1
        trimmed = True
        prompt = render()
        size = measure.messages(prompt)
    return prompt, trimmed


def _gold_column(columns: list[str], gold_column: str | None) -> str:
    if gold_column:
        if gold_column not in columns:
            raise ValueError(f"text2sql_prompt: gold_column {gold_column!r} is not a column ({', '.join(columns)})")
        return gold_column
    for name in GOLD_COLUMNS:
        if name in columns:
            return name
    raise ValueError(
        f"text2sql_prompt needs the gold SQL in one of {', '.join(GOLD_COLUMNS)} (or name it with gold_column); "
        f"columns: {', '.join(columns)}"
    )


def text2sql_prompt(
    db_root: str | None = None,
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
    tokenizer: Any = None,
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN,
    on_overflow: str = "drop",
    gold_column: str | None = None,
    system_prompt: str = SYSTEM_PROMPT,
):
    """Build the transform `fn(dataset) -> dataset` (a `datasets.Dataset` or `DatasetDict`). `tokenizer`: a
    tokenizer, or a model name or folder to load one from (`smollm2-135m`); `fn.summary` holds the last call's
    counts (rows, trimmed, dropped over budget, longest prompt in tokens)."""
    if on_overflow not in ("drop", "error"):
        raise ValueError(f"text2sql_prompt: on_overflow must be 'drop' or 'error', got {on_overflow!r}")
    if int(max_prompt_tokens) <= 0:
        raise ValueError(f"text2sql_prompt: max_prompt_tokens must be > 0, got {max_prompt_tokens!r}")
    if isinstance(tokenizer, str):
        from trl_ext.models import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    measure = PromptMeasure(tokenizer, chars_per_token)
    if db_root:
        root = Path(db_root)
    else:  # builtin:text2sql's folder, with its database written if absent
        ensure_database()
        root = default_root()
    schemas: dict[str, list[Table]] = {}

    def convert(row: dict[str, Any], gold: str) -> dict[str, Any]:
        db_id, question = row["db_id"], row["question"]
        if db_id not in schemas:
            schemas[db_id] = read_schema(database_path(root, db_id))
        prompt, trimmed = bounded_prompt(
            schemas[db_id],
            str(question),
            str(row[gold] or ""),
            row.get("evidence") or None,
            max_tokens=int(max_prompt_tokens),
            measure=measure,
            system_prompt=system_prompt,
        )
        if prompt is None and on_overflow == "error":
            raise PromptBudgetError(
                f"text2sql_prompt: the question {question!r} (db {db_id!r}) does not fit in {max_prompt_tokens} tokens "
                "even with the schema cut to the gold SQL's tables; raise max_prompt_tokens or pass on_overflow=drop"
            )
        return {
            "prompt": prompt or [],
            "target_sql": str(row[gold] or ""),
            "db_id": db_id,
            "_fits": prompt is not None,
            "_trimmed": trimmed and prompt is not None,
            "_tokens": measure.messages(prompt) if prompt is not None else 0,
        }

    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        gold = _gold_column(dataset.column_names, gold_column)
        drop = [c for c in ("question", "evidence", gold, "prompt") if c in dataset.column_names and c != "db_id"]
        out = dataset.map(convert, fn_kwargs={"gold": gold}, remove_columns=drop)
        fits = out["_fits"]
        dropped = len(fits) - sum(fits)
        transform.summary = {
            "rows": len(fits),
            "schemas trimmed to fit": sum(out["_trimmed"]),
            "rows dropped over budget": dropped,
            "longest prompt (tokens)": max(out["_tokens"], default=0),
            "budget (tokens)": int(max_prompt_tokens),
            "measured with": "the tokenizer" if tokenizer is not None else f"{chars_per_token:g} bytes per token",
        }
        if dropped:
            logger.warning(
                "text2sql_prompt: dropped %d of %d rows whose question and gold tables do not fit in %d tokens",
                dropped,
                len(fits),
                int(max_prompt_tokens),
            )
            out = out.filter(lambda ok: ok, input_columns="_fits")
        return out.remove_columns(["_fits", "_trimmed", "_tokens"])

    transform.summary = {}
    return transform
