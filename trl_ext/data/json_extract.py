"""Text -> JSON extraction tasks generated in code, for structured-output RL (rlstruct) without a download.

Each row carries its schema and gold object as JSON strings, so rewards can check validity, schema conformance and
field accuracy. Some rows ("gsm8k_json") ask for an arith solution as {"reasoning", "answer"}, graded on the answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from datasets import Dataset, DatasetDict

from . import arith

SYSTEM_PROMPT = "Reply with a single JSON object only, no prose, no code fences."
FORMS = ("grpo", "sft")
MATH_SCHEMA = {"reasoning": "str", "answer": "number"}
MATH_FRACTION = 4  # one row in four is a gsm8k_json row

_FIRST = ["Alice", "Omar", "Mei", "Jonas", "Priya", "Carlos", "Hana", "Lukas", "Amara", "Tomas", "Ines", "Yusuf"]
_LAST = ["Moreno", "Haddad", "Chen", "Berg", "Nair", "Silva", "Sato", "Weber", "Okafor", "Novak", "Costa", "Demir"]
_CITIES = ["Lisbon", "Porto", "Oslo", "Kyoto", "Lyon", "Austin", "Krakow", "Nairobi", "Quito", "Perth", "Graz"]
_PRODUCTS = [
    "Aurora desk lamp",
    "Trail backpack",
    "Nimbus kettle",
    "Echo headphones",
    "Pico camera",
    "Zen mug",
    "Atlas notebook",
    "Orbit speaker",
    "Terra planter",
    "Vela umbrella",
]
_EVENTS = [
    "Harbor Jazz Festival",
    "City Chess Open",
    "Spring Book Fair",
    "Robotics Summit",
    "Night Market",
    "Coastal Marathon",
    "Film Week",
    "Maker Expo",
    "Poetry Slam",
    "Food Truck Rally",
]
_DISHES = {
    "tomato soup": ["tomatoes", "onion", "garlic", "basil"],
    "pancakes": ["flour", "milk", "eggs", "sugar"],
    "guacamole": ["avocado", "lime", "onion", "salt"],
    "fried rice": ["rice", "eggs", "peas", "soy sauce"],
    "lentil stew": ["lentils", "carrot", "cumin", "onion"],
    "pesto pasta": ["pasta", "basil", "pine nuts"],
}
_ITEMS = ["vase", "laptop", "box of books", "guitar", "mirror", "bicycle wheel", "tea set", "printer"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _person(rng: random.Random):
    name, age, city = _name(rng), rng.randint(18, 90), rng.choice(_CITIES)
    text = rng.choice(
        [f"{name} is {age} years old and lives in {city}.", f"Born {age} years ago, {name} now calls {city} home."]
    )
    return "person", {"name": "str", "age": "int", "city": "str"}, {"name": name, "age": age, "city": city}, text


def _product(rng: random.Random):
    name, price, in_stock = rng.choice(_PRODUCTS), rng.randint(199, 29999) / 100, rng.random() < 0.5
    stock = "is currently in stock" if in_stock else "is sold out at the moment"
    text = rng.choice(
        [f"The {name} costs ${price:.2f} and {stock}.", f"Price of the {name}: ${price:.2f}. It {stock}."]
    )
    gold = {"name": name, "price": price, "in_stock": in_stock}
    return "product", {"name": "str", "price": "float", "in_stock": "bool"}, gold, text


def _event(rng: random.Random):
    title, year, attendees = rng.choice(_EVENTS), rng.randint(1990, 2025), rng.randint(20, 20000)
    text = rng.choice(
        [
            f"The {title} took place in {year} and drew {attendees} attendees.",
            f"{attendees} people attended the {year} edition of the {title}.",
        ]
    )
    gold = {"title": title, "year": year, "attendees": attendees}
    return "event", {"title": "str", "year": "int", "attendees": "int"}, gold, text


def _contact(rng: random.Random):
    name, city, zip_code = _name(rng), rng.choice(_CITIES), f"{rng.randint(1000, 99999):05d}"
    text = rng.choice(
        [
            f"Please send the parcel to {name}, {zip_code} {city}.",
            f"{name} moved to {city}; the new postal code is {zip_code}.",
        ]
    )
    gold = {"name": name, "address": {"city": city, "zip": zip_code}}
    return "contact", {"name": "str", "address": {"city": "str", "zip": "str"}}, gold, text


def _recipe(rng: random.Random):
    dish = rng.choice(sorted(_DISHES))
    ingredients, minutes = _DISHES[dish], rng.randint(5, 120)
    listed = ", ".join(ingredients[:-1]) + f" and {ingredients[-1]}"
    text = rng.choice(
        [
            f"To make {dish} you need {listed}; it takes about {minutes} minutes.",
            f"{dish.capitalize()} ({minutes} minutes): {listed}.",
        ]
    )
    gold = {"dish": dish, "ingredients": list(ingredients), "minutes": minutes}
    return "recipe", {"dish": "str", "ingredients": "list", "minutes": "int"}, gold, text


def _parcel(rng: random.Random):
    item, fragile = rng.choice(_ITEMS), rng.random() < 0.5
    weight = rng.choice([rng.randint(1, 40), rng.randint(1, 400) / 10])
    care = "Handle with care, it is fragile." if fragile else "It is not fragile."
    text = f"The shipment is a {item} weighing {weight} kg. {care}"
    gold = {"item": item, "weight_kg": weight, "fragile": fragile}
    return "parcel", {"item": "str", "weight_kg": "number", "fragile": "bool"}, gold, text


_FAMILIES: list[Callable] = [_person, _product, _event, _contact, _recipe, _parcel]


def _dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _messages(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _generic_rows(n: int, rng: random.Random) -> list[dict]:
    rows, seen = [], set()
    while len(rows) < n:
        what, schema, gold, text = rng.choice(_FAMILIES)(rng)
        schema_str = json.dumps(schema)
        user = (
            f"Extract the {what} described in the text as a JSON object matching the schema.\n"
            f"Schema: {schema_str}\nText: {text}"
        )
        if user in seen:
            continue
        seen.add(user)
        rows.append(
            {
                "prompt": _messages(user),
                "schema": schema_str,
                "gold": _dumps(gold),
                "task": "generic",
                "completion": [{"role": "assistant", "content": _dumps(gold)}],
            }
        )
    return rows


def _math_row(problem: arith.Problem) -> dict:
    schema_str = json.dumps(MATH_SCHEMA)
    user = (
        f"Solve the problem and give your reasoning and the final numeric answer as a JSON object matching the "
        f"schema.\nSchema: {schema_str}\nText: {problem.question}"
    )
    solution = {"reasoning": problem.reasoning, "answer": problem.answer}
    return {
        "prompt": _messages(user),
        "schema": schema_str,
        "gold": _dumps({"answer": problem.answer}),
        "task": "gsm8k_json",
        "completion": [{"role": "assistant", "content": _dumps(solution)}],
    }


def build(form: str = "grpo", seed: int = 0, n_train: int = 400, n_test: int = 100) -> DatasetDict:
    """Train and test splits, about one row in four a gsm8k_json row; form "sft" adds a `completion` column."""
    if form not in FORMS:
        raise ValueError(f"json_extract has no form {form!r}; available: {', '.join(FORMS)}")
    rng = random.Random(seed)
    m_train, m_test = n_train // MATH_FRACTION, n_test // MATH_FRACTION
    generic = _generic_rows(n_train - m_train + n_test - m_test, rng)
    math = [_math_row(p) for p in arith.problems(m_train + m_test, seed)]
    splits = {
        "train": generic[: n_train - m_train] + math[:m_train],
        "test": generic[n_train - m_train :] + math[m_train:],
    }
    for rows in splits.values():
        rng.shuffle(rows)
        if form != "sft":
            for row in rows:
                del row["completion"]
    return DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()})
