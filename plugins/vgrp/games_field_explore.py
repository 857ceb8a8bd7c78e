"""VGRP-Bench's Field Explore, a Minesweeper-like puzzle (arXiv:2503.23064; rules and checker as in
ryf1123/VGRP-Bench at fceb58d, src/puzzles/fieldexplore.py and the fieldexplore branches of src/evaluate.py).

Some cells hide mines ('s'). Every other cell holds the number of mines among its up to 8 neighbours (diagonals
included), written 'e' when that number is 0 (a blank). The board reveals some cells (numbers, blanks, mines); the
answer is the whole field: 's' on every mine and the neighbour count (or 'e') on every other cell. Every cell comes
from one random mine layout, so `sample_hints` reveals cells of the full field, as the official data reads: its
initial board holds revealed numbers and mines, -1 for a hidden cell. There is no side information.

Encoding (ours): the official files write a revealed blank as the integer 0 and a hidden cell as -1, and the
official perception check turns -1 into 0, so a revealed blank and a hidden cell read the same there. Here 0 is the
empty (hidden) cell of every game, so a revealed blank is 'e' and the perception must copy it as 'e'.

The official checker (src/evaluate.py, `check_answer`): an n x n answer must keep 's' on every given mine and hold no
's' on a given number above 0; it then returns True without ever calling the factory's check, so the neighbour-count
constraint (`ConstraintAdjacentNumbers`: for each non-zero int cell, mines <= number <= mines + undecided) never runs
on an answer. Any answer of the right shape that keeps the mines and puts no mine on a number passes, the initial
board copied as it is included. `official_check` reproduces that (True). The givens check before it is the shared
one of verify.py: a given other than 0/'0'/'e' must be copied as the same string, so a number given must be kept
(the official code only forbids a mine there: an answer writing 'e', '0' or another number on it passes there and
fails here), and a given blank 'e' is not enforced (the official code, reading int 0 there, does not enforce it
either, not even against a mine).

The strict parser reads 'e' (and '0') as the integer 0, so `values` lists 0 too: the answer may write it for a
blank, the solver never places it (`allowed` rejects it).
"""

from __future__ import annotations

import functools
import random
from typing import Any

from .puzzles import EMPTY, Board, Game, register_game

MINE, BLANK = "s", "e"
MAX_COUNT = 8
_AROUND = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
# The share of mines in a random layout, drawn per puzzle (ours; the official generator is not released).
MINE_DENSITY = (0.15, 0.35)


def _around(n: int, r: int, c: int) -> list[tuple[int, int]]:
    """The up to 8 cells that touch (r, c), diagonals included."""
    return [(r + dr, c + dc) for dr, dc in _AROUND if 0 <= r + dr < n and 0 <= c + dc < n]


@functools.lru_cache(maxsize=16)
def _around_table(n: int) -> tuple[tuple[tuple[tuple[int, int], ...], ...], ...]:
    """`_around` of every cell of an n x n board, computed once per size (the solver asks for it constantly)."""
    return tuple(tuple(tuple(_around(n, r, c)) for c in range(n)) for r in range(n))


def _count(value: Any) -> int | None:
    """The neighbour count a safe cell's value states (a blank states 0); None for a mine, an undecided cell or a
    value of no kind."""
    if value == BLANK:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT:
        return value
    return None


def mine_field(mines: list[list[bool]]) -> Board:
    """The full field of a mine layout: 's' on mines, the neighbour count elsewhere ('e' for none)."""
    n = len(mines)
    return [
        [MINE if mines[r][c] else (sum(mines[i][j] for i, j in _around(n, r, c)) or BLANK) for c in range(n)]
        for r in range(n)
    ]


class FieldExplore(Game):
    name, title = "fieldexplore", "Field Explore"
    single_rule = "the only mark the counts around it allow"
    clue_fraction = (0.45, 0.7)  # ours
    unshaded_is_value = True  # a given blank binds the answer in strict mode, as a given number does

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 7:  # ours: at 8 the uniqueness check can exceed the solver budget (200k candidate sets)
            raise ValueError(f"fieldexplore size {n} is not supported; sizes are 4 to 7")

    def values(self, n: int) -> list[Any]:
        return [MINE, BLANK, EMPTY, *range(1, MAX_COUNT + 1)]

    def rules(self, n: int) -> str:
        return (
            "Some cells hide mines. Every other cell shows how many of its up to 8 neighbouring cells (diagonal ones "
            "included) hold a mine. In the board, s is a revealed mine, a number is a revealed cell with that many "
            "neighbouring mines, e is a revealed cell with no neighbouring mine, and the other cells are hidden. "
            "Answer with the whole field: s in every mine cell, and in every other cell the number of mines around "
            "it, or e when there is none; keep every revealed cell. In the Perception copy s, e and the numbers as "
            "they are and write 0 for each hidden cell."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        density = rng.uniform(*MINE_DENSITY)
        return mine_field([[rng.random() < density for _ in range(n)] for _ in range(n)])

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """v at (r, c) keeps every count at or beside (r, c) reachable: mines <= count <= mines + undecided."""
        if v != MINE and _count(v) is None:
            return False
        around = _around_table(len(board))
        if v != MINE and v != BLANK and v > len(around[r][c]):
            return False
        for i, j in ((r, c), *around[r][c]):
            want = _count(v if (i, j) == (r, c) else board[i][j])
            if want is None:
                continue
            mines = undecided = 0
            for a, b in around[i][j]:
                x = v if (a, b) == (r, c) else board[a][b]
                if x == MINE:
                    mines += 1
                elif x == EMPTY:
                    undecided += 1
            if not mines <= want <= mines + undecided:
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        """One unit per cell that is not a mine: its value states its neighbour count (a blank, 'e' or the strict
        parser's 0, states none). Mines get no unit: a full field's mines are checked only through the counts
        around them, and a unit that every mine passed would pay an answer for marking everything a mine."""
        n = len(board)
        out = []
        for r in range(n):
            for c in range(n):
                value = board[r][c]
                if value == MINE:
                    continue
                want = 0 if value == EMPTY else _count(value)
                out.append(want is not None and want == sum(board[i][j] == MINE for i, j in _around(n, r, c)))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer's fieldexplore branch returns True after its givens loop: the constraint never runs.
        return True


FIELDEXPLORE = register_game(FieldExplore())
