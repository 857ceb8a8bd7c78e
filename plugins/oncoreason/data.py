"""`builtin:oncoreason`: a synthetic survival cohort (no real patients), deterministic for a seed.

The card's demonstration cohort: 500 patients, 400 train / 100 held out (`test`), each with 4 features (age,
stage I–IV, ECOG 0–3, treatment) and a hidden exponential survival model,

    λ = (1/200) · exp(0.03·(age − 60) + β_stage + β_ECOG + β_treatment)  per month,  T ~ Exp(λ),

observed under a follow-up time C ~ Uniform(3, 84) months: `survival_months` = min(T, C) and `survival_status`
"1:DECEASED" when T ≤ C, else "0:LIVING" (right-censored). A LIVING patient followed beyond 60 months is recorded as
">60", as registries write it (the rewards read it as 60). The `expert_cot` is templated from the features alone
(never from the outcome): each feature's effect on risk, the model's median survival ln 2 / λ and the likely status.

Forms: `raw` (the card's columns + `patient_id`), `sft` (+ `prompt`, `completion` with the CoT: SFT+CoT),
`sft_plain` (the two answer lines only: the plain SFT baseline) and `grpo` (+ `prompt`; the rewards read the raw
columns). LIVING is the majority (275 of 500 for seed 0, as in registry data). Prompts stay within the transforms'
budget (see `transforms`).
"""

from __future__ import annotations

import math
import random

from .transforms import onco_to_grpo, onco_to_sft

FORMS = ("sft", "grpo", "sft_plain", "raw")
NUM_PATIENTS, NUM_TEST = 500, 100
STAGES = ("I", "II", "III", "IV")
STAGE_WEIGHTS = (0.2, 0.3, 0.3, 0.2)
STAGE_EFFECT = {"I": 0.0, "II": 0.5, "III": 1.1, "IV": 1.9}
ECOG_WEIGHTS = (0.35, 0.35, 0.2, 0.1)
ECOG_EFFECT = {0: 0.0, 1: 0.3, 2: 0.8, 3: 1.4}
TREATMENT_EFFECT = {
    "surgery": -0.5,
    "chemoradiation": -0.2,
    "immunotherapy": -0.3,
    "chemotherapy": 0.0,
    "palliative care": 0.6,
}
CANCERS = ("non-small cell lung cancer", "colorectal cancer", "breast cancer", "pancreatic cancer", "prostate cancer")
BASE_HAZARD = 1 / 200  # per month: a median of 139 months for a 60-year-old, stage I, ECOG 0, chemotherapy
FOLLOW_UP = (3.0, 84.0)
CENSOR_CAP = 60.0

_STAGE_TEXT = {
    "I": "localized disease, the lowest risk",
    "II": "early regional involvement, a moderately raised risk",
    "III": "regional spread, a clearly raised risk",
    "IV": "distant metastases, the highest risk",
}
_ECOG_TEXT = {
    0: "fully active, no added risk",
    1: "restricted in strenuous activity, a slightly raised risk",
    2: "ambulatory but unable to work, a raised risk",
    3: "limited self-care, a much raised risk",
}
_TREATMENT_TEXT = {
    "surgery": "curative-intent resection, which lowers risk",
    "chemoradiation": "combined chemoradiation, which lowers risk slightly",
    "immunotherapy": "immunotherapy, which lowers risk",
    "chemotherapy": "standard systemic chemotherapy, the reference",
    "palliative care": "palliative care only, which signals a raised risk",
}


def hazard(age: int, stage: str, ecog: int, treatment: str) -> float:
    """λ per month of the hidden model."""
    log_risk = 0.03 * (age - 60) + STAGE_EFFECT[stage] + ECOG_EFFECT[ecog] + TREATMENT_EFFECT[treatment]
    return BASE_HAZARD * math.exp(log_risk)


def expert_cot(age: int, stage: str, ecog: int, treatment: str) -> str:
    """The templated expert rationale of a case, from its features only."""
    median = math.log(2) / hazard(age, stage, ecog, treatment)
    if age >= 70:
        age_text = "older than 70, which raises risk"
    elif age >= 60:
        age_text = "between 60 and 70, a slightly raised risk"
    else:
        age_text = "younger than 60, which lowers risk"
    level = "very high" if median < 12 else "high" if median < 24 else "intermediate" if median < 48 else "low"
    likely = "death within follow-up is likely" if median < 43.5 else "survival through follow-up is likely"
    return (
        f"1. Age {age}: {age_text}.\n"
        f"2. Stage {stage}: {_STAGE_TEXT[stage]}.\n"
        f"3. ECOG {ecog}: {_ECOG_TEXT[ecog]}.\n"
        f"4. Treatment: {_TREATMENT_TEXT[treatment]}.\n"
        f"Overall risk is {level}, with an expected median survival of about {median:.0f} months, so {likely}."
    )


def patient(rng: random.Random, index: int) -> dict:
    """One synthetic patient with its observed outcome and rationale (the `raw` form's row)."""
    age = rng.randint(35, 85)
    stage = rng.choices(STAGES, STAGE_WEIGHTS)[0]
    ecog = rng.choices(range(4), ECOG_WEIGHTS)[0]
    treatment = rng.choice(sorted(TREATMENT_EFFECT))
    cancer = rng.choice(CANCERS)
    sex = rng.choice(("female", "male")) if cancer not in ("breast cancer", "prostate cancer") else None
    sex = sex or ("female" if cancer == "breast cancer" else "male")
    event_time = rng.expovariate(hazard(age, stage, ecog, treatment))
    follow_up = rng.uniform(*FOLLOW_UP)
    deceased = event_time <= follow_up
    observed = min(event_time, follow_up)
    if not deceased and observed > CENSOR_CAP:
        months = f">{CENSOR_CAP:.0f}"
    else:
        months = f"{max(observed, 0.1):.1f}"
    summary = (
        f"Age: {age}\nSex: {sex}\nPrimary cancer: {cancer}\nStage: {stage}\nECOG performance status: {ecog}\n"
        f"Treatment: {treatment}"
    )
    return {
        "patient_id": f"P{index:04d}",
        "patient_summary": summary,
        "survival_status": "1:DECEASED" if deceased else "0:LIVING",
        "survival_months": months,
        "expert_cot": expert_cot(age, stage, ecog, treatment),
    }


def cohort(seed: int = 0, n: int = NUM_PATIENTS) -> list[dict]:
    rng = random.Random(seed)
    return [patient(rng, i) for i in range(n)]


def _row(case: dict, form: str) -> dict:
    if form == "sft":
        return {**case, **onco_to_sft(case, with_cot=True)}
    if form == "sft_plain":
        return {**case, **onco_to_sft(case, with_cot=False)}
    if form == "grpo":
        return {**case, **onco_to_grpo(case)}
    return dict(case)


def build(form: str = "sft", seed: int = 0, n: int = NUM_PATIENTS, n_test: int = NUM_TEST):
    """train (n − n_test patients) / test (n_test held out) in the shape of `form`."""
    from datasets import Dataset, DatasetDict

    if form not in FORMS:
        raise ValueError(f"builtin:oncoreason has no form {form!r}; available: {', '.join(FORMS)}")
    if not 0 < n_test < n:
        raise ValueError(f"n_test={n_test!r} must be between 1 and n - 1 = {n - 1}")
    rows = [_row(case, form) for case in cohort(seed, n)]
    return DatasetDict({"train": Dataset.from_list(rows[n_test:]), "test": Dataset.from_list(rows[:n_test])})
