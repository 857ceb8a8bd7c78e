"""think2sql's `text2sql_prompt` transform on hand-built BIRD/Spider-layout databases: the schema DDL, the token
budget (measured independently here), the question never cut, the gold SQL's tables kept, overflow rows counted and
dropped or refused, through `trl-ext transform`."""

import hashlib
import json
import math
import sqlite3

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.testing import tiny_grpo_flags, train_argv
from trl_ext_plugins.think2sql.prompts import PromptBudgetError, sql_identifiers, text2sql_prompt

QUESTION = "Which singers from France performed at a concert in 2019?"
GOLD = (
    "SELECT DISTINCT singer.name FROM singer JOIN concert ON concert.singer_id = singer.singer_id "
    "WHERE singer.country = 'France' AND concert.year = 2019"
)
SINGER = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, biography TEXT);"
CONCERT = (
    "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer(singer_id), "
    "venue TEXT, year INTEGER);"
)
# Unrelated tables that make the full schema long (30 columns each)
FILLERS = [
    f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{name}_attribute_{i} TEXT" for i in range(30))
    + ");"
    for name in ("warehouse", "payroll", "shipment")
]


def _database(root, db_id, statements):
    path = root / db_id / f"{db_id}.sqlite"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    return path


@pytest.fixture
def db_root(tmp_path):
    root = tmp_path / "databases"
    _database(root, "music", [SINGER, CONCERT, *FILLERS])
    _database(root, "tiny", ['CREATE TABLE "daily sales" ("Store Id" INTEGER, amount REAL)'])
    return root


def _estimate(messages, chars_per_token=3.0):
    """The documented estimate, computed here by hand: ceil(UTF-8 bytes / chars_per_token) + 8 per message."""
    return sum(math.ceil(len(m["content"].encode()) / chars_per_token) + 8 for m in messages)


def _rows(**extra):
    return Dataset.from_list([{"question": QUESTION, "db_id": "music", "SQL": GOLD, "difficulty": "simple", **extra}])


def test_full_schema_when_it_fits(db_root):
    fn = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=100_000)
    row = fn(_rows(evidence="France refers to country = 'France'"))[0]
    assert set(row) == {"prompt", "target_sql", "db_id", "difficulty"}
    assert (row["target_sql"], row["db_id"], row["difficulty"]) == (GOLD, "music", "simple")
    system, user = row["prompt"]
    assert system["role"] == "system" and "<answer>" in system["content"]
    expected_schema = "\n".join([SINGER, CONCERT, *FILLERS])
    assert user == {
        "role": "user",
        "content": f"Database schema:\n{expected_schema}\n\nQuestion: {QUESTION}\n"
        "Hint: France refers to country = 'France'",
    }
    assert fn.summary["schemas trimmed to fit"] == 0 and fn.summary["rows dropped over budget"] == 0


@pytest.mark.parametrize("budget", [400, 250, 155])
def test_budget_respected_question_and_gold_tables_kept(db_root, budget):
    full = _estimate(text2sql_prompt(db_root=str(db_root), max_prompt_tokens=100_000)(_rows())[0]["prompt"])
    assert full > 1000  # the fillers make the full schema far over every budget here
    fn = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=budget)
    out = fn(_rows())
    assert len(out) == 1 and fn.summary["schemas trimmed to fit"] == 1
    prompt = out[0]["prompt"]
    assert _estimate(prompt) <= budget
    user = prompt[1]["content"]
    assert user.endswith(f"\n\nQuestion: {QUESTION}")  # the question whole, last
    assert "CREATE TABLE singer (" in user and "CREATE TABLE concert (" in user
    for column in ("singer.name", "country", "year", "singer_id"):  # the columns the gold SQL names
        assert column.split(".")[-1] in user.split("\n\nQuestion")[0]
    assert "warehouse" not in user and "payroll" not in user and "shipment" not in user


def test_unmentioned_columns_go_before_gold_tables(db_root):
    """At a budget where only the two gold tables fit with their named columns, `biography`, `age`, `venue` (named
    by neither the SQL nor the question) and then the key `concert_id` are dropped; every column the SQL names stays.
    The smallest prompt is 152 tokens by the estimate computed here: one less than that and the row cannot fit."""
    prompt = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=160)(_rows())[0]["prompt"]
    schema = prompt[1]["content"].split("\n\nQuestion")[0]
    assert schema.splitlines()[1:] == [
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT);",
        "CREATE TABLE concert (singer_id INTEGER REFERENCES singer(singer_id), year INTEGER);",
    ]
    assert _estimate(prompt) == 152
    fn = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=151)
    assert len(fn(_rows())) == 0 and fn.summary["rows dropped over budget"] == 1


