"""`builtin:cls_animals`: the card's text-only stand-in for few-shot image classification.

Ten animals, each with six clues; a row describes one animal by two of its clues (no clue is shared between
animals, so every pair names exactly one class) and asks to pick it from the fixed list of the ten names. 4 rows per
class for training (the paper's 4-shot setting, 40 rows) and 2 other clue pairs per class held out (20 rows), chosen
with the seed. Form `grpo` has the raw columns (`context`, `class_names`, `label`, `question`) and the CLS-RL (think) `prompt`
and `solution`; `build_cls_prompts:mode=no_think` rebuilds them for No-Thinking-CLS-RL. Every prompt is under
600 characters.
"""

from __future__ import annotations

import itertools
import random

from datasets import Dataset, DatasetDict

from .config import ClsRLConfig
from .transforms import cls_prompt_row, question_text

CLUES: dict[str, tuple[str, ...]] = {
    "bee": (
        "buzzes",
        "makes honey",
        "has a stinger",
        "visits flowers",
        "lives in a hive",
        "has yellow and black stripes",
    ),
    "cat": ("has whiskers", "purrs", "chases mice", "has retractable claws", "naps all day", "lands on its feet"),
    "cow": ("gives milk", "moos", "chews cud", "has an udder", "grazes in meadows", "has black and white patches"),
    "dog": (
        "barks",
        "wags its tail",
        "fetches sticks",
        "guards the house",
        "is walked on a leash",
        "sniffs everything",
    ),
    "eagle": (
        "has a hooked beak",
        "has sharp talons",
        "soars over mountains",
        "nests on cliffs",
        "has feathers",
        "hunts from the sky",
    ),
    "frog": (
        "croaks",
        "was a tadpole",
        "has a sticky tongue",
        "jumps with long legs",
        "lives by ponds",
        "has moist green skin",
    ),
    "horse": ("has hooves", "has a long mane", "gallops", "eats hay", "wears horseshoes", "is ridden by jockeys"),
    "penguin": (
        "cannot fly",
        "waddles on ice",
        "lives in Antarctica",
        "dives for krill",
        "looks like it wears a tuxedo",
        "huddles in the cold",
    ),
    "shark": (
        "has gills",
        "has rows of sharp teeth",
        "has a dorsal fin",
        "lives in the ocean",
        "smells blood",
        "never stops swimming",
    ),
    "snake": ("has no legs", "slithers", "sheds its skin", "has a forked tongue", "hisses", "has scales"),
}
CLASS_NAMES = sorted(CLUES)
QUESTION_TEMPLATE = "Which animal do the clues describe? Please choose one from list [ {classes}]"
SHOTS, HELD_OUT = 4, 2
MAX_PROMPT_CHARS = 600


def rows(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) raw rows: per class, `SHOTS` clue pairs for training and `HELD_OUT` other pairs for testing."""
    rng = random.Random(seed)
    train, test = [], []
    for label, name in enumerate(CLASS_NAMES):
        pairs = list(itertools.combinations(CLUES[name], 2))
        rng.shuffle(pairs)
        for i, (a, b) in enumerate(pairs[: SHOTS + HELD_OUT]):
            row = {"context": f"Clues: this animal {a}, and it {b}.", "class_names": CLASS_NAMES, "label": label}
            (train if i < SHOTS else test).append(row)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def build(form: str = "grpo", seed: int = 0, mode: str = "think") -> DatasetDict:
    """train (40 rows, 4 per class) / test (20 held-out rows) with CLS-RL prompts of `mode`."""
    if form != "grpo":
        raise ValueError(f"builtin:cls_animals has the form grpo, not {form!r}")
    config = ClsRLConfig(mode=mode, question_template=QUESTION_TEMPLATE, max_prompt_chars=MAX_PROMPT_CHARS)
    train, test = rows(seed)
    # The question (clues + class list) is kept as a column, so build_cls_prompts can switch the mode without the
    # template: a row's own `question` takes precedence over the transform's.
    part_rows = {
        name: [{**row, "question": question_text(row, config)} for row in part]
        for name, part in (("train", train), ("test", test))
    }
    split = {
        name: Dataset.from_list([{**row, **cls_prompt_row(row, config)} for row in part])
        for name, part in part_rows.items()
    }
    return DatasetDict(split)
