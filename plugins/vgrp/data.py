"""VGRP puzzles as dataset rows, generated in code; `builtin:vgrp`; a loader for the official JSON files.

Generation follows the official factories: a random full valid board, then `sample_hints` keeps k random cells as
clues (k = the difficulty knob). Puzzle i is drawn from its own generator seeded by (seed, i), so a dataset is the
same for any number of workers and a longer dataset extends a shorter one. Splits follow the official 8:1:1
train/val/ablation grouped by solution: a solution belongs to val when a hash of it falls in the val tenth, so val
solutions never occur in train; ablation is a tenth of the remaining puzzles (sharing solutions with train).

Columns: `prompt` (a user message: rules + text rendering of the board + the answer format), `init_board`,
`solution`, `side_info` (JSON strings), `game`, `size`, `num_clues`.

GRPO in TRL 1.16 does not truncate prompts: every prompt is kept within `MAX_PROMPT_CHARS` characters (checked
when built), which bounds it to as many tokens (a byte-level BPE token covers at least one byte) plus the chat
template's own.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from .config import VGRPConfig
from .games import get_game
from .puzzles import EMPTY, Board, Game, count_solutions
from .verify import format_grid

MAX_PROMPT_CHARS = 2000
SPLITS = ("train", "val", "ablation")
ANSWER_FORMAT = (
    "First copy the initial board under the heading Perception, writing 0 for every empty cell, then give the "
    "solved board under the heading Answer. Write each board on one line as [[a,b,...],[...]] with no spaces, "
    "exactly like this:\nPerception\n[[...]]\nAnswer\n[[...]]"
)


def sample_hints(solution: Board, k: int, rng: random.Random) -> Board:
    """The official `sample_hints`: keep k random cells of the solution, 0 elsewhere."""
    n = len(solution)
    board = [[EMPTY] * n for _ in range(n)]
    for cell in rng.sample(range(n * n), k):
        board[cell // n][cell % n] = solution[cell // n][cell % n]
    return board


def _make_unique(game: Game, solution: Board, init: Board, side: dict, rng: random.Random) -> Board:
    """Add clues from the solution (at random cells) until the puzzle has exactly one solution."""
    n = len(solution)
    empty = [(r, c) for r in range(n) for c in range(n) if init[r][c] == EMPTY]
    rng.shuffle(empty)
    while count_solutions(game, init, side) > 1:
        r, c = empty.pop()
        init[r][c] = solution[r][c]
    return init


def generate_puzzle(cfg: VGRPConfig, index: int) -> dict[str, Any]:
    """Puzzle `index` of the stream defined by `cfg` (game and size cycled over cfg.combos())."""
    combos = cfg.combos()
    name, n = combos[index % len(combos)]
    game = get_game(name)
    rng = random.Random(f"vgrp:{cfg.seed}:{name}:{n}:{index}")
    solution = game.random_solution(n, rng)
    if name == "futoshiki":
        side = game.random_side_info(solution, rng, cfg.futoshiki_density)
    else:  # cages, regions, view clues, ...; Sudoku and Binairo have none (and draw nothing)
        side = game.random_side_info(solution, rng)
    lo, hi = cfg.clue_range(name, n)
    k = rng.randint(lo, hi)
    init = sample_hints(solution, k, rng)
    if cfg.unique:
        for _ in range(20):  # resample the clue set first, so k stays the knob
            if count_solutions(game, init, side) == 1:
                break
            init = sample_hints(solution, k, rng)
        init = _make_unique(game, solution, init, side, rng)
    return puzzle_row(name, init, solution, side, cfg.render)


def render_board(game: Game, init: Board, side: dict, style: str = "rows") -> str:
    """The text stand-in for the benchmark's image of the board."""
    n = len(init)
    if style == "csv":
        grid = "\n".join(",".join(str(cell) for cell in row) for row in init)
        extra = game.render_extra(init, side)
        return grid + (f"\n{extra}" if extra else "")
    cells = [["." if cell == EMPTY else str(cell) for cell in row] for row in init]
    if game.name != "futoshiki":
        extra = game.render_extra(init, side)
        return "\n".join(" ".join(row) for row in cells) + (f"\n{extra}" if extra else "")
    row_signs, col_signs = side.get("row") or [], side.get("col") or []
    lines = []
    for r in range(n):
        signs = row_signs[r] if r < len(row_signs) else []
        line = cells[r][0]
        for c in range(1, n):
            sign = signs[c - 1] if c - 1 < len(signs) and signs[c - 1] else " "
            line += f" {sign} {cells[r][c]}"
        lines.append(line)
        if r < n - 1:
            signs = col_signs[r] if r < len(col_signs) else []
            lines.append("   ".join(signs[c] if c < len(signs) and signs[c] else " " for c in range(n)).rstrip())
    return "\n".join(lines)


