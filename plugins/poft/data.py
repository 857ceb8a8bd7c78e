"""`builtin:poft_arith`: arithmetic instruction pairs (trl_ext.data.arith) with 30% corrupted responses and an
aligned-model score column, generated in code so `trl-ext train poft` and the demo run offline.

Corruptions follow the paper's hand-crafted noise (section 4.3): random character insertions, deletions and
substitutions in the response ("edit"), or the response of another problem ("shuffle"). The test split is clean.

The `poft_ref_scores` column here is GENERATED, not computed by a model: a stand-in for one aligned model's mean
token log-prob (M=1), drawn per row around what SmolLM2-135M-Instruct gives each kind of row through the
`poft_score` transform (mean and spread measured on 20 rows of each kind: clean -0.88 / 0.15, edit -3.96 / 0.66,
shuffle -1.50 / 0.23). Use it for smoke runs and tests; for a real run, re-score with the `poft_score` transform
(as examples/demos/poft_demo.py does).
"""

from __future__ import annotations

import random
import string

from datasets import Dataset, DatasetDict

from trl_ext.data import arith

SCORE_COLUMN = "poft_ref_scores"
CORRUPTIONS = ("none", "edit", "shuffle")
# Stand-in aligned scores (mean, spread) per kind of row; see the module docstring.
GENERATED_SCORES = {"none": (-0.88, 0.15), "edit": (-3.96, 0.66), "shuffle": (-1.50, 0.23)}
_ALPHABET = string.ascii_letters + string.digits + " .,;:+-*/="


def edit_characters(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """Random character insertions, deletions and substitutions at about `rate` of the positions (at least one)."""
    chars = list(text)
    n_edits = max(1, round(rate * len(chars)))
    for _ in range(n_edits):
        op, i = rng.choice(("insert", "delete", "replace")), rng.randrange(max(len(chars), 1))
        if op == "insert" or not chars:
            chars.insert(i, rng.choice(_ALPHABET))
        elif op == "delete" and len(chars) > 1:
            del chars[i]
        else:
            chars[i] = rng.choice(_ALPHABET)
    return "".join(chars)


def build(form: str = "sft", seed: int = 0, n_train: int = 1000, n_test: int = 200, noise: float = 0.3) -> DatasetDict:
    """Train (a `noise` share corrupted, half edits, half shuffles) and clean test splits of distinct problems.

    Columns: prompt, completion (chat messages), answer, corruption ("none" | "edit" | "shuffle") and
    `poft_ref_scores` (a one-element list: the generated stand-in score)."""
    if form != "sft":
        raise ValueError(f"poft_arith has no form {form!r}; available: sft")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise={noise} must be a fraction in [0, 1].")
    problems = arith.problems(n_train + n_test, seed)
    rng = random.Random(seed + 17)
    n_noisy = round(noise * n_train)
    noisy = rng.sample(range(n_train), n_noisy)
    kinds = {i: ("edit" if k % 2 == 0 else "shuffle") for k, i in enumerate(noisy)}

    def row(i: int, kind: str) -> dict:
        problem = problems[i]
        if kind == "edit":
            response = edit_characters(problem.solution, rng)
        elif kind == "shuffle":
            other = (i + 1 + rng.randrange(n_train - 1)) % n_train if n_train > 1 else i
            response = problems[other].solution
        else:
            response = problem.solution
        mean, spread = GENERATED_SCORES[kind]
        return {
            "prompt": arith.prompt(problem),
            "completion": [{"role": "assistant", "content": response}],
            "answer": str(problem.answer),
            "corruption": kind,
            SCORE_COLUMN: [round(min(rng.gauss(mean, spread), -0.05), 4)],
        }

    train = [row(i, kinds.get(i, "none")) for i in range(n_train)]
    test = [row(i, "none") for i in range(n_train, n_train + n_test)]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
