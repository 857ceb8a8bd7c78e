"""`builtin:text2sql`: 60 template questions with gold SQL over the built-in shop database (see `database`).

Counts, filters, aggregates and one-join questions, shuffled with the seed: 40 train, 20 held out (test). Form
`grpo`: `prompt` (system message with the answer format + user message with the schema DDL and the question),
`target_sql`, `db_id` ("shop"), the columns Think2SQL's rewards read. The database is created on first build.

GRPO in TRL 1.16 does not truncate prompts, so every prompt is kept within `MAX_PROMPT_CHARS` characters (checked
at build time): a byte-level BPE token covers at least one byte, so that bounds a prompt to as many tokens, plus the
chat template's own.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

from .database import CUSTOMERS, DB_ID, PRODUCTS, SCHEMA, ensure_database

NUM_QUESTIONS, NUM_TEST = 60, 20
MAX_PROMPT_CHARS = 1200
SYSTEM_PROMPT = (
    "You translate questions into SQLite queries. Think step by step inside <think> </think>, then give the query "
    "inside <answer> </answer> as a ```sql code block."
)


def _questions() -> list[tuple[str, str]]:
    """Every template question with its gold SQL, in a fixed order."""
    cities = sorted({city for _, _, city, _ in CUSTOMERS})
    categories = sorted({category for _, _, category, _ in PRODUCTS})
    customers = [name for _, name, _, _ in CUSTOMERS]
    products = [name for _, name, _, _ in PRODUCTS]
    out = []
    out += [(f"How many customers live in {c}?", f"SELECT COUNT(*) FROM customers WHERE city = '{c}'") for c in cities]
    out += [
        (f"List the names of customers older than {a}.", f"SELECT name FROM customers WHERE age > {a}")
        for a in (25, 35, 40, 50)
    ]
    out += [
        (f"How many products are in the {c} category?", f"SELECT COUNT(*) FROM products WHERE category = '{c}'")
        for c in categories
    ]
    out += [
        (f"What is the average price of {c} products?", f"SELECT AVG(price) FROM products WHERE category = '{c}'")
        for c in categories
    ]
    out += [
        (f"Which products cost less than {p}?", f"SELECT name FROM products WHERE price < {p}") for p in (15, 20, 50)
    ]
    out += [
        (
            f"How many orders did {name} place?",
            "SELECT COUNT(*) FROM orders JOIN customers ON orders.customer_id = customers.id "
            f"WHERE customers.name = '{name}'",
        )
        for name in customers
    ]
    out += [
        (
            f"What is the total quantity ordered of the {name}?",
            "SELECT SUM(orders.quantity) FROM orders JOIN products ON orders.product_id = products.id "
            f"WHERE products.name = '{name}'",
        )
        for name in products
    ]
    out += [
        (
            f"List the dates of orders placed by customers from {c}.",
            "SELECT orders.order_date FROM orders JOIN customers ON orders.customer_id = customers.id "
            f"WHERE customers.city = '{c}'",
        )
        for c in cities
    ]
    out += [
        (f"What is the age of {name}?", f"SELECT age FROM customers WHERE name = '{name}'") for name in customers[:6]
    ]
    out += [
        (f"What is the price of the {name}?", f"SELECT price FROM products WHERE name = '{name}'")
        for name in products[:5]
    ]
    out += [
        (f"How many orders have a quantity of at least {q}?", f"SELECT COUNT(*) FROM orders WHERE quantity >= {q}")
        for q in (2, 3)
    ]
    return out


def prompt_messages(question: str) -> list[dict[str, str]]:
    user = f"Database schema:\n{SCHEMA}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _row(question: str, sql: str) -> dict:
    prompt = prompt_messages(question)
    size = sum(len(message["content"]) for message in prompt)
    if size > MAX_PROMPT_CHARS:  # a guard on the templates above, not on user data
        raise AssertionError(f"builtin:text2sql prompt of {size} characters exceeds {MAX_PROMPT_CHARS}: {question!r}")
    return {"prompt": prompt, "target_sql": sql, "db_id": DB_ID}


def build(form: str = "grpo", seed: int = 0) -> DatasetDict:
    """train (40 questions) / test (20 held out), questions shuffled with `seed`; creates the database if absent."""
    if form != "grpo":
        raise ValueError(f"builtin:text2sql has the form grpo, not {form!r}")
    ensure_database()
    questions = _questions()
    assert len(questions) == NUM_QUESTIONS, len(questions)
    random.Random(seed).shuffle(questions)
    rows = [_row(question, sql) for question, sql in questions]
    return DatasetDict({"train": Dataset.from_list(rows[NUM_TEST:]), "test": Dataset.from_list(rows[:NUM_TEST])})
