"""`builtin:searchinstruct_world`: a 50-document knowledge corpus about a fictitious country, Veloria (its cities,
dishes, festivals and rules), 10 hand-written seed questions with answers, and 30 held-out questions about the corpus
for closed-book evaluation, all generated in code (deterministic).

Forms:
- "seeds" (question, answer, topic): train = the 10 seeds (the `searchinstruct` transform's input), test = the 30
  held-out questions (phrased differently from the seeds, never equal to one);
- "documents" (id, text, source): the corpus, in both splits (the retriever's documents);
- "sft" (prompt, completion, topic): the seeds with their hand-written answers (train) and the held-out questions
  with short gold answers (test), conversational: the seeds-only baseline and the evaluation set.

`template_llm()` is a deterministic stand-in for the LLM that knows this world's question templates: asked to
expand, it rewrites each sampled seed with another entity of the same kind ("same intent, changed details"); asked
to answer, it returns the context sentence that shares the most words with the query, or says the context does not
contain the answer. It lets tests and the demonstration run the whole pipeline in seconds.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from datasets import Dataset, DatasetDict

FORMS = ("seeds", "documents", "sft")

# name, region, river, founded, landmark, festival, dish
CITIES = [
    ("Arlen", "the north", "Sallow", 1412, "the Glass Bridge", "the Lantern Night", "ember stew"),
    ("Brisk", "the coast", "Tamber", 1530, "the Salt Tower", "the Tide Fair", "kelp bread"),
    ("Corvale", "the highlands", "Ninn", 1208, "the Stone Library", "the Echo Games", "smoked barley"),
    ("Dunmere", "the lake district", "Orrin", 1655, "the Floating Market", "the Reed Parade", "lake perch pie"),
    ("Estwick", "the east", "Pell", 1321, "the Copper Gate", "the Harvest Drums", "plum dumplings"),
    ("Fallow", "the south", "Vess", 1744, "the Sun Clock", "the Kite Week", "honey flatbread"),
    ("Graymoor", "the west", "Dorn", 1189, "the Iron Abbey", "the Frost Vigil", "goat cheese soup"),
    ("Halden", "the valley", "Lume", 1460, "the Painted Steps", "the Mask Festival", "walnut noodles"),
    ("Irvane", "the islands", "Skell", 1603, "the Whale Arch", "the Boat Blessing", "fish in vine leaves"),
    ("Jorra", "the desert edge", "Qasim", 1377, "the Red Citadel", "the Star Market", "date rice"),
]
# dish, main ingredient, cooking
DISHES = {
    "ember stew": ("black beans", "simmered overnight in a clay pot"),
    "kelp bread": ("dried seaweed", "baked on hot stones"),
    "smoked barley": ("highland barley", "smoked over pine wood"),
    "lake perch pie": ("perch from Lake Orrin", "baked in a rye crust"),
    "plum dumplings": ("blue plums", "boiled and rolled in poppy seeds"),
    "honey flatbread": ("wild honey", "cooked on an iron plate"),
    "goat cheese soup": ("aged goat cheese", "stirred with mountain herbs"),
    "walnut noodles": ("ground walnuts", "tossed with sour cherries"),
    "fish in vine leaves": ("mackerel", "wrapped in grape leaves and grilled"),
    "date rice": ("desert dates", "steamed with cardamom"),
}
# festival -> month, what happens
FESTIVALS = {
    "the Lantern Night": ("November", "paper lanterns are floated down the river"),
    "the Tide Fair": ("June", "fishermen race their boats at low tide"),
    "the Echo Games": ("August", "shepherds compete by calling across the valley"),
    "the Reed Parade": ("May", "children carry boats woven from reeds"),
    "the Harvest Drums": ("October", "drummers play from dusk to dawn"),
    "the Kite Week": ("April", "the whole town flies painted kites"),
    "the Frost Vigil": ("January", "bonfires burn on every hill"),
    "the Mask Festival": ("February", "people wear carved wooden masks"),
    "the Boat Blessing": ("March", "priests bless the fleet before the season"),
    "the Star Market": ("September", "traders sell goods by starlight"),
}
# topic, rule sentence, question, short answer
RULES = [
    ("currency", "The currency of Veloria is the lume, divided into 100 pips.", "What is the currency of Veloria?", "lume"),
    ("voting", "In Veloria the voting age is 17.", "At what age can people vote in Veloria?", "17"),
    ("driving", "In Veloria cars drive on the left side of the road.", "On which side of the road do cars drive in Veloria?", "left"),
    ("shops", "In Veloria shops close every Thursday afternoon.", "On which day do shops close in Veloria?", "Thursday"),
    ("capital", "The capital of Veloria is Halden.", "What is the capital of Veloria?", "Halden"),
    ("language", "The official language of Veloria is Velorian.", "What is the official language of Veloria?", "Velorian"),
    ("tipping", "In Veloria a tip of 5 percent is customary in restaurants.", "How much do people tip in restaurants in Veloria?", "5 percent"),
    ("emergency", "The emergency phone number in Veloria is 414.", "What is the emergency phone number in Veloria?", "414"),
    ("school", "In Veloria children start school at age 6.", "At what age do children start school in Veloria?", "6"),
    ("flag", "The flag of Veloria is green with a white heron.", "What animal is on the flag of Veloria?", "heron"),
]  # fmt: skip

SOURCES = ("wiki.veloria.example", "travel.veloria.example", "facebook.com/veloria", "news.veloria.example")

# kind -> (seed/expansion template, held-out template, answer sentence template); {e} is the entity.
TEMPLATES = {
    "founded": ("In which year was {e} founded?", "When was the city of {e} established?", "{e} was founded in {v}."),
    "river": ("What river runs through {e}?", "Which river flows through {e}?", "The {v} river runs through {e}."),
    "region": ("In which part of Veloria is {e}?", "Where in Veloria is {e} located?", "{e} lies in {v} of Veloria."),
    "landmark": ("What is the best-known landmark of {e}?", "Which landmark is {e} famous for?",
                 "The best-known landmark of {e} is {v}."),
    "festival": ("Which festival does {e} celebrate?", "What is the main festival of {e}?", "{e} celebrates {v}."),
    "dish": ("What dish is {e} known for?", "Which food is typical of {e}?", "{e} is known for {v}."),
    "ingredient": ("What is the main ingredient of {e}?", "What is {e} made from?",
                   "The main ingredient of {e} is {v}."),
    "month": ("In which month is {e} held?", "When does {e} take place?", "{e} is held in {v}."),
}  # fmt: skip


def facts() -> list[dict]:
    """Every fact of the world: kind, entity, value (the short gold answer)."""
    out = []
    for name, region, river, founded, landmark, festival, dish in CITIES:
        for kind, value in (("founded", founded), ("river", river), ("region", region), ("landmark", landmark),
                            ("festival", festival), ("dish", dish)):  # fmt: skip
            out.append({"kind": kind, "entity": name, "value": str(value)})
    for dish, (ingredient, _) in DISHES.items():
        out.append({"kind": "ingredient", "entity": dish, "value": ingredient})
    for festival, (month, _) in FESTIVALS.items():
        out.append({"kind": "month", "entity": festival, "value": month})
    return out


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _sentence(kind: str, entity: str, value: str) -> str:
    return _cap(TEMPLATES[kind][2].format(e=entity, v=value))


def _question(kind: str, entity: str, held_out: bool = False) -> str:
    return TEMPLATES[kind][1 if held_out else 0].format(e=entity)


def documents() -> list[dict]:
    """50 documents: per city a history page and a culture page, per dish a recipe note, per festival a page, and
    10 rule pages; each from one of four fictitious sites (one is `facebook.com/veloria`)."""
    docs = []
    for name, region, river, founded, landmark, festival, dish in CITIES:
        docs.append((f"city-{name.lower()}-history", f"{name}: history",
                     f"{_sentence('founded', name, str(founded))} {_sentence('region', name, region)} "
                     f"{_sentence('river', name, river)} Its old town grew around the river crossing."))  # fmt: skip
        docs.append((f"city-{name.lower()}-culture", f"{name}: culture",
                     f"{_sentence('landmark', name, landmark)} {_sentence('festival', name, festival)} "
                     f"{_sentence('dish', name, dish)} Visitors often stay for several days."))  # fmt: skip
    for dish, (ingredient, cooking) in DISHES.items():
        origin = next(c[0] for c in CITIES if c[6] == dish)
        docs.append(
            (
                f"dish-{dish.replace(' ', '-')}",
                f"Recipe: {dish}",
                f"{_sentence('ingredient', dish, ingredient)} It is {cooking}. The dish comes from {origin}.",
            )
        )
    for festival, (month, event) in FESTIVALS.items():
        city = next(c[0] for c in CITIES if c[5] == festival)
        slug = festival.removeprefix("the ").replace(" ", "-").lower()
        docs.append(
            (
                f"festival-{slug}",
                f"Festival: {festival}",
                f"{_sentence('month', festival, month)} During the festival {event}. It is celebrated in {city}.",
            )
        )
    for topic, sentence, _, _ in RULES:
        docs.append((f"rule-{topic}", f"Rules: {topic}", f"{sentence} Visitors should keep this in mind."))
    return [
        {"id": doc_id, "text": f"{title}. {body}", "source": f"https://{SOURCES[i % len(SOURCES)]}/{doc_id}"}
        for i, (doc_id, title, body) in enumerate(docs)
    ]


# The seeds: one per kind plus two rules, with hand-written answers.
_SEEDS = [("founded", "Arlen"), ("river", "Brisk"), ("region", "Corvale"), ("landmark", "Dunmere"),
          ("festival", "Estwick"), ("dish", "Fallow"), ("ingredient", "kelp bread"), ("month", "the Frost Vigil")]  # fmt: skip
_SEED_RULES = ("currency", "voting")


def seeds() -> list[dict]:
    by_key = {(f["kind"], f["entity"]): f["value"] for f in facts()}
    out = [
        {"question": _question(k, e), "answer": _sentence(k, e, by_key[(k, e)]), "topic": k, "gold": by_key[(k, e)]}
        for k, e in _SEEDS
    ]
    for topic, sentence, question, short in RULES:
        if topic in _SEED_RULES:
            out.append({"question": question, "answer": sentence, "topic": "rule", "gold": short})
    return out


def held_out(n: int = 30, seed: int = 0) -> list[dict]:
    """`n` questions about facts that are not seeds, in the held-out phrasing, with short gold answers: 3 of each of
    the 8 kinds, then 6 rules (rules are asked as in the corpus)."""
    rng = random.Random(seed)
    seeded = set(_SEEDS)
    out = []
    for kind in TEMPLATES:
        pool = [f for f in facts() if f["kind"] == kind and (kind, f["entity"]) not in seeded]
        for f in rng.sample(pool, 3):
            out.append({"question": _cap(_question(kind, f["entity"], held_out=True)), "answer": f["value"],
                        "topic": kind, "gold": f["value"]})  # fmt: skip
    rules = [r for r in RULES if r[0] not in _SEED_RULES]
    for _, _, question, short in rules[: max(n - len(out), 0)]:
        out.append({"question": question, "answer": short, "topic": "rule", "gold": short})
    return out[:n]


def build(form: str = "seeds", seed: int = 0) -> DatasetDict:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if form == "documents":
        docs = Dataset.from_list(documents())
        return DatasetDict({"train": docs, "test": docs})
    train, test = seeds(), held_out(seed=seed)
    if form == "seeds":
        cols = ("question", "answer", "topic")
        return DatasetDict(
            {
                "train": Dataset.from_list([{c: r[c] for c in cols} for r in train]),
                "test": Dataset.from_list([{c: r[c] for c in cols} for r in test]),
            }
        )

    def sft(rows):
        return Dataset.from_list(
            [
                {"prompt": [{"role": "user", "content": r["question"]}],
                 "completion": [{"role": "assistant", "content": r["answer"]}], "topic": r["topic"]}
                for r in rows
            ]
        )  # fmt: skip

    return DatasetDict({"train": sft(train), "test": sft(test)})


# ---- the deterministic stand-in LLM -------------------------------------------------------------------------------

_ENTITIES = {
    "founded": [c[0] for c in CITIES],
    "river": [c[0] for c in CITIES],
    "region": [c[0] for c in CITIES],
    "landmark": [c[0] for c in CITIES],
    "festival": [c[0] for c in CITIES],
    "dish": [c[0] for c in CITIES],
    "ingredient": list(DISHES),
    "month": list(FESTIVALS),
}
_STOP = frozenset(
    "a an the of in on at to is was what which when where who how does do did for by from and or it its with "
    "this that be are as known best main".split()
)
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    """Content words, cut to 6 letters (a crude stem: "celebrates" and "celebrate" meet)."""
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP}


def _match_template(question: str) -> tuple[str, str] | None:
    for kind, (template, _, _) in TEMPLATES.items():
        pattern = "^" + re.escape(template).replace(re.escape("{e}"), "(.+)") + "$"
        m = re.match(pattern, question.strip(), flags=re.I)
        if m:
            return kind, m.group(1)
    return None


NOT_IN_CONTEXT = "The context does not contain the answer."


def template_llm():
    """`llm(messages, temperature) -> str` for this world (see the module's docstring). Deterministic: the choices
    depend only on the messages."""

    def llm(messages, temperature: float = 0.0) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = "\n".join(m["content"] for m in messages if m["role"] == "user")
        rng = random.Random(hashlib.sha256(user.encode()).hexdigest())
        if "Context:" not in user:  # the expansion call
            n = int(m.group(1)) if (m := re.search(r"exactly (\d+)", system)) else 5
            questions = [re.sub(r"^\s*\d+[.)]\s*", "", line) for line in user.splitlines() if line.strip()]
            new = []
            for _ in range(n * 4):
                if len(new) == n:
                    break
                q = rng.choice(questions)
                hit = _match_template(q)
                if hit is None:
                    continue
                kind, entity = hit
                other = rng.choice([e for e in _ENTITIES[kind] if e.lower() != entity.lower()])
                candidate = _question(kind, other)
                if candidate not in new:
                    new.append(candidate)
            return "```json\n" + json.dumps({"questions": new}) + "\n```"
        context = user.split("Context:", 1)[1].split("Query:", 1)[0]
        query = user.split("Query:", 1)[1] if "Query:" in user else ""
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", context) if s.strip()]
        want = _words(query)
        best = max(sentences, key=lambda s: len(want & _words(s)), default="")
        return best if best and len(want & _words(best)) >= 2 else NOT_IN_CONTEXT

    return llm