def prompt_text(game: Game, init: Board, side: dict, style: str = "rows") -> str:
    n = len(init)
    empty = "'.'" if style == "rows" else "0"
    legend = (
        " '<'/'>' between cells and '^'/'v' between rows are the inequalities." if game.name == "futoshiki" else ""
    )
    return (
        f"Solve this {n}x{n} {game.title} puzzle.\nRules: {game.rules(n)}\n"
        f"The board (empty cells are {empty}).{legend}\n{render_board(game, init, side, style)}\n\n{ANSWER_FORMAT}"
    )


def puzzle_row(name: str, init: Board, solution: Board, side: dict, render: str = "rows") -> dict[str, Any]:
    game = get_game(name)
    prompt = prompt_text(game, init, side, render)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"a {name} {len(init)}x{len(init)} prompt has {len(prompt)} characters, over MAX_PROMPT_CHARS="
            f"{MAX_PROMPT_CHARS}: GRPO would not truncate it; use a smaller size"
        )
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "init_board": json.dumps(init),
        "solution": json.dumps(solution),
        "side_info": json.dumps(side),
        "game": name,
        "size": len(init),
        "num_clues": sum(cell != EMPTY for row in init for cell in row),
    }


def solution_split(solution: Any, index: int) -> str:
    """The official 8:1:1 split grouped by solution: val holds whole solution groups (one tenth of the solution
    hashes), ablation one tenth of the other puzzles (by index), train the rest."""
    key = format_grid(solution) if isinstance(solution, list) else str(solution)
    if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10 == 0:
        return "val"
    return "ablation" if int(hashlib.sha1(f"ablation:{index}".encode()).hexdigest(), 16) % 9 == 0 else "train"


def make_vgrp_dataset(cfg: VGRPConfig | None = None, n: int = 100, split: str = "train"):
    """`n` puzzles of `split` ("train", "val" or "ablation") as a `datasets.Dataset`, deterministic in `cfg`."""
    from datasets import Dataset

    return Dataset.from_list(make_vgrp_rows(cfg, n, split))


def make_vgrp_rows(cfg: VGRPConfig | None = None, n: int = 100, split: str = "train") -> list[dict[str, Any]]:
    cfg = cfg or VGRPConfig()
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    rows: list[dict[str, Any]] = []
    index = 0
    while len(rows) < n:
        if index > 1000 * (n + 10):
            raise RuntimeError(f"could not draw {n} {split} puzzles from {cfg}")
        row = generate_puzzle(cfg, index)
        if solution_split(json.loads(row["solution"]), index) == split:
            rows.append(row)
        index += 1
    return rows


def build(form: str = "grpo", seed: int = 0, n_train: int = 400, n_test: int = 50):
    """`builtin:vgrp`: 4x4 Sudoku with 8-10 clues (the card's demonstration setting), 400 train puzzles and 50
    held-out val puzzles (solutions disjoint from train) as the test split; form grpo."""
    from datasets import DatasetDict

    if form != "grpo":
        raise ValueError(f"builtin:vgrp has the form grpo, not {form!r}")
    cfg = VGRPConfig(games=["sudoku"], sizes=[4], num_clues=[8, 10], seed=seed)
    return DatasetDict(
        {"train": make_vgrp_dataset(cfg, n_train, "train"), "test": make_vgrp_dataset(cfg, n_test, "val")}
    )


def build_mixed(form: str = "grpo", seed: int = 0, n_train: int = 120, n_test: int = 30):
    """`builtin:vgrp_mixed`: 4x4 Sudoku, 4x4 Binairo and 4x4 Futoshiki (random clue counts), cycled."""
    from datasets import DatasetDict

    if form != "grpo":
        raise ValueError(f"builtin:vgrp_mixed has the form grpo, not {form!r}")
    cfg = VGRPConfig(games=["sudoku", "binairo", "futoshiki"], sizes=[4], seed=seed)
    return DatasetDict(
        {"train": make_vgrp_dataset(cfg, n_train, "train"), "test": make_vgrp_dataset(cfg, n_test, "val")}
    )


def load_official(path: str | Path, game: str, render: str = "rows"):
    """Rows from an official VGRP-Bench JSON file (a list of puzzles with `initialization` and `solution`; Futoshiki
    also `row_inequalities` / `col_inequalities`), for evaluating on the released data when it is local."""
    from datasets import Dataset

    puzzles = json.loads(Path(path).read_text())
    rows = []
    for puzzle in puzzles:
        init = puzzle["initialization"]
        init = [[0 if cell in ("*", "0") else cell for cell in row] for row in init]
        side = {}
        if game == "futoshiki":
            side = {"row": puzzle.get("row_inequalities") or [], "col": puzzle.get("col_inequalities") or []}
        rows.append(puzzle_row(game, init, puzzle["solution"], side, render))
    return Dataset.from_list(rows)
