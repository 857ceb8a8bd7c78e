"""`builtin:loramoe_mix`: the card's demo mixture, generated in code. World-knowledge closed-book QA (task_type 1:
capitals, facts a small instruct model already answers) mixed 1:5 with format-heavy instructions (task_type 0: JSON,
lists, case and order rewrites) whose answers need no world knowledge. The test split holds knowledge questions about
countries never seen in training (the forgetting probe) and format items."""

from __future__ import annotations

import json
import random

from datasets import Dataset, DatasetDict

FORMS = ("sft",)

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Greece", "Athens"),
    ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Ireland", "Dublin"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Hungary", "Budapest"),
    ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Thailand", "Bangkok"), ("Kenya", "Nairobi"),
    ("Peru", "Lima"), ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"), ("Cuba", "Havana"),
    ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("India", "New Delhi"), ("Chile", "Santiago"),
    ("Colombia", "Bogota"), ("Australia", "Canberra"), ("South Korea", "Seoul"), ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"), ("Philippines", "Manila"), ("Ukraine", "Kyiv"), ("Czech Republic", "Prague"),
    ("Switzerland", "Bern"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"),
    ("Morocco", "Rabat"), ("Nigeria", "Abuja"), ("Ethiopia", "Addis Ababa"), ("Saudi Arabia", "Riyadh"),
    ("Pakistan", "Islamabad"), ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"), ("Venezuela", "Caracas"),
    ("Iceland", "Reykjavik"), ("New Zealand", "Wellington"), ("Scotland", "Edinburgh"), ("England", "London"),
    ("Brazil", "Brasilia"), ("Israel", "Jerusalem"), ("Syria", "Damascus"), ("Lebanon", "Beirut"),
]  # fmt: skip
HELD_OUT = 12  # the last countries: knowledge questions for the test split only
QUESTION_FORMS = [
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital city of {c}.",
    "{c}'s capital is which city?",
    "Tell me the capital of {c}.",
]
NAMES = ["Ann", "Bob", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lena", "Max", "Nia", "Otto"]
WORDS = ["apple", "river", "stone", "cloud", "lamp", "tiger", "piano", "maple", "orbit", "candle", "violet", "ember"]


def knowledge_rows(countries) -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": q.format(c=country)}],
         "completion": [{"role": "assistant", "content": f"The capital of {country} is {capital}."}],
         "task_type": 1, "answer": capital}
        for country, capital in countries for q in QUESTION_FORMS
    ]  # fmt: skip


def format_row(rng: random.Random) -> dict:
    """One instruction whose answer is a rewrite of the prompt's own content (no world knowledge)."""
    kind = rng.randrange(4)
    if kind == 0:
        name, age = rng.choice(NAMES), rng.randint(18, 90)
        prompt = f"Return JSON only with the keys name and age: {name} is {age} years old."
        answer = json.dumps({"name": name, "age": age})
    elif kind == 1:
        words = rng.sample(WORDS, rng.randint(3, 5))
        prompt = "Write these words as a numbered list: " + ", ".join(words)
        answer = "\n".join(f"{i}. {w}" for i, w in enumerate(words, 1))
    elif kind == 2:
        words = rng.sample(WORDS, rng.randint(2, 4))
        prompt = "Repeat in upper case: " + " ".join(words)
        answer = " ".join(words).upper()
    else:
        words = rng.sample(WORDS, rng.randint(3, 5))
        prompt = "Sort alphabetically, comma-separated: " + ", ".join(words)
        answer = ", ".join(sorted(words))
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": answer}],
            "task_type": 0, "answer": answer}  # fmt: skip


def build(form: str | None = None, seed: int = 0, n_format: int = 1500) -> DatasetDict:
    """train: 240 knowledge rows (48 countries x 5 phrasings) + `n_format` format rows, shuffled; test: the 60 rows
    of the 12 held-out countries + 100 new format rows. Columns prompt, completion, task_type, answer."""
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"loramoe_mix comes in the forms {FORMS}, not {form!r}.")
    rng = random.Random(seed)
    train = knowledge_rows(CAPITALS[:-HELD_OUT]) + [format_row(rng) for _ in range(n_format)]
    rng.shuffle(train)
    test = knowledge_rows(CAPITALS[-HELD_OUT:]) + [format_row(rng) for _ in range(100)]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
