"""`builtin:vrft_shapes`: the card's text path, a synthetic picture described in words.

Each row's picture is a 32×32 RGB image of one colored shape (circle, square or triangle; red, green, blue or yellow;
small or large) on white, stored in `frames` (a one-frame list of H×W×3 uint8 arrays as nested lists) for
`vrft_semantic_reward` only: the text-only policy reads the prompt, which describes the picture in words and asks a
multiple-choice question (its color, answer a letter) or a numerical one (its corners: 0, 3 or 4). Columns: `prompt`,
`solution` ("<answer>…</answer>"), `problem_type`, `frames`, `description`. 48 rows, 32 train / 16 test (seeded).

The column is `frames`, not `image`: GRPOTrainer treats an `image` column as the policy's input (a VLM's), which a
text-only policy cannot take. Prompts stay under 700 characters.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
from datasets import Dataset, DatasetDict

COLORS = {"red": (220, 30, 30), "green": (30, 170, 30), "blue": (30, 60, 220), "yellow": (235, 210, 20)}
SHAPES = {"circle": 0, "square": 4, "triangle": 3}  # shape -> corners
SIZES = {"small": 6, "large": 13}  # half-width in pixels
SIZE = 32
NUM_TEST = 16
MAX_PROMPT_CHARS = 700
INSTRUCTION = (
    "Think about the question step by step as a person looking at the picture would. Give your reasoning between "
    "the <think> </think> tags, then the final answer between the <answer> </answer> tags."
)
TYPE_INSTRUCTION = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D) within the <answer> </answer> "
    "tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags.",
}


def draw(color: str, shape: str, size: str) -> np.ndarray:
    """The picture: a centred shape of the color on white, H×W×3 uint8."""
    image = np.full((SIZE, SIZE, 3), 255, np.uint8)
    y, x = np.mgrid[:SIZE, :SIZE]
    c, h = (SIZE - 1) / 2, SIZES[size]
    if shape == "circle":
        mask = (x - c) ** 2 + (y - c) ** 2 <= h**2
    elif shape == "square":
        mask = (abs(x - c) <= h) & (abs(y - c) <= h)
    else:  # apex up: the half-width grows from 0 at the top to h at the base
        mask = (y >= c - h) & (y <= c + h) & (abs(x - c) <= (y - (c - h)) / 2)
    image[mask] = COLORS[color]
    return image


def _row(color: str, shape: str, size: str, problem_type: str) -> dict:
    description = f"The picture shows a {size} {color} {shape} on a white background."
    if problem_type == "multiple choice":
        options = list(COLORS)
        letters = "ABCD"
        question = "What color is the shape? Options: " + " ".join(
            f"{letter}. {option}" for letter, option in zip(letters, options, strict=True)
        )
        answer = letters[options.index(color)]
    else:
        question = "How many corners does the shape have?"
        answer = str(SHAPES[shape])
    text = f"{description}\nQuestion: {question}\n{INSTRUCTION}{TYPE_INSTRUCTION[problem_type]}"
    if len(text) > MAX_PROMPT_CHARS:  # a guard on the templates above
        raise AssertionError(f"builtin:vrft_shapes prompt of {len(text)} characters exceeds {MAX_PROMPT_CHARS}")
    return {
        "prompt": [{"role": "user", "content": text}],
        "solution": f"<answer>{answer}</answer>",
        "problem_type": problem_type,
        "frames": [draw(color, shape, size).tolist()],
        "description": description,
    }


def build(form: str = "grpo", seed: int = 0) -> DatasetDict:
    """train (32 rows) / test (16 rows), shuffled with `seed`."""
    if form != "grpo":
        raise ValueError(f"builtin:vrft_shapes has the form grpo, not {form!r}")
    combos = list(itertools.product(COLORS, SHAPES, SIZES, ("multiple choice", "numerical")))
    random.Random(seed).shuffle(combos)
    rows = [_row(*combo) for combo in combos]
    return DatasetDict({"train": Dataset.from_list(rows[NUM_TEST:]), "test": Dataset.from_list(rows[:NUM_TEST])})
