"""`builtin:locft_edits`: synthetic counterfactual edit requests for LocFT-BF, generated in code, deterministic.

Each request asks the model to learn a fact it cannot know: "The capital of <invented country> is" -> "<invented
city>", with a paraphrased prompt (generalisation) and a locality prompt about a real, well-known fact whose answer
must not change. Forms: `sft` (prompt / completion ready for SFT, plus the request columns) and `requests` (the
raw edit-request columns the `locft_requests` transform reads)."""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

_ONSETS = "b br d dr f g gr k kl l m n p pr r s st t tr v z".split()
_VOWELS = "a e i o u ai ou".split()
_CODAS = ["", "n", "r", "l", "s", "th", "m"]
_COUNTRY_ENDS = ["ia", "ania", "ovia", "istan", "land", "ora"]

# Real facts a small instruct model answers; their answers must survive the edits (locality).
LOCALITY = [
    ("The capital of France is", "Paris"),
    ("The capital of Japan is", "Tokyo"),
    ("The capital of Italy is", "Rome"),
    ("The capital of Germany is", "Berlin"),
    ("The capital of Spain is", "Madrid"),
    ("The capital of Egypt is", "Cairo"),
    ("The capital of Russia is", "Moscow"),
    ("The capital of England is", "London"),
    ("The largest planet in the solar system is", "Jupiter"),
    ("Water is made of hydrogen and", "oxygen"),
    ("The opposite of hot is", "cold"),
    ("The color of the sky on a clear day is", "blue"),
    ("The first month of the year is", "January"),
    ("Two plus two equals", "four"),
    ("The author of Romeo and Juliet is", "William Shakespeare"),
    ("The chemical symbol for gold is", "Au"),
    ("The fastest land animal is the", "cheetah"),
    ("The closest star to Earth is the", "Sun"),
    ("The number of days in a week is", "seven"),
    ("The currency of the United States is the", "dollar"),
]
PROMPT = "The capital of {country} is"
REPHRASE = "{country}'s capital city is"


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


def edit_requests(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """`n` requests with distinct invented countries and cities (no name is a real one: they are drawn from
    syllables and checked against each other, not against a gazetteer)."""
    rng, countries, cities = random.Random(seed), set(), set()
    rows = []
    while len(rows) < n:
        country = (_word(rng, rng.randint(1, 2)) + rng.choice(_COUNTRY_ENDS)).capitalize()
        city = _word(rng, rng.randint(2, 3)).capitalize()
        if country in countries or city in cities or len(city) < 4:
            continue
        countries.add(country)
        cities.add(city)
        locality_prompt, locality_answer = LOCALITY[len(rows) % len(LOCALITY)]
        rows.append(
            {
                "prompt": PROMPT.format(country=country),
                "target_new": city,
                "rephrase_prompt": REPHRASE.format(country=country),
                "locality_prompt": locality_prompt,
                "locality_answer": locality_answer,
            }
        )
    return rows


def build(form: str = "sft", n: int = 200, seed: int = 0) -> DatasetDict:
    """One `train` split (edit requests are trained and evaluated on themselves, as in the paper)."""
    if form not in ("sft", "requests"):
        raise ValueError(f"locft_edits has no form {form!r}; available: sft, requests")
    rows = edit_requests(n, seed)
    if form == "sft":  # the EOS is appended by SFTTrainer (and by the transform, given a tokenizer)
        rows = [{"prompt": r["prompt"], "completion": " " + r["target_new"], **r} for r in rows]
    return DatasetDict({"train": Dataset.from_list(rows)})