def test_with_a_tokenizer_the_chat_template_is_measured(db_root):
    from trl_ext.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    fn = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=200, tokenizer=tokenizer)
    prompt = fn(_rows())[0]["prompt"]
    ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert len(ids) <= 200
    assert QUESTION in prompt[1]["content"] and "CREATE TABLE concert" in prompt[1]["content"]
    assert fn.summary["measured with"] == "the tokenizer"


def test_rows_that_cannot_fit_are_counted_and_dropped_or_refused(db_root):
    long_question = "Which singer " + "really " * 400 + "sang?"
    rows = Dataset.from_list(
        [
            {"question": QUESTION, "db_id": "music", "SQL": GOLD},
            {"question": long_question, "db_id": "music", "SQL": "SELECT name FROM singer"},
        ]
    )
    fn = text2sql_prompt(db_root=str(db_root), max_prompt_tokens=300)
    out = fn(rows)
    assert [r["target_sql"] for r in out] == [GOLD]
    assert fn.summary["rows dropped over budget"] == 1 and fn.summary["rows"] == 2
    with pytest.raises(PromptBudgetError, match="does not fit in 300 tokens"):
        text2sql_prompt(db_root=str(db_root), max_prompt_tokens=300, on_overflow="error")(rows)


def test_spider_query_column_quoted_names_and_the_database_is_untouched(db_root):
    path = db_root / "tiny" / "tiny.sqlite"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = Dataset.from_list(
        [{"question": "Total sales?", "db_id": "tiny", "query": 'SELECT SUM(amount) FROM "daily sales"'}]
    )
    row = text2sql_prompt(db_root=str(db_root))(rows)[0]
    assert row["target_sql"] == 'SELECT SUM(amount) FROM "daily sales"'
    assert 'CREATE TABLE "daily sales" ("Store Id" INTEGER, amount REAL);' in row["prompt"][1]["content"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sql_identifiers("SELECT \"Store Id\", [x y], `z` FROM t WHERE a = 'not_a_name'") == {
        "select",
        "store id",
        "x y",
        "z",
        "from",
        "t",
        "where",
        "a",
    }


def test_missing_database_and_gold_column_are_named(db_root):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        text2sql_prompt(db_root=str(db_root))(Dataset.from_list([{"question": "q", "db_id": "nowhere", "SQL": "x"}]))
    with pytest.raises(ValueError, match="SQL, query, target_sql"):
        text2sql_prompt(db_root=str(db_root))(Dataset.from_list([{"question": "q", "db_id": "music"}]))


def test_through_the_transform_cli(db_root, tmp_path, capsys):
    source = tmp_path / "bird.jsonl"
    rows = [
        {"question": QUESTION, "db_id": "music", "SQL": GOLD, "evidence": ""},
        {
            "question": "Which singer " + "really " * 400 + "sang?",
            "db_id": "music",
            "SQL": "SELECT name FROM singer",
            "evidence": "",
        },
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "transform",
            "text2sql_prompt",
            "--dataset_name",
            str(source),
            "--db_root",
            str(db_root),
            "--max_prompt_tokens",
            "250",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 rows -> 1 rows" in printed and "rows dropped over budget: 1" in printed
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 1 and written[0]["target_sql"] == GOLD
    assert _estimate(written[0]["prompt"]) <= 250
    assert written[0]["prompt"][1]["content"].endswith(f"Question: {QUESTION}")


def test_train_grpo_on_bird_style_rows_through_the_transform(tiny_model_dir, tmp_path, capfd):
    """`trl-ext train grpo --transforms text2sql_prompt ...` on BIRD-style rows over builtin:text2sql's database
    (the transform's and the rewards' default db_root), with a budget that trims the schema."""
    source = tmp_path / "shop.jsonl"
    rows = [
        {
            "question": "How many customers live in Paris?",
            "db_id": "shop",
            "SQL": "SELECT COUNT(*) FROM customers WHERE city = 'Paris'",
            "evidence": "",
        },
        {
            "question": "Which products cost less than 20?",
            "db_id": "shop",
            "SQL": "SELECT name FROM products WHERE price < 20",
            "evidence": "cost refers to price",
        },
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            str(source),
            "--transforms",
            "text2sql_prompt:max_prompt_tokens=150",
            "--rewards",
            "think2sql_qatch,think2sql_format",
            *tiny_grpo_flags(),
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    assert "rewards/think2sql_qatch/mean" in out
    assert "'sql/gold_error_rate': '0'" in out  # every gold query ran on the database the transform read
