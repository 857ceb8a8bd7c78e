"""`builtin:maskft_bios`: fictitious people, one one-sentence biography each ("<Name> was born in <City> and works
as a <Job>."), no paraphrases, and held-out QA: forward ("Where was <Name> born?" -> City) and backward ("Who was
born in <City> and works as a <Job>?" -> Name). Names and cities are invented, so the base model cannot know them;
every (city, job) pair is unique, so each backward question has one answer."""

from __future__ import annotations

import itertools
import random

from datasets import Dataset, DatasetDict

FORMS = ("knowledge", "qa")
FIRST = ("Aldric", "Brisa", "Caelin", "Dovra", "Elsin", "Fenwa", "Garrik", "Hesper", "Ilvane", "Jorum", "Kestra",
         "Lioren", "Marnel", "Nerys", "Orlan", "Pellis", "Quorra", "Rovan", "Sabeth", "Tamsin", "Ulric", "Vessa",
         "Wynnel", "Yarrow", "Zorinda")  # fmt: skip
LAST = ("Ashgrove", "Brannock", "Corvell", "Dunmere", "Eskwith", "Falloway", "Grimsby", "Halvorsk", "Ingleby",
        "Jessop", "Kilbride", "Larkholm", "Mossridge", "Norwick", "Oakhurst", "Pembrook", "Quillon", "Redvane",
        "Stallow", "Thornby")  # fmt: skip
CITIES = ("Varnholt", "Quenlake", "Morridan", "Oskelport", "Thalgrove", "Brenvik", "Castellune", "Durnhollow",
          "Elkmarsh", "Frostmere", "Glenharrow", "Hollowfen", "Iskaroth", "Jorvale", "Kelmsby", "Lunaris",
          "Mirewood", "Nethercairn", "Orrinford", "Pallendor", "Quarriston", "Rookmoor", "Saltvane", "Tervigan",
          "Umbervale")  # fmt: skip
JOBS = ("baker", "carpenter", "glassblower", "librarian", "beekeeper", "cartographer", "locksmith", "potter",
        "surveyor", "tailor")  # fmt: skip


def people(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """`n` fictitious people with unique names and unique (city, job) pairs (at most 250 pairs)."""
    rng = random.Random(seed)
    names = [f"{first} {last}" for first, last in itertools.product(FIRST, LAST)]
    pairs = list(itertools.product(CITIES, JOBS))
    if n > len(pairs):
        raise ValueError(f"maskft_bios has at most {len(pairs)} people")
    rng.shuffle(names)
    rng.shuffle(pairs)
    return [{"name": names[i], "city": pairs[i][0], "job": pairs[i][1]} for i in range(n)]


def bio(person: dict[str, str]) -> str:
    return f"{person['name']} was born in {person['city']} and works as a {person['job']}."


def qa_rows(person: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"question": f"Where was {person['name']} born?", "answer": person["city"], "direction": "forward",
         "name": person["name"]},
        {"question": f"Who was born in {person['city']} and works as a {person['job']}?", "answer": person["name"],
         "direction": "backward", "name": person["name"]},
    ]  # fmt: skip


def build(form: str | None = None, seed: int = 0, n: int = 200) -> DatasetDict:
    """knowledge: train = the biographies (`text`, `name`), test = the same documents (the knowledge to inject);
    qa: train = test = the QA rows (held out from training: evaluate on them, never train on them)."""
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"maskft_bios comes in the forms {FORMS}, not {form!r}.")
    folks = people(n, seed)
    if form == "knowledge":
        docs = Dataset.from_list([{"text": bio(p), "name": p["name"]} for p in folks])
        return DatasetDict({"train": docs, "test": docs})
    qa = Dataset.from_list([row for p in folks for row in qa_rows(p)])
    return DatasetDict({"train": qa, "test": qa})
