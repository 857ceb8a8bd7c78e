"""VGRP-Bench games whose side information is a set of clues around or between the cells: Skyscraper, Renzoku,
Kakurasu and Thermometers (arXiv:2503.23064; rules and checkers as in ryf1123/VGRP-Bench at fceb58d,
src/puzzles/{skyscraper,renzoku,kakurasu,thermometers}.py).

- Skyscraper: a Latin square of heights 1..n; a clue outside the grid says how many buildings are seen from that
  side (a building hides every lower one behind it). Side info (the official `clues`):
  {"top", "bottom", "left", "right"}: n ints each, 0 = no clue; top/bottom per column, left/right per row.
- Renzoku: a Latin square; a dot between two neighbours means their numbers differ by exactly 1. Side info (the
  official `hints`): {"row": n x (n-1) strings, "col": (n-1) x n strings}, "1" = dot, "0" = none. The official
  checker enforces the dots only (a missing dot does not forbid consecutive numbers), and so do we.
- Kakurasu: shade cells ('s', unshaded 'e'); a row's clue is the sum of the column numbers (1..n, left to right)
  of its shaded cells, a column's clue the sum of the row numbers (1..n, top to bottom). Side info (the official
  `clues`): {"row_clues": n ints, "col_clues": n ints}.
- Thermometers: fill ('s') cells of the thermometers from the bulb up without gaps; the row and column clues count
  the filled cells; a cell outside every thermometer stays 'e'. Side info (the official `clues`):
  {"thermometers": [[[r, c], ...] bulb first, ...], "row_counts": n ints, "col_counts": n ints}.

Two-symbol games: the solution holds 's'/'e' as in the official files; the strict parser reads 'e' (and '0') as the
integer 0, so `values` also lists 0, which the answer may hold as "unshaded" and the solver never places.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Any

from .puzzles import EMPTY, OFFICIAL_ERRORS, Board, Game, board_lines, register_game, spaced

SHADED, UNSHADED = "s", "e"
_UNSHADED_MARKS = (UNSHADED, EMPTY)  # an answer's unshaded cell: 'e', or 0 as the strict parser reads 'e'/'0'


# --- shared helpers ---


def random_latin(n: int, rng: random.Random) -> Board:
    """A random Latin square by randomised backtracking (more varied than the cyclic squares of Futoshiki)."""
    board = [[EMPTY] * n for _ in range(n)]

    def fill(k: int) -> bool:
        if k == n * n:
            return True
        r, c = divmod(k, n)
        used = set(board[r][:c]) | {board[i][c] for i in range(r)}
        for v in rng.sample(range(1, n + 1), n):
            if v not in used:
                board[r][c] = v
                if fill(k + 1):
                    return True
        board[r][c] = EMPTY
        return False

    fill(0)
    return board


def _latin_units(board: Board) -> list[bool]:
    """Each row and column holds 1..n exactly once."""
    full = set(range(1, len(board) + 1))
    return [len(line) == len(full) and set(line) == full for line in board_lines(board)]


def _no_repeat_in_line(board: Board, r: int, c: int, v: Any) -> bool:
    n = len(board)
    return not any(board[r][j] == v for j in range(n)) and not any(board[i][c] == v for i in range(n))


def _official_no_repeat(board: list[list[Any]]) -> bool:
    """The official ConstraintRowNoRepeat / ConstraintColNoRepeat: raw cells, only the integer 0 skipped (an
    answer's cells are strings, so "0" counts as a value and " 1" differs from "1")."""
    for line in board_lines(board):
        vals = [x for x in line if x != 0]
        if len(vals) != len(set(vals)):
            return False
    return True


def _rc(r: int, c: int) -> str:
    return f"r{r + 1}c{c + 1}"


# --- Skyscraper ---


def visible(heights: list[Any]) -> int:
    """Buildings seen from the start of the line: each one taller than all before it (the official
    `calculate_visible_buildings`, which reads every height with int(), so " 2" counts as 2 and a 0 is never
    seen)."""
    seen, tallest = 0, 0
    for h in heights:
        if int(h) > tallest:
            seen, tallest = seen + 1, int(h)
    return seen


@functools.lru_cache(maxsize=200_000)
def _line_can_show(line: tuple[int, ...], front: int, back: int) -> bool:
    """Whether the empty cells (0) of a line without repeats can take the missing heights so that `front`
    buildings are seen from its start and `back` from its end (0 = no clue). Cached: the solver asks about the same
    partial lines again and again."""
    missing = [h for h in range(1, len(line) + 1) if h not in line]
    holes = [k for k, h in enumerate(line) if h == EMPTY]
    for fill in itertools.permutations(missing):
        full = list(line)
        for k, h in zip(holes, fill, strict=True):
            full[k] = h
        if (not front or visible(full) == front) and (not back or visible(full[::-1]) == back):
            return True
    return False


class Skyscraper(Game):
    name, title = "skyscraper", "Skyscraper"
    single_rule = "only height its row, column and view clues allow"
    clue_fraction = (0.0, 0.25)  # givens besides the view clues (ours; every view clue is shown)
    SIDES = ("top", "bottom", "left", "right")

    def check_size(self, n: int) -> None:
        if (
            not 4 <= n <= 6
        ):  # the official factory takes 4-12; from 7 the generic solver is too slow to check uniqueness
            raise ValueError(f"skyscraper size {n} is not supported; sizes are 4 to 6")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        return (
            f"Fill every empty cell with a building height from 1 to {n} so that each row and each column contains "
            "every height exactly once. A clue outside the grid is the number of buildings seen from that side "
            "looking along its row or column: a building is seen when it is taller than every building in front "
            "of it. A clue of 0 means no clue."
        )

    @staticmethod
    def sight_line(board: Board, key: str, i: int) -> list[tuple[int, int]]:
        """The cells seen from clue `key` number i, nearest first."""
        n = len(board)
        if key == "top":
            return [(r, i) for r in range(n)]
        if key == "bottom":
            return [(r, i) for r in range(n - 1, -1, -1)]
        if key == "left":
            return [(i, c) for c in range(n)]
        return [(i, c) for c in range(n - 1, -1, -1)]

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return random_latin(n, rng)

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """Every view clue of the solution (ours: the official generator's clue selection is not released)."""
        n = len(solution)
        return {
            key: [visible([solution[r][c] for r, c in self.sight_line(solution, key, i)]) for i in range(n)]
            for key in self.SIDES
        }

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """No repeat, and the row and the column through (r, c) can still be completed to a line that shows its
        two view clues (checked exactly, over the fillings of the line's empty cells)."""
        n = len(board)
        if not _no_repeat_in_line(board, r, c, v):
            return False
        row = tuple(v if j == c else board[r][j] for j in range(n))
        col = tuple(v if i == r else board[i][c] for i in range(n))
        return _line_can_show(row, side["left"][r], side["right"][r]) and _line_can_show(
            col, side["top"][c], side["bottom"][c]
        )

    def units(self, board: Board, side: dict) -> list[bool]:
        n = len(board)
        out = _latin_units(board)
        for key in self.SIDES:
            for i, clue in enumerate(side.get(key) or []):
                if clue and i < n:
                    line = [board[r][c] for r, c in self.sight_line(board, key, i)]
                    out.append(all(isinstance(h, int) for h in line) and visible(line) == clue)
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # ConstraintRowNoRepeat, ConstraintColNoRepeat, then ConstraintVisibility: a clue's line is checked when it
        # holds no integer 0 (always, for an answer of strings), each height read with int(); an error is False,
        # as the official check_answer's except. A cell whose row and column carry no clue is never read.
        try:
            if not _official_no_repeat(board):
                return False
            n = len(board)
            for i in range(n):
                for key in self.SIDES:
                    clue = side[key][i]
                    if clue != 0:
                        line = [board[r][c] for r, c in self.sight_line(board, key, i)]
                        if 0 not in line and visible(line) != clue:
                            return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        return (
            "View clues (0 = no clue):\n"
            f"top (looking down each column, left to right): {spaced(side.get('top') or [])}\n"
            f"bottom (looking up each column, left to right): {spaced(side.get('bottom') or [])}\n"
            f"left (looking along each row from the left, top to bottom): {spaced(side.get('left') or [])}\n"
            f"right (looking along each row from the right, top to bottom): {spaced(side.get('right') or [])}"
        )


# --- Renzoku ---


def renzoku_dots(n: int, side: dict) -> list[tuple[int, int, int, int]]:
    """Each dot as (r1, c1, r2, c2). As the official ConstraintAdjacency: a hint counts only as the string "1", and
    a "row" list with fewer than n rows (or a "col" list with fewer than n - 1) is read as no hints at all."""
    row = side.get("row") or []
    col = side.get("col") or []
    row = row if len(row) >= n else []
    col = col if len(col) >= n - 1 else []
    dots = [(r, c, r, c + 1) for r in range(min(n, len(row))) for c, h in enumerate(row[r][: n - 1]) if h == "1"]
    dots += [(r, c, r + 1, c) for r in range(min(n - 1, len(col))) for c, h in enumerate(col[r][:n]) if h == "1"]
    return dots


class Renzoku(Game):
    name, title = "renzoku", "Renzoku"
    single_rule = "only value its row, column and dots allow"
    clue_fraction = (0.2, 0.45)  # ours

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 7:  # the official factory takes 4-12
            raise ValueError(f"renzoku size {n} is not supported; sizes are 4 to 7")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row and each column contains every "
            "number exactly once. A dot between two neighbouring cells means their numbers differ by exactly 1 "
            "(cells without a dot between them may hold any numbers)."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return random_latin(n, rng)

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """A dot between every pair of consecutive neighbours (the Renzoku convention; ours, as the official
        generator is not released)."""
        n = len(solution)

        def mark(a: int, b: int) -> str:
            return "1" if abs(a - b) == 1 else "0"

        return {
            "row": [[mark(solution[r][c], solution[r][c + 1]) for c in range(n - 1)] for r in range(n)],
            "col": [[mark(solution[r][c], solution[r + 1][c]) for c in range(n)] for r in range(n - 1)],
        }

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if not _no_repeat_in_line(board, r, c, v):
            return False
        n = len(board)
        for r1, c1, r2, c2 in renzoku_dots(n, side):
            if (r, c) not in ((r1, c1), (r2, c2)):
                continue
            rr, cc = (r2, c2) if (r1, c1) == (r, c) else (r1, c1)
            if board[rr][cc] != EMPTY:
                if abs(v - board[rr][cc]) != 1:
                    return False
            else:  # the empty neighbour must still be able to take v - 1 or v + 1
                row_vals = {board[rr][j] for j in range(n)} | ({v} if rr == r else set())
                col_vals = {board[i][cc] for i in range(n)} | ({v} if cc == c else set())
                if not any(1 <= w <= n and w not in row_vals and w not in col_vals for w in (v - 1, v + 1)):
                    return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        out = _latin_units(board)
        for r1, c1, r2, c2 in renzoku_dots(len(board), side):
            a, b = board[r1][c1], board[r2][c2]
            out.append(isinstance(a, int) and isinstance(b, int) and abs(a - b) == 1)
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # No-repeat on raw strings, then ConstraintAdjacency: every cell other than the integer 0 is read with int()
        # (a non-number fails the whole check), and a dot next to a cell that reads 0 (an answer's "0") is skipped.
        try:
            if not _official_no_repeat(board):
                return False
            n = len(board)
            row = side.get("row", [])
            col = side.get("col", [])
            if len(row) < n:
                row = [["0"] * (n - 1) for _ in range(n)]
            if len(col) < n - 1:
                col = [["0"] * n for _ in range(n - 1)]
            nums = [[int(x) if x != 0 else 0 for x in line] for line in board]
            for r in range(n):
                for c in range(n - 1):
                    a, b = nums[r][c], nums[r][c + 1]
                    if row[r][c] == "1" and a != 0 and b != 0 and abs(a - b) != 1:
                        return False
            for r in range(n - 1):
                for c in range(n):
                    a, b = nums[r][c], nums[r + 1][c]
                    if col[r][c] == "1" and a != 0 and b != 0 and abs(a - b) != 1:
                        return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        dots = renzoku_dots(len(board), side)
        listed = ", ".join(f"{_rc(r1, c1)}-{_rc(r2, c2)}" for r1, c1, r2, c2 in dots) or "none"
        return f"Dots (neighbouring cells that differ by exactly 1): {listed}"


# --- Kakurasu and Thermometers: shade cells ---


def is_shaded(cell: Any) -> bool:
    return cell == SHADED


def is_shading_value(cell: Any) -> bool:
    """An answer cell that is a value of a shading game ('s', 'e', or 0 as the strict parser reads 'e')."""
    return cell == SHADED or cell in _UNSHADED_MARKS


class ShadingGame(Game):
    """Cells are 's' (shaded) or 'e' (unshaded); 0 is listed as a value only so the strict verifier accepts its
    reading of 'e' (and '0'); `allowed` never lets the solver place it."""

    unshaded_is_value = True

    def values(self, n: int) -> list[Any]:
        return [SHADED, UNSHADED, EMPTY]

    @staticmethod
    def _legend() -> str:
        return (
            "Answer with s for a shaded cell and e for an unshaded one. In the board, s and e are given cells; in "
            "the Perception copy them as they are and write 0 for each empty cell."
        )


@functools.lru_cache(maxsize=4096)
def _subset_sums(weights: tuple[int, ...]) -> frozenset[int]:
    sums = {0}
    for w in weights:
        sums |= {x + w for x in sums}
    return frozenset(sums)


class Kakurasu(ShadingGame):
    name, title = "kakurasu", "Kakurasu"
    single_rule = "the other choice would make a row or column sum unreachable"
    clue_fraction = (0.0, 0.2)  # ours

    def check_size(self, n: int) -> None:
        if not 3 <= n <= 7:  # the official factory takes >= 3; from 8 uniqueness checks take seconds
            raise ValueError(f"kakurasu size {n} is not supported; sizes are 3 to 7")

    def rules(self, n: int) -> str:
        return (
            f"Shade some cells. Columns are numbered 1 to {n} from left to right and rows 1 to {n} from top to "
            "bottom. Each row clue is the sum of the column numbers of the shaded cells in that row; each column "
            "clue is the sum of the row numbers of the shaded cells in that column. "
        ) + self._legend()

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return [[SHADED if rng.random() < 0.5 else UNSHADED for _ in range(n)] for _ in range(n)]

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        n = len(solution)
        return {
            "row_clues": [sum(c + 1 for c in range(n) if is_shaded(solution[r][c])) for r in range(n)],
            "col_clues": [sum(r + 1 for r in range(n) if is_shaded(solution[r][c])) for c in range(n)],
        }

    @staticmethod
    def _line_reachable(cells: list[Any], clue: int) -> bool:
        """Some subset of the undecided cells' weights brings the shaded weight to the clue exactly (stronger than
        the official partial check, shaded <= clue <= shaded + undecided, and still never wrong)."""
        done = sum(k + 1 for k, x in enumerate(cells) if is_shaded(x))
        return clue - done in _subset_sums(tuple(k + 1 for k, x in enumerate(cells) if x == EMPTY))

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if v not in (SHADED, UNSHADED):
            return False
        n = len(board)
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        return self._line_reachable(row, side["row_clues"][r]) and self._line_reachable(col, side["col_clues"][c])

    def units(self, board: Board, side: dict) -> list[bool]:
        clues = list(side["row_clues"]) + list(side["col_clues"])
        return [
            all(is_shading_value(x) for x in line) and sum(k + 1 for k, x in enumerate(line) if is_shaded(x)) == clue
            for line, clue in zip(board_lines(board), clues, strict=True)
        ]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer turns 0/'0' into 'e'; ConstraintKakurasuSum then counts only cells equal to 's', so any
        # other string (' s', 'S', 'x') reads as unshaded; a line without the integer 0 (always, after the
        # conversion) must hit its clue exactly.
        try:
            cells = [[UNSHADED if x in (0, "0") else x for x in row] for row in board]
            n = len(cells)
            for i in range(n):
                if sum(j + 1 for j in range(n) if cells[i][j] == SHADED) != side["row_clues"][i]:
                    return False
            for i in range(n):
                if sum(j + 1 for j in range(n) if cells[j][i] == SHADED) != side["col_clues"][i]:
                    return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        return (
            f"Row clues (top to bottom): {spaced(side.get('row_clues') or [])}\n"
            f"Column clues (left to right): {spaced(side.get('col_clues') or [])}"
        )


def _thermo_index(side: dict) -> dict[tuple[int, int], tuple[int, int]]:
    """Cell -> (thermometer, position from the bulb)."""
    return {(r, c): (t, k) for t, therm in enumerate(side.get("thermometers") or []) for k, (r, c) in enumerate(therm)}


class Thermometers(ShadingGame):
    name, title = "thermometers", "Thermometers"
    single_rule = "the other choice would break a thermometer or a row or column count"
    clue_fraction = (0.0, 0.2)  # ours
    MAX_LENGTH = 4  # longest thermometer drawn (ours)

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 6:  # the official factory takes >= 4; from 7 uniqueness checks take seconds
            raise ValueError(f"thermometers size {n} is not supported; sizes are 4 to 6")

    def rules(self, n: int) -> str:
        return (
            "Fill (shade) cells of the thermometers. Each thermometer is filled from its bulb (its first cell) "
            "towards its end without gaps: a cell may be filled only when every cell between it and the bulb is "
            "filled. A cell outside every thermometer stays unshaded. Each row and column clue is the number of "
            "filled cells in that row or column. "
        ) + self._legend()

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return [[SHADED if rng.random() < 0.5 else UNSHADED for _ in range(n)] for _ in range(n)]

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """Straight thermometers that tile the grid and fit the shading: each is filled from its bulb without gaps
        (ours, as the official generator is not released)."""
        n = len(solution)
        therms = self._tiling(solution, rng)
        return {
            "thermometers": therms,
            "row_counts": [sum(is_shaded(x) for x in solution[r]) for r in range(n)],
            "col_counts": [sum(is_shaded(solution[r][c]) for r in range(n)) for c in range(n)],
        }

    def _tiling(self, solution: Board, rng: random.Random) -> list[list[list[int]]]:
        """Cells in random order; from each uncovered one, the longest straight run (up to a random length of 2 to
        MAX_LENGTH) whose shading is filled-then-empty from one end, which becomes the bulb. A run of one cell
        always fits, so every shading has a tiling."""
        n = len(solution)
        covered: set[tuple[int, int]] = set()
        therms = []
        for cell in rng.sample(range(n * n), n * n):
            r, c = divmod(cell, n)
            if (r, c) in covered:
                continue
            want = rng.randint(2, min(self.MAX_LENGTH, n))
            best = [(r, c)]
            for dr, dc in rng.sample([(0, 1), (1, 0), (0, -1), (-1, 0)], 4):
                path = [(r, c)]
                while len(path) < want:
                    rr, cc = path[-1][0] + dr, path[-1][1] + dc
                    if not (0 <= rr < n and 0 <= cc < n) or (rr, cc) in covered:
                        break
                    if self._bulb_first([*path, (rr, cc)], solution) is None:
                        break
                    path.append((rr, cc))
                if len(path) > len(best):
                    best = path
            best = self._bulb_first(best, solution, rng)
            covered.update(best)
            therms.append([[rr, cc] for rr, cc in best])
        return therms

    @staticmethod
    def _bulb_first(
        path: list[tuple[int, int]], solution: Board, rng: random.Random | None = None
    ) -> list[tuple[int, int]] | None:
        """The path oriented so its filled cells come first (a random way round when both fit); None if neither."""
        fill = [is_shaded(solution[r][c]) for r, c in path]
        ways = [way for way in (path, path[::-1]) if [is_shaded(solution[r][c]) for r, c in way] == sorted(fill)[::-1]]
        if not ways:
            return None
        return rng.choice(ways) if rng is not None else ways[0]

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if v not in (SHADED, UNSHADED):
            return False
        n = len(board)
        place = _thermo_index(side).get((r, c))
        if place is None:
            if v == SHADED:
                return False
        else:
            therm = side["thermometers"][place[0]]
            k = place[1]
            if v == SHADED and any(board[rr][cc] == UNSHADED for rr, cc in therm[:k]):
                return False
            if v == UNSHADED and any(board[rr][cc] == SHADED for rr, cc in therm[k + 1 :]):
                return False
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        for line, count in ((row, side["row_counts"][r]), (col, side["col_counts"][c])):
            filled = sum(is_shaded(x) for x in line)
            if not filled <= count <= filled + sum(x == EMPTY for x in line):
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        n = len(board)
        counts = list(side["row_counts"]) + list(side["col_counts"])
        out = [
            all(is_shading_value(x) for x in line) and sum(is_shaded(x) for x in line) == count
            for line, count in zip(board_lines(board), counts, strict=True)
        ]
        for therm in side.get("thermometers") or []:
            cells = [board[r][c] for r, c in therm]
            fill = [is_shaded(x) for x in cells]
            out.append(all(is_shading_value(x) for x in cells) and fill == sorted(fill, reverse=True))
        inside = _thermo_index(side)
        outside = [board[r][c] for r in range(n) for c in range(n) if (r, c) not in inside]
        if outside:
            out.append(all(x in _UNSHADED_MARKS for x in outside))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # ConstraintThermometerFill: no 's' outside the thermometers; after the first cell equal to 'e' no 's'
        # (so only 'e' ends a fill: '0' or 'x' between filled cells is no gap). ConstraintThermometerCount: cells
        # equal to 's' counted per row and column, exact when the line holds no integer 0 (always, for strings).
        try:
            therms = side.get("thermometers", [])
            inside = {(r, c) for therm in therms for r, c in therm}
            n = len(board)
            for i in range(n):
                for j in range(len(board[i])):
                    if (i, j) not in inside and board[i][j] == SHADED:
                        return False
            for therm in therms:
                cells = [board[r][c] for r, c in therm]
                if UNSHADED in cells and SHADED in cells[cells.index(UNSHADED) + 1 :]:
                    return False
            for i in range(n):
                row = [board[i][j] for j in range(n)]
                col = [board[j][i] for j in range(n)]
                for line, count in ((row, side["row_counts"][i]), (col, side["col_counts"][i])):
                    filled = sum(1 for x in line if x == SHADED)
                    if 0 not in line:
                        if filled != count:
                            return False
                    elif not filled <= count <= filled + sum(1 for x in line if x == 0):
                        return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        therms = side.get("thermometers") or []
        listed = "\n".join(f"T{t + 1}: " + " ".join(_rc(r, c) for r, c in therm) for t, therm in enumerate(therms))
        return (
            "Thermometers (cells listed from the bulb to the end):\n"
            f"{listed}\n"
            f"Row counts (top to bottom): {spaced(side.get('row_counts') or [])}\n"
            f"Column counts (left to right): {spaced(side.get('col_counts') or [])}"
        )


SKYSCRAPER = register_game(Skyscraper())
RENZOKU = register_game(Renzoku())
KAKURASU = register_game(Kakurasu())
THERMOMETERS = register_game(Thermometers())
