"""`builtin:pika_expert`: expert-level instructions from personas in six domains, each with four candidate responses
of different quality (an expert answer, a generic one, a terse one, an off-topic one) and a hand-set difficulty
(1-3), generated in code. Two instructions reappear with other case and punctuation, so the dedup has work to do.

Forms: "candidates" (prompt, responses, domain, persona, difficulty): the `pika` transform's input; "sft" (prompt,
completion, domain): the expert answer, for training directly; "personas" (persona, domain): `pika_build`'s input.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

FORMS = ("candidates", "sft", "personas")

# domain -> [(persona, subject, mechanism, consequence, difficulty)]
_TOPICS: dict[str, list[tuple[str, str, str, str, int]]] = {
    "biology": [
        (
            "a molecular biologist studying gene regulation",
            "CRISPR interference",
            "dCas9 blocks RNA polymerase at the promoter",
            "transcription of the target gene drops without cutting DNA",
            2,
        ),
        (
            "an ecologist modelling predator-prey cycles",
            "the Lotka-Volterra model",
            "prey growth feeds predator growth with a delay",
            "populations oscillate out of phase",
            2,
        ),
        (
            "a cell biologist working on mitochondria",
            "oxidative phosphorylation",
            "the electron transport chain pumps protons across the inner membrane",
            "ATP synthase uses the proton gradient to make ATP",
            3,
        ),
        (
            "a geneticist teaching population genetics",
            "genetic drift in small populations",
            "random sampling of alleles each generation",
            "allele frequencies wander and rare alleles are lost",
            1,
        ),
        (
            "an immunologist designing vaccines",
            "adjuvants in subunit vaccines",
            "innate immune receptors are activated alongside the antigen",
            "a stronger and longer adaptive response",
            3,
        ),
    ],
    "medicine": [
        (
            "a cardiologist reviewing heart-failure therapy",
            "SGLT2 inhibitors in heart failure",
            "glucose and sodium excretion lowers preload",
            "fewer hospitalisations for heart failure",
            3,
        ),
        (
            "an emergency physician triaging chest pain",
            "the HEART score",
            "history, ECG, age, risk factors and troponin are scored",
            "low-risk patients can be discharged safely",
            2,
        ),
        (
            "a pharmacologist studying drug interactions",
            "CYP3A4 inhibition",
            "the enzyme that clears many drugs is blocked",
            "plasma levels of co-administered drugs rise",
            2,
        ),
        (
            "a paediatrician advising on fever",
            "fever management in infants",
            "fever is a regulated raise of the hypothalamic set point",
            "treat discomfort, not the number, and watch for red flags",
            1,
        ),
        (
            "an epidemiologist tracking outbreaks",
            "the basic reproduction number",
            "the mean number of secondary cases in a susceptible population",
            "an outbreak grows when it exceeds one",
            1,
        ),
    ],
    "law": [
        (
            "a contract lawyer drafting supply agreements",
            "force majeure clauses",
            "performance is excused for listed events beyond control",
            "the allocation of risk depends on the exact wording",
            2,
        ),
        (
            "a criminal defence attorney preparing a trial",
            "the exclusionary rule",
            "evidence obtained in violation of constitutional rights is suppressed",
            "police misconduct is deterred",
            2,
        ),
        (
            "an intellectual-property lawyer advising a startup",
            "patent novelty and obviousness",
            "a claim must be new and not obvious to a skilled person",
            "prior art can defeat a patent",
            3,
        ),
        (
            "a tax attorney advising on cross-border income",
            "double taxation treaties",
            "treaties allocate taxing rights and grant credits",
            "the same income is not taxed twice",
            3,
        ),
        (
            "a law student studying torts",
            "negligence",
            "duty, breach, causation and damage must all be shown",
            "a claimant recovers only when every element holds",
            1,
        ),
    ],
    "engineering": [
        (
            "a structural engineer designing bridges",
            "fatigue in steel girders",
            "cyclic loads grow small cracks over time",
            "members fail below their static strength",
            2,
        ),
        (
            "a control engineer tuning a drone",
            "PID controller tuning",
            "proportional, integral and derivative terms act on the error",
            "the response is fast without overshoot",
            2,
        ),
        (
            "a power engineer planning a grid",
            "frequency regulation",
            "generation must match load second by second",
            "frequency deviations trigger reserves",
            3,
        ),
        (
            "a software engineer scaling a database",
            "database sharding",
            "rows are split across servers by a key",
            "writes scale but cross-shard queries get harder",
            2,
        ),
        (
            "a hobbyist building a circuit",
            "Ohm's law",
            "voltage equals current times resistance",
            "the current through a resistor can be predicted",
            1,
        ),
    ],
    "finance": [
        (
            "a quantitative analyst pricing options",
            "the Black-Scholes model",
            "a hedged portfolio of option and stock earns the risk-free rate",
            "the option price follows from volatility and time",
            3,
        ),
        (
            "a central-bank economist",
            "the transmission of interest-rate changes",
            "policy rates move bank lending rates and asset prices",
            "demand and inflation adjust with a lag",
            2,
        ),
        (
            "a portfolio manager balancing risk",
            "diversification",
            "imperfectly correlated assets offset each other's moves",
            "portfolio variance falls without lowering expected return",
            1,
        ),
        (
            "a credit analyst rating bonds",
            "credit spreads",
            "investors demand extra yield for default risk",
            "spreads widen when default risk rises",
            2,
        ),
        (
            "a corporate treasurer managing cash",
            "currency hedging with forwards",
            "a forward contract locks in an exchange rate",
            "future cash flows become predictable",
            2,
        ),
    ],
    "chemistry": [
        (
            "an organic chemist planning a synthesis",
            "SN2 reactions",
            "a nucleophile attacks from the back side in one step",
            "the configuration at the carbon is inverted",
            2,
        ),
        (
            "a physical chemist studying kinetics",
            "the Arrhenius equation",
            "the rate constant grows exponentially with temperature",
            "a small warming speeds reactions a lot",
            2,
        ),
        (
            "a materials chemist designing batteries",
            "lithium-ion intercalation",
            "lithium ions move between layered electrodes",
            "charge is stored reversibly",
            3,
        ),
        (
            "an analytical chemist running assays",
            "buffer solutions",
            "a weak acid and its conjugate base absorb added acid or base",
            "the pH stays nearly constant",
            1,
        ),
        (
            "an environmental chemist tracking pollutants",
            "ozone depletion by CFCs",
            "chlorine radicals catalyse ozone destruction",
            "one chlorine atom destroys many ozone molecules",
            3,
        ),
    ],
}

_ASKS = [
    "Explain {subject} in depth: the mechanism, a worked example, and the main limitation a practitioner should know.",
    "As {persona}, I need a rigorous explanation of {subject}. Walk me through how it works and where it breaks down.",
]


def _responses(subject: str, mechanism: str, consequence: str, rng: random.Random) -> list[str]:
    expert = (
        f"{subject[0].upper()}{subject[1:]} works because {mechanism}. As a result, {consequence}. "
        f"For example, a practitioner applying {subject} would check this mechanism first and predict the outcome "
        f"from it. The main limitation is that the simple picture of {subject} ignores second-order effects, so "
        f"real cases need measurement."
    )
    generic = (
        f"{subject[0].upper()}{subject[1:]} is an important topic. There are many factors to consider, and experts "
        f"have studied it for a long time. It is best to consult a specialist."
    )
    terse = f"{consequence[0].upper()}{consequence[1:]}."
    off_topic = rng.choice(
        [
            "I like to cook pasta on weekends. It is quick and tasty.",
            "The weather today is sunny with a light breeze.",
            "Here is a poem about the sea: waves roll in and out.",
        ]
    )
    return [expert, generic, terse, off_topic]


def _rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for domain, topics in _TOPICS.items():
        for persona, subject, mechanism, consequence, difficulty in topics:
            ask = rng.choice(_ASKS).format(subject=subject, persona=persona)
            responses = _responses(subject, mechanism, consequence, rng)
            order = list(range(4))
            rng.shuffle(order)  # the expert answer is not always first
            rows.append(
                {
                    "prompt": ask,
                    "responses": [responses[j] for j in order],
                    "domain": domain,
                    "persona": persona,
                    "difficulty": difficulty,
                    "_expert": responses[0],
                }
            )
    return rows


def build(form: str | None = None, seed: int = 0) -> DatasetDict:
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"pika_expert comes in the forms {FORMS}, not {form!r}.")
    rows = _rows(seed)
    # Held out: the last topic of each domain (6 expert prompts); the rest trains.
    test_idx = {i for i in range(len(rows)) if i % 5 == 4}
    train = [r for i, r in enumerate(rows) if i not in test_idx]
    test = [r for i, r in enumerate(rows) if i in test_idx]
    # Two near-duplicates (other case, no punctuation) of training instructions.
    for src in (train[0], train[5]):
        dup = dict(src)
        dup["prompt"] = src["prompt"].lower().replace(".", "").replace(",", "").replace(":", "")
        train.append(dup)

    def shape(r: dict) -> dict:
        if form == "candidates":
            return {k: v for k, v in r.items() if k != "_expert"}
        if form == "sft":
            return {"prompt": [{"role": "user", "content": r["prompt"]}],
                    "completion": [{"role": "assistant", "content": r["_expert"]}], "domain": r["domain"]}  # fmt: skip
        return {"persona": r["persona"], "domain": r["domain"]}

    return DatasetDict(
        {"train": Dataset.from_list([shape(r) for r in train]), "test": Dataset.from_list([shape(r) for r in test])}
    )
