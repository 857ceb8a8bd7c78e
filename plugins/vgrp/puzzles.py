"""VGRP-Bench's grid puzzles as text: the rules, random full boards, side information, a candidate-based solver and the
text rendering that stands in for the benchmark's images.

Implemented games (of the benchmark's 20): Sudoku (4x4, 9x9), Binairo (even sizes >= 4) and Futoshiki (sizes 3-9),
with the official rules: Sudoku rows/columns/boxes without repeats; Binairo rows and columns with as many 'w' as 'b'
and no three equal cells in a line (the official checker has no unique-lines rule); Futoshiki a Latin square with the
row inequalities '<'/'>' and the column inequalities '^' (top < bottom) / 'v' (top > bottom) of `side_info`.

A board is a list of rows; an empty cell is the integer 0 (the official initialisation); values are integers 1..n
(Sudoku, Futoshiki) or the strings 'w'/'b' (Binairo), as in the official JSON files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Board = list[list[Any]]
EMPTY = 0


@dataclass(frozen=True)
class Step:
    """One line of a solver trace: `op` is "set" (forced by `rule`), "try" (a guess) or "undo" (take back the guess
    at (row, col) and everything placed after it)."""

    op: str
    row: int
    col: int
    value: Any
    rule: str


class Game:
    """The rules of one puzzle type. Subclasses give the values, the units of the official checker, local
    consistency for the solver and the generator of full boards."""

    name: str = ""
    title: str = ""
    single_rule: str = ""
    # num_clues="random": the share of cells given, drawn uniformly in this range (ours)
    clue_fraction: tuple[float, float] = (0.2, 0.5)
    # Shading games: 'e' is an answer value (an unshaded cell), so a given 'e' binds the answer in strict mode
    unshaded_is_value: bool = False
    # The official evaluator skips givens written 0/'0'/'e'; Hitori's compares 'e' givens too
    official_skips_e_givens: bool = True

    def check_size(self, n: int) -> None:
        raise NotImplementedError

    def values(self, n: int) -> list[Any]:
        raise NotImplementedError

    def rules(self, n: int) -> str:
        raise NotImplementedError

    def random_solution(self, n: int, rng: random.Random) -> Board:
        raise NotImplementedError

    def random_side_info(self, solution: Board, rng: random.Random) -> dict:
        return {}

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """Whether value v at the empty cell (r, c) keeps every constraint through that cell satisfiable locally."""
        raise NotImplementedError

    def units(self, board: Board, side: dict) -> list[bool]:
        """Each constraint unit of a full board of valid values: satisfied or not (R_partial counts these)."""
        raise NotImplementedError

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        """The official `game_factory.check` on the answer's raw cell strings (no value-range test)."""
        raise NotImplementedError

    def render_extra(self, board: Board, side: dict) -> str:
        return ""


# What an official checker may raise on a malformed answer (a bad int(), a missing key): the answer then fails.
OFFICIAL_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError)


def spaced(values: list[Any]) -> str:
    """Clue numbers as the prompts print them: "1 2 3"."""
    return " ".join(str(v) for v in values)


def board_lines(board: Board) -> list[list[Any]]:
    """The rows, then the columns, of a square board."""
    n = len(board)
    return [list(row) for row in board] + [[board[r][c] for r in range(n)] for c in range(n)]


def _no_repeat(cells: list[Any], ignore_empty: bool = True) -> bool:
    vals = [x for x in cells if not (ignore_empty and x == EMPTY)]
    return len(vals) == len(set(vals))


