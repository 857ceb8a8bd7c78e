"""`builtin:irac_mcq`: legal-style four-option multiple-choice questions with rule-based answers, generated in code
(original text, fictional parties; not bar-exam material), in three domains:

- civil_procedure: a limitations period of N years, a suit filed M years after the claim accrued -> time-barred or not;
- contracts: an oral agreement for goods at a price (the $500 writing requirement for sales of goods) or for
  services lasting n months (agreements that cannot be performed within one year) -> enforceable or not;
- torts: damages D, plaintiff p% at fault, pure or modified (barred at 51%) comparative negligence -> the recovery.

Each item has a template explanation written as a rule sentence followed by its application (so the `template`
IRAC teacher can restructure it), the gold letter placed at a seeded random position. Columns: question, options
(a list of 4), answer (A-D), explanation, domain, id. 100 items per domain: 80 train + 20 test.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

DOMAINS = ("civil_procedure", "contracts", "torts")
PEOPLE = ("Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan", "Kendall", "Logan", "Morgan",
          "Parker", "Quinn", "Riley", "Sawyer", "Taylor")  # fmt: skip
CLAIMS = (("negligence", "the injury"), ("breach of a written contract", "the breach"), ("fraud", "the discovery of "
          "the fraud"), ("trespass to land", "the entry"), ("defamation", "the publication"))  # fmt: skip
GOODS = ("a used tractor", "a shipment of lumber", "a set of office chairs", "a painting", "a batch of coffee beans",
         "two mountain bikes", "a commercial oven")  # fmt: skip
SERVICES = ("manage a bakery", "tutor a student", "maintain a website", "design a garden", "coach a football team")


def _civil(rng: random.Random) -> tuple[str, list[str], int, str]:
    claim, trigger = rng.choice(CLAIMS)
    p, d = rng.sample(PEOPLE, 2)
    n = rng.randint(1, 6)
    m = n + rng.choice([-2, -1, 1, 2, 3]) if n > 2 else n + rng.choice([-1, 1, 2, 3])
    m = max(m, 1) if m != n else n + 1
    barred = m > n
    q = (f"In this state the limitations period for {claim} is {n} years, running from {trigger}. {p} sued {d} for "
         f"{claim} {m} years after {trigger}. {d} moved to dismiss the suit as time-barred. How should the court "
         f"rule on the motion?")  # fmt: skip
    grant = f"Grant the motion, because the suit was filed after the {n}-year period had run."
    deny = f"Deny the motion, because the suit was filed within the {n}-year period."
    wrong = [f"Grant the motion, because every {claim} claim must be filed within one year.",
             f"Deny the motion, because limitations periods do not apply to {claim} claims."]  # fmt: skip
    correct, opposite = (grant, deny) if barred else (deny, grant)
    rel = "more" if barred else "no more"
    explanation = (f"A claim filed after its limitations period has run is barred, and a claim filed within the period "
                   f"is timely. Here the period for {claim} is {n} years and {p} filed {m} years after {trigger}, "
                   f"which is {rel} than {n} years, so the motion should be {'granted' if barred else 'denied'}.")  # fmt: skip
    return q, [correct, opposite, *wrong], 0, explanation


def _contracts(rng: random.Random) -> tuple[str, list[str], int, str]:
    s, b = rng.sample(PEOPLE, 2)
    if rng.random() < 0.5:
        item = rng.choice(GOODS)
        price = rng.choice([120, 250, 380, 450, 499, 500, 650, 900, 1200, 4000])
        writing = price >= 500
        q = (f"{s} orally agreed to sell {item} to {b} for ${price}. Nothing was put in writing. {s} later refused to "
             f"deliver, and {b} sued for breach. Is the agreement enforceable against {s}?")  # fmt: skip
        yes = "Yes, because a sale of goods for less than $500 need not be in writing."
        no = "No, because a sale of goods for $500 or more requires a writing signed by the party sued."
        wrong = ["No, because every contract must be in writing to be enforceable.",
                 f"Yes, because {s} made the promise in good faith."]  # fmt: skip
        rule = "A contract for the sale of goods for $500 or more is unenforceable without a signed writing."
        app = (f"Here the price is ${price}, which is {'at least' if writing else 'less than'} $500, so the oral "
               f"agreement is {'not ' if writing else ''}enforceable against {s}.")  # fmt: skip
    else:
        task = rng.choice(SERVICES)
        months = rng.choice([3, 6, 9, 11, 12, 18, 24, 36])
        writing = months > 12
        q = (f"{b} orally agreed to hire {s} to {task} for exactly {months} months starting next week. Before the "
             f"start {b} backed out, and {s} sued. Is the oral agreement enforceable?")  # fmt: skip
        yes = "Yes, because the agreement can be fully performed within one year of its making."
        no = "No, because an agreement that cannot be performed within one year must be in writing."
        wrong = ["No, because employment agreements are never enforceable unless written.",
                 f"Yes, because {s} relied on the promise by turning down other work."]  # fmt: skip
        rule = "An agreement that by its terms cannot be performed within one year of its making must be in writing."
        app = (f"Here the agreement runs for {months} months from next week, so it "
               f"{'cannot' if writing else 'can'} be performed within one year and is "
               f"{'not ' if writing else ''}enforceable without a writing.")  # fmt: skip
    correct, opposite = (no, yes) if writing else (yes, no)
    return q, [correct, opposite, *wrong], 0, f"{rule} {app}"


def _torts(rng: random.Random) -> tuple[str, list[str], int, str]:
    p, d = rng.sample(PEOPLE, 2)
    damages = rng.choice([10_000, 20_000, 40_000, 50_000, 80_000, 100_000])
    fault = rng.choice([10, 20, 30, 40, 60, 70, 80])
    pure = rng.random() < 0.5
    system = ("pure comparative negligence" if pure else
              "modified comparative negligence, under which a plaintiff 51% or more at fault recovers nothing")  # fmt: skip
    reduced = damages * (100 - fault) // 100
    recovery = reduced if pure or fault < 51 else 0
    q = (f"{p} sued {d} after a collision and proved ${damages:,} in damages. The jury found {p} {fault}% at fault "
         f"and {d} {100 - fault}% at fault. The state follows {system}. How much can {p} recover?")  # fmt: skip
    values = [recovery, damages, damages * fault // 100, 0 if recovery else reduced]
    if len(set(values)) < 4:
        values = [recovery, damages, damages * fault // 100, damages // 2 + 1_000]
    options = [f"${v:,}" for v in values]
    rule = ("Under pure comparative negligence the plaintiff's damages are reduced by the plaintiff's share of fault."
            if pure else "Under modified comparative negligence damages are reduced by the plaintiff's share of "
            "fault, and a plaintiff 51% or more at fault recovers nothing.")  # fmt: skip
    if recovery:
        app = f"Here {p} is {fault}% at fault, so the ${damages:,} is reduced by {fault}% to ${recovery:,}."
    else:
        app = f"Here {p} is {fault}% at fault, which is 51% or more, so {p} recovers nothing."
    return q, options, 0, f"{rule} {app}"


_BUILDERS = {"civil_procedure": _civil, "contracts": _contracts, "torts": _torts}


def _items(seed: int, per_domain: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for domain in DOMAINS:
        seen: set[str] = set()
        k = 0
        while k < per_domain:
            q, options, gold, explanation = _BUILDERS[domain](rng)
            if q in seen or len(set(options)) < 4:
                continue
            seen.add(q)
            order = list(range(4))
            rng.shuffle(order)  # the gold option lands at a random position
            letter = "ABCD"[order.index(gold)]
            rows.append({"question": q, "options": [options[j] for j in order], "answer": letter,
                         "explanation": explanation, "domain": domain, "id": f"{domain}-{k}"})  # fmt: skip
            k += 1
    return rows


def build(form: str | None = None, seed: int = 0) -> DatasetDict:
    form = form or "mcq"
    if form != "mcq":
        raise ValueError(f"irac_mcq comes in the form 'mcq', not {form!r}.")
    rows = _items(seed, 100)
    train = [r for r in rows if int(r["id"].rsplit("-", 1)[1]) < 80]
    test = [r for r in rows if int(r["id"].rsplit("-", 1)[1]) >= 80]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
