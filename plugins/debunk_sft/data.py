"""Built-in data: prompt-template families for the paper's two tasks, generated in code.

- `builtin:debunk_sokoban`: one-step Sokoban (next best action, labelled by BFS) under the frozen standard instruction
  (Up/Down/Left/Right); splits train and test (6x6 grids with border walls, i.e. a 4x4 floor, one box; disjoint
  states drawn from all solvable ones), hard (7x7, one box) and two_boxes (7x7, two boxes).
- `builtin:debunk_points`: 24-style card arithmetic under the official rule (J, Q, K count as 10); splits train, test.
"""

from __future__ import annotations

import functools
import itertools
import json
import random

from datasets import Dataset, DatasetDict

from . import cards as card_game
from . import sokoban
from .transforms import (
    PRESETS,
    STANDARD_WORDS,
    answer_tag,
    mapping_json,
    standard_points_prompt,
    standard_sokoban_prompt,
)

FORMS = ("sft", "grpo")


@functools.lru_cache(maxsize=4)
def _all_small_states(size: int = 5) -> tuple[tuple[str, ...], ...]:
    """Every solvable, unsolved one-box state of a `size` x `size` grid with border walls, in a fixed order."""
    inner = [(r, c) for r in range(1, size - 1) for c in range(1, size - 1)]
    grids = []
    for target, box, player in itertools.permutations(inner, 3):
        grid = [["#" if r in (0, size - 1) or c in (0, size - 1) else "_" for c in range(size)] for r in range(size)]
        grid[target[0]][target[1]], grid[box[0]][box[1]], grid[player[0]][player[1]] = "O", "X", "P"
        rows = tuple("".join(row) for row in grid)
        if sokoban.Board(rows).plan():
            grids.append(rows)
    return tuple(grids)


def sokoban_row(grid: tuple[str, ...], form: str) -> dict:
    plan = sokoban.Board(grid).plan()
    assert plan, grid
    prompt = [{"role": "user", "content": standard_sokoban_prompt(grid)}]
    row = {
        "prompt": prompt,
        "actions": [plan[0]],
        "grid": list(grid),
        "action_mapping": mapping_json(STANDARD_WORDS),
        "action_words": list(STANDARD_WORDS),
    }
    if form == "sft":
        row["completion"] = [{"role": "assistant", "content": answer_tag(STANDARD_WORDS[plan[0] - 1])}]
    return row


def build_sokoban(form: str | None = None, seed: int = 0, n_train: int = 300, n_test: int = 100,
                  n_hard: int = 60) -> DatasetDict:  # fmt: skip
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"debunk_sokoban comes in the forms {FORMS}, not {form!r}.")
    rng = random.Random(seed)
    grids = list(_all_small_states(6))
    rng.shuffle(grids)
    train, test = grids[:n_train], grids[n_train : n_train + n_test]
    hard = [sokoban.random_puzzle(rng, 7, 1) for _ in range(n_hard)]
    two = [sokoban.random_puzzle(rng, 7, 2) for _ in range(n_hard)]
    return DatasetDict(
        {
            name: Dataset.from_list([sokoban_row(g, form) for g in split])
            for name, split in (("train", train), ("test", test), ("hard", hard), ("two_boxes", two))
        }
    )


CARD_FACES = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")


def points_row(cards: list[str], form: str, target: int = 24) -> dict | None:
    faces = dict(zip(card_game.FACES, PRESETS["standard"][0], strict=True))
    values = card_game.card_values(cards, faces)
    expr = card_game.solve(values, target)
    if expr is None:
        return None
    prompt = [{"role": "user", "content": standard_points_prompt(cards, target, faces)}]
    row = {
        "prompt": prompt,
        "cards": cards,
        "card_values": values,
        "face_values": json.dumps(faces),
        "target": target,
        "answer": expr,
    }
    if form == "sft":
        row["completion"] = [{"role": "assistant", "content": answer_tag(expr)}]
    return row


def build_points(form: str | None = None, seed: int = 0, n_train: int = 200, n_test: int = 50) -> DatasetDict:
    form = form or FORMS[0]
    if form not in FORMS:
        raise ValueError(f"debunk_points comes in the forms {FORMS}, not {form!r}.")
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n_train + n_test:
        cards = sorted(rng.choices(CARD_FACES, k=4), key=CARD_FACES.index)
        if tuple(cards) in seen:
            continue
        seen.add(tuple(cards))
        row = points_row(cards, form)
        if row is not None:
            rows.append(row)
    return DatasetDict({"train": Dataset.from_list(rows[:n_train]), "test": Dataset.from_list(rows[n_train:])})