class Sudoku(Game):
    name, title = "sudoku", "Sudoku"
    clue_fraction = (0.40, 0.75)
    single_rule = "only value its row, column and box allow"

    def check_size(self, n: int) -> None:
        if n < 4 or math.isqrt(n) ** 2 != n:
            raise ValueError(f"sudoku size {n} is not supported; sizes are perfect squares >= 4 (4, 9)")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        b = math.isqrt(n)
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row, each column and each {b}x{b} box "
            f"contains every number from 1 to {n} exactly once."
        )

    def _boxes(self, board: Board) -> list[list[Any]]:
        n = len(board)
        b = math.isqrt(n)
        return [
            [board[br + i][bc + j] for i in range(b) for j in range(b)]
            for br in range(0, n, b)
            for bc in range(0, n, b)
        ]

    def random_solution(self, n: int, rng: random.Random) -> Board:
        b = math.isqrt(n)
        bands = rng.sample(range(b), b)
        rows = [band * b + r for band in bands for r in rng.sample(range(b), b)]
        stacks = rng.sample(range(b), b)
        cols = [stack * b + c for stack in stacks for c in rng.sample(range(b), b)]
        digits = rng.sample(range(1, n + 1), n)
        board = [[digits[(b * (r % b) + r // b + c) % n] for c in cols] for r in rows]
        if rng.random() < 0.5:
            board = [list(row) for row in zip(*board, strict=True)]
        return board

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        b = math.isqrt(n)
        if any(board[r][j] == v for j in range(n)) or any(board[i][c] == v for i in range(n)):
            return False
        br, bc = r - r % b, c - c % b
        return not any(board[br + i][bc + j] == v for i in range(b) for j in range(b))

    def units(self, board: Board, side: dict) -> list[bool]:
        full = set(range(1, len(board) + 1))
        return [set(unit) == full and len(unit) == len(full) for unit in board_lines(board) + self._boxes(board)]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        return all(_no_repeat(unit) for unit in board_lines(board) + self._boxes(board))


class Binairo(Game):
    name, title = "binairo", "Binairo"
    clue_fraction = (0.35, 0.65)
    single_rule = "the other colour would unbalance its row or column or make three in a line"

    def check_size(self, n: int) -> None:
        if n < 4 or n % 2:
            raise ValueError(f"binairo size {n} is not supported; sizes are even numbers >= 4")

    def values(self, n: int) -> list[Any]:
        return ["w", "b"]

    def rules(self, n: int) -> str:
        return (
            "Fill every empty cell with w (white) or b (black) so that each row and each column has as many w as b "
            f"({n // 2} each) and no three adjacent cells in a row or column have the same colour."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        board = [[EMPTY] * n for _ in range(n)]

        def fill(k: int) -> bool:
            if k == n * n:
                return True
            r, c = divmod(k, n)
            for v in rng.sample(["w", "b"], 2):
                if self.allowed(board, r, c, v, {}):
                    board[r][c] = v
                    if fill(k + 1):
                        return True
                    board[r][c] = EMPTY
            return False

        fill(0)
        return board

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        for line, k in ((row, c), (col, r)):
            if line.count(v) > n // 2:
                return False
            for start in range(max(0, k - 2), min(n - 2, k + 1)):
                if line[start] == line[start + 1] == line[start + 2] == v:
                    return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        n = len(board)
        return [
            line.count("w") == line.count("b") == n // 2
            and not any(line[i] == line[i + 1] == line[i + 2] for i in range(n - 2))
            for line in board_lines(board)
        ]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        n = len(board)
        for line in board_lines(board):
            if EMPTY not in line and not (line.count("w") == line.count("b") == n // 2):
                return False
            if any(line[i] != EMPTY and line[i] == line[i + 1] == line[i + 2] for i in range(n - 2)):
                return False
        return True


class Futoshiki(Game):
    name, title = "futoshiki", "Futoshiki"
    clue_fraction = (0.20, 0.50)
    single_rule = "only value its row, column and inequalities allow"

    def check_size(self, n: int) -> None:
        if not 3 <= n <= 9:
            raise ValueError(f"futoshiki size {n} is not supported; sizes are 3 to 9")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row and each column contains every "
            "number exactly once and every inequality holds: '<' and '>' between horizontal neighbours, '^' between "
            "vertical neighbours means the upper cell is smaller, 'v' means the upper cell is larger."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        rows, cols, digits = rng.sample(range(n), n), rng.sample(range(n), n), rng.sample(range(1, n + 1), n)
        return [[digits[(r + c) % n] for c in cols] for r in rows]

    def random_side_info(self, solution: Board, rng: random.Random, density: float = 0.35) -> dict:
        n = len(solution)
        row = [
            [
                ("<" if solution[r][c] < solution[r][c + 1] else ">") if rng.random() < density else ""
                for c in range(n - 1)
            ]
            for r in range(n)
        ]
        col = [
            [("^" if solution[r][c] < solution[r + 1][c] else "v") if rng.random() < density else "" for c in range(n)]
            for r in range(n - 1)
        ]
        return {"row": row, "col": col}

    @staticmethod
    def _pairs(n: int, side: dict) -> list[tuple[int, int, int, int]]:
        """Each inequality as (r1, c1, r2, c2): cell 1 < cell 2."""
        out = []
        row, col = side.get("row") or [], side.get("col") or []
        for r, signs in enumerate(row):
            for c, s in enumerate(signs):
                if s == "<":
                    out.append((r, c, r, c + 1))
                elif s == ">":
                    out.append((r, c + 1, r, c))
        for r, signs in enumerate(col):
            for c, s in enumerate(signs):
                if s == "^":
                    out.append((r, c, r + 1, c))
                elif s == "v":
                    out.append((r + 1, c, r, c))
        return [p for p in out if all(0 <= k < n for k in p)]

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        if any(board[r][j] == v for j in range(n)) or any(board[i][c] == v for i in range(n)):
            return False
        for r1, c1, r2, c2 in self._pairs(n, side):
            if (r1, c1) == (r, c) and (v >= n or (board[r2][c2] != EMPTY and not v < board[r2][c2])):
                return False
            if (r2, c2) == (r, c) and (v <= 1 or (board[r1][c1] != EMPTY and not board[r1][c1] < v)):
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        full = set(range(1, len(board) + 1))
        lines = [set(line) == full for line in board_lines(board)]
        return lines + [board[r1][c1] < board[r2][c2] for r1, c1, r2, c2 in self._pairs(len(board), side)]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # The official ConstraintInequality compares the answer's raw strings: lexicographic order, as it ran.
        if not all(_no_repeat(line) for line in board_lines(board)):
            return False
        return all(board[r1][c1] < board[r2][c2] for r1, c1, r2, c2 in self._pairs(len(board), side))

    def render_extra(self, board: Board, side: dict) -> str:
        pairs = self._pairs(len(board), side)
        if not pairs:
            return "Inequalities: none"
        return "Inequalities: " + ", ".join(f"r{r1 + 1}c{c1 + 1} < r{r2 + 1}c{c2 + 1}" for r1, c1, r2, c2 in pairs)


GAMES: dict[str, Game] = {game.name: game for game in (Sudoku(), Binairo(), Futoshiki())}


def register_game(game: Game) -> Game:
    """Add a puzzle type (the other VGRP-Bench games live in their own modules, which call this at import)."""
    if game.name in GAMES:
        raise ValueError(f"vgrp game {game.name!r} is registered twice")
    GAMES[game.name] = game
    return game


def get_game(name: str) -> Game:
    try:
        return GAMES[name]
    except KeyError:
        raise ValueError(f"unknown vgrp game {name!r}; implemented: {', '.join(GAMES)}") from None


# --- the solver: naked singles, then guesses on the cell with the fewest candidates ---


def candidates(game: Game, board: Board, side: dict, r: int, c: int) -> list[Any]:
    return [v for v in game.values(len(board)) if game.allowed(board, r, c, v, side)]


class _Budget(Exception):
    pass


def solve(
    game: Game,
    init: Board,
    side: dict,
    limit: int = 1,
    trace: list[Step] | None = None,
    max_nodes: int = 200_000,
) -> list[Board]:
    """Up to `limit` solutions of the puzzle (givens `init`, 0 = empty), found by naked singles and then guesses on
    the cell with the fewest candidates (values in ascending order, cells in row-major order). With `trace`, appends
    the Steps that lead from `init` to the first solution. Raises RuntimeError past `max_nodes` candidate sets."""
    board = [list(row) for row in init]
    n = len(board)
    found: list[Board] = []
    nodes = [0]
    log: Callable[[Step], None] = trace.append if trace is not None and limit == 1 else (lambda step: None)

    def search() -> bool:
        placed: list[tuple[int, int]] = []
        while True:
            best = None
            single = None
            for r in range(n):
                for c in range(n):
                    if board[r][c] != EMPTY:
                        continue
                    nodes[0] += 1
                    if nodes[0] > max_nodes:
                        raise _Budget
                    cand = candidates(game, board, side, r, c)
                    if not cand:
                        for rr, cc in placed:
                            board[rr][cc] = EMPTY
                        return False
                    if len(cand) == 1 and single is None:
                        single = (r, c, cand[0])
                    if best is None or len(cand) < len(best[2]):
                        best = (r, c, cand)
            if best is None:
                found.append([list(row) for row in board])
                if len(found) >= limit:
                    return True
                for rr, cc in placed:
                    board[rr][cc] = EMPTY
                return False
            if single is not None:
                r, c, v = single
                board[r][c] = v
                placed.append((r, c))
                log(Step("set", r, c, v, f"naked single: {game.single_rule}"))
                continue
            r, c, cand = best
            for v in cand:
                board[r][c] = v
                log(Step("try", r, c, v, f"guess: candidates {'/'.join(map(str, cand))}"))
                if search():
                    return True
                board[r][c] = EMPTY
                log(Step("undo", r, c, v, "contradiction: some cell has no candidate"))
            for rr, cc in placed:
                board[rr][cc] = EMPTY
            return False

    try:
        search()
    except _Budget:
        raise RuntimeError(f"{game.name} solver gave up after {max_nodes} candidate sets") from None
    return found


def count_solutions(game: Game, init: Board, side: dict, limit: int = 2, max_nodes: int = 200_000) -> int:
    return len(solve(game, init, side, limit=limit, max_nodes=max_nodes))
