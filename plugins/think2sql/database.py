"""The SQLite database of `builtin:text2sql`: a tiny shop (3 tables, 50 rows) written in code, deterministic.

It is created on first use under the trl-ext cache (`$TRL_EXT_CACHE/datasets/text2sql/shop/shop.sqlite`, BIRD's
{db_root}/{db_id}/{db_id}.sqlite layout), written to a temporary file and moved into place so that processes
building it at once never see half a file. Standard library only: the rewards import it without `datasets`.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

DB_ID = "shop"
SCHEMA_VERSION = 1  # stored as PRAGMA user_version; bump it when the rows below change

SCHEMA = """CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, age INTEGER);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
  product_id INTEGER REFERENCES products(id), quantity INTEGER, order_date TEXT);"""

CUSTOMERS = [
    (1, "Ana", "Lisbon", 34),
    (2, "Ben", "Oslo", 28),
    (3, "Chloe", "Paris", 45),
    (4, "Dev", "Lisbon", 22),
    (5, "Eva", "Berlin", 31),
    (6, "Finn", "Oslo", 52),
    (7, "Gia", "Paris", 39),
    (8, "Hugo", "Berlin", 27),
    (9, "Iris", "Lisbon", 61),
    (10, "Jon", "Madrid", 19),
    (11, "Kim", "Madrid", 44),
    (12, "Leo", "Paris", 36),
]
PRODUCTS = [
    (1, "kettle", "kitchen", 25.0),
    (2, "toaster", "kitchen", 40.0),
    (3, "blender", "kitchen", 65.5),
    (4, "lamp", "home", 18.0),
    (5, "rug", "home", 120.0),
    (6, "pillow", "home", 12.5),
    (7, "novel", "books", 9.99),
    (8, "atlas", "books", 30.0),
    (9, "headphones", "electronics", 89.0),
    (10, "charger", "electronics", 15.0),
]
# (customer_id, product_id, quantity, order_date); ids 1..28 in order.
_ORDERS = [
    (1, 1, 1, "2024-01-03"),
    (1, 7, 2, "2024-01-15"),
    (2, 9, 1, "2024-01-20"),
    (3, 5, 1, "2024-02-01"),
    (3, 4, 2, "2024-02-02"),
    (3, 8, 1, "2024-02-10"),
    (4, 10, 3, "2024-02-14"),
    (5, 2, 1, "2024-02-20"),
    (5, 6, 4, "2024-03-01"),
    (6, 3, 1, "2024-03-05"),
    (6, 9, 1, "2024-03-06"),
    (7, 7, 5, "2024-03-10"),
    (7, 1, 1, "2024-03-12"),
    (8, 10, 2, "2024-03-18"),
    (9, 5, 1, "2024-04-02"),
    (9, 6, 2, "2024-04-03"),
    (9, 8, 1, "2024-04-09"),
    (10, 9, 1, "2024-04-15"),
    (11, 2, 2, "2024-04-20"),
    (11, 4, 1, "2024-05-01"),
    (12, 3, 1, "2024-05-05"),
    (12, 7, 3, "2024-05-06"),
    (2, 1, 1, "2024-05-10"),
    (4, 6, 1, "2024-05-15"),
    (5, 8, 2, "2024-05-20"),
    (8, 9, 1, "2024-06-01"),
    (1, 10, 1, "2024-06-03"),
    (6, 4, 2, "2024-06-07"),
]
ORDERS = [(i, *order) for i, order in enumerate(_ORDERS, start=1)]


def default_root() -> Path:
    """The db_root of the built-in database (the trl-ext cache; `TRL_EXT_CACHE` moves it)."""
    cache = Path(os.environ.get("TRL_EXT_CACHE", Path.home() / ".cache" / "trl-ext"))
    return cache / "datasets" / "text2sql"


def database_path(root: str | os.PathLike, db_id: str) -> Path:
    """BIRD/Spider layout: {root}/{db_id}/{db_id}.sqlite."""
    return Path(root) / db_id / f"{db_id}.sqlite"


def ensure_database(root: str | os.PathLike | None = None) -> Path:
    """The built-in database file under `root` (default `default_root()`), created if absent or of another version."""
    path = database_path(root if root is not None else default_root(), DB_ID)
    if path.is_file() and _version(path) == SCHEMA_VERSION:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".shop-", suffix=".sqlite", dir=path.parent)
    os.close(handle)
    try:
        connection = sqlite3.connect(temporary)
        with connection:
            connection.executescript(SCHEMA)
            connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", CUSTOMERS)
            connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", PRODUCTS)
            connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.close()
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _version(path: Path) -> int | None:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return connection.execute("PRAGMA user_version").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:
        return None
