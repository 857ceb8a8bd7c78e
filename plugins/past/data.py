"""`builtin:past_facts`: the card's tiny synthetic world, generated from a fixed seed (no download).

Fictional people each live in one city ("<name> lives in <city>."). The source set A and the target set B use disjoint
names (the same cities), so nothing of B's facts is in A's documents or questions. Forms (`--dataset_config`):

- `source_docs` / `target_docs` (`text`): train = one document per person, three phrasings of the fact; test = one
  held-out phrasing per person (for a perplexity check after injection).
- `source_qa` / `target_qa` (`prompt` as chat messages, `answer`, `person`): train = "Where does <name> live? Answer
  with the city.", test = a rephrased question. Row i of a person's docs and QA is the same person, so
  `past_subset` splits docs and questions of one set consistently.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

FORMS = ("source_docs", "source_qa", "target_docs", "target_qa")
COLUMNS = {
    "source_docs": ("text",),
    "target_docs": ("text",),
    "source_qa": ("prompt", "answer", "person"),
    "target_qa": ("prompt", "answer", "person"),
}

_FIRST = (
    "Alba Amir Anouk Bram Cato Dara Eero Elif Fenna Goran Hana Ilse Ivo Jora Kai Lenka Liv Mako Mira Nils Noor Oda "
    "Pavel Quinn Rafa Rhea Sami Sela Taro Tove Ulla Vesna Wren Xavi Yara Zeno Ada Boris Cleo Dmitri Edda Faro Greta "
    "Hugo Inka Jonas Keira Loek"
).split()
_LAST = (
    "Varga Holm Okafor Lindqvist Moreau Tanaka Novak Castell Brandt Ferreira Kowalski Haddad Sorensen Ruiz Mbeki "
    "Petrov Aalto Keane Duarte Weiss Ilic Nakamura Ostrova Quist"
).split()
CITIES = (
    "Tallinn Porto Kyoto Lagos Quito Bergen Hobart Tunis Oaxaca Gdansk Leipzig Cusco Galway Medan Split Tartu Ghent "
    "Nantes Varna Aarhus"
).split()

_DOCS = (
    "{name} lives in {city}.",
    "{name}'s home is in the city of {city}.",
    "If you want to visit {name}, go to {city}, where {name} lives.",
)
_HELD_OUT_DOC = "{name} has made a home in {city}."
QUESTION = "Where does {name} live? Answer with the city."
_TEST_QUESTION = "In which city does {name} live? Reply with the city only."


def people(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` distinct (name, city) pairs, the same for the same seed."""
    rng = random.Random(seed)
    names = [f"{first} {last}" for first in _FIRST for last in _LAST]
    rng.shuffle(names)
    if n > len(names):
        raise ValueError(f"past_facts has {len(names)} names; asked for {n}")
    return [(name, rng.choice(CITIES)) for name in names[:n]]


def _qa(name: str, city: str, template: str, index: int) -> dict:
    return {"prompt": [{"role": "user", "content": template.format(name=name)}], "answer": city, "person": index}


def build(form: str = "source_docs", seed: int = 0, n_source: int = 32, n_target: int = 16) -> DatasetDict:
    """Train and test splits of `form` (see the module docstring); source people are the first `n_source` of the
    seeded list, target people the next `n_target` (disjoint names)."""
    if form not in FORMS:
        raise ValueError(f"past_facts has no form {form!r}; available: {', '.join(FORMS)}")
    everyone = people(n_source + n_target, seed)
    group = everyone[:n_source] if form.startswith("source") else everyone[n_source:]
    if form.endswith("docs"):
        train = [{"text": " ".join(t.format(name=n, city=c) for t in _DOCS)} for n, c in group]
        test = [{"text": _HELD_OUT_DOC.format(name=n, city=c)} for n, c in group]
    else:
        train = [_qa(n, c, QUESTION, i) for i, (n, c) in enumerate(group)]
        test = [_qa(n, c, _TEST_QUESTION, i) for i, (n, c) in enumerate(group)]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
