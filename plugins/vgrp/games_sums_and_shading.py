"""VGRP-Bench games of line sums and shading: Kakuro, Aquarium, Hitori and Nonogram (arXiv:2503.23064; rules and
checkers as in ryf1123/VGRP-Bench at fceb58d, src/puzzles/{kakuro,aquarium,hitori,nonogram}.py and the answer
handling of src/evaluate.py `check_answer`).

- Kakuro (`kakuro`, sizes 3-7; VGRP's variant, not the crossword-style Kakuro): fill every cell of an n x n grid
  with 1..n so that each row and each column adds up to its clue and no two orthogonal neighbours are equal (the
  official `ConstraintKakuroSum` and `ConstraintKakuroAdjacent`; numbers may repeat within a line). Side info (the
  official `sums`): {"row": n ints, "col": n ints}.
- Aquarium (`aquarium`, sizes 4-8): shade ('s' = water, 'e' = empty) cells; the grid is cut into aquariums, and
  water in an aquarium fills every one of its cells at that level and below (the official `ConstraintAquariumFill`:
  no 'e' at or below the highest water row of its aquarium); row and column clues count the water cells. Side info
  (the official `clues`): {"aquariums": [[[r, c], ...], ...], "row_counts": n ints, "col_counts": n ints}.
- Hitori (`hitori`, sizes 4-6): shade cells of a grid of numbers so that no number repeats among the unshaded cells
  of a row or column, no two shaded cells touch orthogonally and the unshaded cells form one orthogonally connected
  area. Side info (the official `numbers`): {"numbers": n x n ints}. The board the model copies and answers is the
  shading ('s'/'e', 0 = undecided), as the official answer; the numbers are drawn under it. Two deviations from the
  official evaluator, both from the shared verify.py: the official perception compares the numbers grid (here the
  shading givens), and the official givens check compares the whole initial shading board (skipping only 0), while
  the shared check also skips a given 'e'.
- Nonogram (`nonogram`, sizes 4-8): shade cells so that the runs of consecutive shaded cells of each row (left to
  right) and column (top to bottom) have the lengths of its clue, in order; the clue [0] means no shaded cell. Side
  info (the official `hints`): {"row_hints": n lists of ints, "col_hints": n lists of ints}.

Two-symbol games reuse the conventions of Kakurasu/Thermometers (games_clue_grids.py): the solution holds 's'/'e',
the strict parser reads 'e' (and '0') as the integer 0, which `values` lists so the answer may hold it as
"unshaded", and `allowed` never lets the solver place it. The official repository releases the checkers but not the
generators of these four games: every generator here is ours.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .games_clue_grids import (
    SHADED,
    UNSHADED,
    ShadingGame,
    is_shaded,
    is_shading_value,
    random_latin,
)
from .puzzles import EMPTY, OFFICIAL_ERRORS, Board, Game, board_lines, register_game, spaced

Cell = tuple[int, int]
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _neighbours(n: int, r: int, c: int) -> list[Cell]:
    return [(r + dr, c + dc) for dr, dc in _STEPS if 0 <= r + dr < n and 0 <= c + dc < n]


def _official_cells(board: list[list[Any]]) -> list[list[Any]]:
    """The official `check_answer` turns an answer's 0 / '0' into 'e' for Aquarium, Hitori (and Kakurasu); Nonogram
    also turns '*' into 'e'."""
    return [[UNSHADED if x in (0, "0") else x for x in row] for row in board]


def _unshaded(cell: Any) -> bool:
    """An unshaded answer cell: 'e', or 0 as the strict parser reads 'e'/'0'."""
    return cell == UNSHADED or cell == EMPTY


# --- Kakuro ---


class Kakuro(Game):
    name, title = "kakuro", "Kakuro"
    single_rule = "only value its row and column sums and its neighbours allow"
    clue_fraction = (0.3, 0.55)  # ours: with only 2n sums, fewer givens rarely leave one solution

    def check_size(self, n: int) -> None:
        if not 3 <= n <= 7:  # the official factory takes 3-12; from 8 uniqueness checks take seconds
            raise ValueError(f"kakuro size {n} is not supported; sizes are 3 to 7")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        return (
            f"Fill every empty cell with a number from 1 to {n} so that the numbers of each row add up to that row's "
            "sum and the numbers of each column add up to that column's sum, and no two cells that share a side "
            "hold the same number (a number may repeat elsewhere in a row or column)."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """Cells in row-major order, each a random number different from its upper and left neighbours (n >= 3
        leaves at least one choice)."""
        board = [[EMPTY] * n for _ in range(n)]
        for r in range(n):
            for c in range(n):
                taken = {board[r - 1][c] if r else None, board[r][c - 1] if c else None}
                board[r][c] = rng.choice([v for v in range(1, n + 1) if v not in taken])
        return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        n = len(solution)
        return {
            "row": [sum(row) for row in solution],
            "col": [sum(solution[r][c] for r in range(n)) for c in range(n)],
        }

    @staticmethod
    def _sum_reachable(line: list[Any], target: int, n: int) -> bool:
        """The empty cells of a line, each 1..n, can still bring its sum to the target."""
        done = sum(x for x in line if x != EMPTY)
        empty = sum(1 for x in line if x == EMPTY)
        return done + empty <= target <= done + n * empty

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        if any(board[rr][cc] == v for rr, cc in _neighbours(n, r, c)):
            return False
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        return self._sum_reachable(row, side["row"][r], n) and self._sum_reachable(col, side["col"][c], n)

    def units(self, board: Board, side: dict) -> list[bool]:
        """Per row and per column: its sum, then no two equal neighbours along it (4n units)."""
        n = len(board)
        targets = list(side["row"]) + list(side["col"])
        out = []
        for line, target in zip(board_lines(board), targets, strict=True):
            numbers = all(isinstance(x, int) and 1 <= x <= n for x in line)
            out.append(numbers and sum(line) == target)
            out.append(numbers and all(line[k] != line[k + 1] for k in range(n - 1)))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # Both official constraints read every cell with int() when any cell is a string (always, for an answer):
        # a non-number fails the answer (check_answer's except), " 4" is 4, and there is no range test. The integer
        # 0 is empty: a line holding a 0 must only not exceed its sum, and a 0 is never an equal neighbour. A sum
        # list shorter than the grid leaves the lines past its end unchecked.
        try:
            cells = board
            if any(isinstance(x, str) for row in board for x in row):
                cells = [[int(x) for x in row] for row in board]
            n = len(cells)
            lines = [list(row) for row in cells] + [[cells[r][c] for r in range(n)] for c in range(len(cells[0]))]
            targets = [(k, side["row"]) for k in range(n)] + [(k, side["col"]) for k in range(len(cells[0]))]
            for line, (k, sums) in zip(lines, targets, strict=True):
                if k < len(sums):
                    total = sum(x for x in line if x != 0)
                    if total > sums[k] or (all(x != 0 for x in line) and total != sums[k]):
                        return False
            for r in range(n):
                for c in range(n):
                    if cells[r][c] != 0 and any(cells[rr][cc] == cells[r][c] for rr, cc in _neighbours(n, r, c)):
                        return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        return (
            f"Row sums (top to bottom): {spaced(side.get('row') or [])}\n"
            f"Column sums (left to right): {spaced(side.get('col') or [])}"
        )


# --- Aquarium ---


def _aquarium_of(side: dict) -> dict[Cell, int]:
    return {(r, c): a for a, cells in enumerate(side.get("aquariums") or []) for r, c in cells}


def _levels_ok(cells: list[tuple[int, Any]]) -> bool:
    """(row, cell) pairs of one aquarium: no unshaded cell at or below (row >= ) the highest water row."""
    water = [r for r, x in cells if is_shaded(x)]
    return not water or not any(r >= min(water) and not is_shaded(x) for r, x in cells)


def _compatible(rows_water: list[int], rows_dry: list[int]) -> bool:
    """A set of cells can be one aquarium of a shading when every dry row lies above every water row."""
    return not rows_water or not rows_dry or max(rows_dry) < min(rows_water)


class Aquarium(ShadingGame):
    name, title = "aquarium", "Aquarium"
    single_rule = "the other choice would break an aquarium's water level or a row or column count"
    clue_fraction = (0.0, 0.2)  # ours

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 8:  # the official factory takes >= 4; from 9 uniqueness checks take seconds
            raise ValueError(f"aquarium size {n} is not supported; sizes are 4 to 8")

    def rules(self, n: int) -> str:
        return (
            "The grid is divided into aquariums. Fill some cells with water (shade them). Water in an aquarium "
            "lies level: if a cell of an aquarium holds water, every cell of that aquarium in the same row or in a "
            "lower row holds water too. Each row and column clue is the number of water cells in that row or "
            "column. "
        ) + self._legend()

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """A random partition into aquariums, each filled up to a random level (ours). Only the shading is kept:
        `random_side_info` draws the aquariums again around it."""
        regions = _grow_regions(n, rng, lambda region, cell: True)
        board = [[UNSHADED] * n for _ in range(n)]
        for region in regions:
            rows = sorted({r for r, _ in region})
            level = rng.choice([*rows, n])  # n: no water
            for r, c in region:
                if r >= level:
                    board[r][c] = SHADED
        return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """Aquariums grown at random while they fit the shading (dry rows above water rows), then the counts."""
        n = len(solution)

        def fits(region: list[Cell], cell: Cell) -> bool:
            cells = [*region, cell]
            return _compatible(
                [r for r, c in cells if is_shaded(solution[r][c])],
                [r for r, c in cells if not is_shaded(solution[r][c])],
            )

        regions = _grow_regions(n, rng, fits)
        return {
            "aquariums": [[[r, c] for r, c in sorted(region)] for region in regions],
            "row_counts": [sum(is_shaded(x) for x in solution[r]) for r in range(n)],
            "col_counts": [sum(is_shaded(solution[r][c]) for r in range(n)) for c in range(n)],
        }

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if v not in (SHADED, UNSHADED):
            return False
        n = len(board)
        a = _aquarium_of(side).get((r, c))
        if a is not None:
            for rr, cc in side["aquariums"][a]:
                x = board[rr][cc]
                if v == SHADED and x == UNSHADED and rr >= r:
                    return False
                if v == UNSHADED and x == SHADED and rr <= r:
                    return False
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        for line, count in ((row, side["row_counts"][r]), (col, side["col_counts"][c])):
            filled = sum(is_shaded(x) for x in line)
            if not filled <= count <= filled + sum(x == EMPTY for x in line):
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        """Row and column counts (2n), then one unit per aquarium: its water lies level."""
        counts = list(side["row_counts"]) + list(side["col_counts"])
        out = [
            all(is_shading_value(x) for x in line) and sum(is_shaded(x) for x in line) == count
            for line, count in zip(board_lines(board), counts, strict=True)
        ]
        for cells in side.get("aquariums") or []:
            pairs = [(r, board[r][c]) for r, c in cells]
            out.append(all(is_shading_value(x) for _, x in pairs) and _levels_ok(pairs))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer turns 0/'0' into 'e'. ConstraintAquariumFill: below (or at) an aquarium's highest cell equal
        # to 's', no cell may equal 'e' (any other string, 'x' or ' e', passes). ConstraintAquariumCount: cells
        # equal to 's' counted per row and column, exactly (an answer holds no integer 0 after the conversion).
        try:
            cells = _official_cells(board)
            for aquarium in side.get("aquariums", []):
                water = [r for r, c in aquarium if cells[r][c] == SHADED]
                if water and any(r >= min(water) and cells[r][c] == UNSHADED for r, c in aquarium):
                    return False
            if not side:
                return True
            n = len(cells)
            for i in range(n):
                row = [cells[i][j] for j in range(n)]
                col = [cells[j][i] for j in range(n)]
                if row.count(SHADED) != side["row_counts"][i] or col.count(SHADED) != side["col_counts"][i]:
                    return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        n = len(board)
        where = _aquarium_of(side)
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        grid = "\n".join(
            " ".join(letters[where[(r, c)] % len(letters)] if (r, c) in where else "." for c in range(n))
            for r in range(n)
        )
        return (
            "Aquariums (cells with the same letter form one aquarium):\n"
            f"{grid}\n"
            f"Row counts (top to bottom): {spaced(side.get('row_counts') or [])}\n"
            f"Column counts (left to right): {spaced(side.get('col_counts') or [])}"
        )


def _grow_regions(n: int, rng: random.Random, fits: Callable[[list[Cell], Cell], bool]) -> list[list[Cell]]:
    """A partition of the n x n grid into connected regions: from each uncovered cell (in random order) a region
    grows by random uncovered neighbours that `fits(region, cell)` accepts, up to a random size of 2 to n + 1."""
    covered: set[Cell] = set()
    regions = []
    for k in rng.sample(range(n * n), n * n):
        start = divmod(k, n)
        if start in covered:
            continue
        region = [start]
        covered.add(start)
        want = rng.randint(2, n + 1)
        frontier = [cell for cell in _neighbours(n, *start) if cell not in covered]
        while frontier and len(region) < want:
            cell = frontier.pop(rng.randrange(len(frontier)))
            if cell in covered or not fits(region, cell):
                continue
            region.append(cell)
            covered.add(cell)
            frontier.extend(nb for nb in _neighbours(n, *cell) if nb not in covered)
        regions.append(region)
    return regions


# --- Hitori ---


def _connected(n: int, open_cells: set[Cell]) -> bool:
    """The cells form one orthogonally connected area (an empty set does not)."""
    if not open_cells:
        return False
    start = next(iter(open_cells))
    seen = {start}
    queue = deque([start])
    while queue:
        for nb in _neighbours(n, *queue.popleft()):
            if nb in open_cells and nb not in seen:
                seen.add(nb)
                queue.append(nb)
    return len(seen) == len(open_cells)


class Hitori(ShadingGame):
    name, title = "hitori", "Hitori"
    official_skips_e_givens = False  # its official check compares the whole initial board, 'e' cells too
    single_rule = "the other choice would repeat a number, shade two touching cells or cut the unshaded area"
    clue_fraction = (0.0, 0.2)  # ours

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 6:  # the official factory takes any size; from 7 uniqueness checks take seconds
            raise ValueError(f"hitori size {n} is not supported; sizes are 4 to 6")

    def rules(self, n: int) -> str:
        return (
            "Each cell holds a number (the Numbers grid below). Shade some cells so that no number appears twice "
            "among the unshaded cells of any row or column, no two shaded cells share a side, and all unshaded "
            "cells form one area connected through shared sides. "
        ) + self._legend()

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """A maximal shading (ours): cells in random order, each shaded when no neighbour is shaded and the unshaded
        cells stay connected. Maximal, because the rules never demand that a cell be shaded: an unshaded cell that
        could still be shaded would give the puzzle a second solution."""
        board = [[UNSHADED] * n for _ in range(n)]
        open_cells = {(r, c) for r in range(n) for c in range(n)}
        for k in rng.sample(range(n * n), n * n):
            r, c = divmod(k, n)
            if any(board[rr][cc] == SHADED for rr, cc in _neighbours(n, r, c)):
                continue
            if _connected(n, open_cells - {(r, c)}):
                board[r][c] = SHADED
                open_cells.discard((r, c))
        return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """A random Latin square for the unshaded cells (so they never repeat); each shaded cell takes the number
        of a random unshaded cell of its row or column, so it repeats one (ours)."""
        n = len(solution)
        latin = random_latin(n, rng)
        numbers = [list(row) for row in latin]
        for r in range(n):
            for c in range(n):
                if is_shaded(solution[r][c]):
                    seen = [latin[r][j] for j in range(n) if not is_shaded(solution[r][j])]
                    seen += [latin[i][c] for i in range(n) if not is_shaded(solution[i][c])]
                    numbers[r][c] = rng.choice(sorted(set(seen)))
        return {"numbers": numbers}

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        numbers = side["numbers"]
        if v == UNSHADED:
            same_row = any(board[r][j] == UNSHADED and numbers[r][j] == numbers[r][c] for j in range(n) if j != c)
            same_col = any(board[i][c] == UNSHADED and numbers[i][c] == numbers[r][c] for i in range(n) if i != r)
            return not same_row and not same_col
        if v != SHADED or any(board[rr][cc] == SHADED for rr, cc in _neighbours(n, r, c)):
            return False
        open_cells = {(i, j) for i in range(n) for j in range(n) if board[i][j] != SHADED and (i, j) != (r, c)}
        return _connected(n, open_cells)

    def units(self, board: Board, side: dict) -> list[bool]:
        """Per row and column: no repeated unshaded number (2n); per row and column: no two touching shaded cells
        (2n); one unit for the connected unshaded area."""
        n = len(board)
        numbers = side["numbers"]
        number_lines = board_lines(numbers)
        out = []
        for line, nums in zip(board_lines(board), number_lines, strict=True):
            kept = [x for x, cell in zip(nums, line, strict=True) if _unshaded(cell)]
            out.append(all(is_shading_value(x) for x in line) and len(kept) == len(set(kept)))
        for line in board_lines(board):
            out.append(
                all(is_shading_value(x) for x in line)
                and not any(is_shaded(line[k]) and is_shaded(line[k + 1]) for k in range(n - 1))
            )
        cells = [(r, c) for r in range(n) for c in range(n)]
        valid = all(is_shading_value(board[r][c]) for r, c in cells)
        out.append(valid and _connected(n, {(r, c) for r, c in cells if _unshaded(board[r][c])}))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer turns 0/'0' into 'e'. ConstraintHitoriNoRepeat: numbers of the cells equal to 'e' only.
        # ConstraintHitoriAdjacent: cells equal to 's' only. ConstraintHitoriConnected: the cells equal to 'e' (or
        # the integer 0) must be connected and exist. Any other string ('x', ' s') therefore is neither: it may
        # repeat a number and touch a shaded cell, and it blocks the unshaded area.
        try:
            cells = _official_cells(board)
            numbers = side.get("numbers", [])
            n = len(cells)
            for i in range(n):
                row = [numbers[i][j] for j in range(n) if cells[i][j] == UNSHADED]
                col = [numbers[j][i] for j in range(n) if cells[j][i] == UNSHADED]
                if len(row) != len(set(row)) or len(col) != len(set(col)):
                    return False
            for r in range(n):
                for c in range(n):
                    if cells[r][c] == SHADED and any(cells[rr][cc] == SHADED for rr, cc in _neighbours(n, r, c)):
                        return False
            return _connected(n, {(r, c) for r in range(n) for c in range(n) if cells[r][c] in (UNSHADED, 0)})
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        numbers = side.get("numbers") or []
        return "Numbers:\n" + "\n".join(spaced(row) for row in numbers)


# --- Nonogram ---


def _clue(hints: list[int]) -> tuple[int, ...]:
    """A line's runs; the clue [0] (an empty line) is no run."""
    return tuple(h for h in hints if h)


def runs(line: list[Any]) -> list[int]:
    """Lengths of the runs of shaded cells, in order."""
    out, count = [], 0
    for x in [*line, None]:
        if is_shaded(x):
            count += 1
        elif count:
            out.append(count)
            count = 0
    return out


@functools.lru_cache(maxsize=200_000)
def _line_fits(line: tuple[Any, ...], clue: tuple[int, ...]) -> bool:
    """Whether the undecided cells (0) of a line can be chosen so its runs are exactly `clue` (cached: the solver
    asks about the same partial lines again and again)."""
    n = len(line)

    @functools.cache
    def fits(i: int, j: int) -> bool:  # line[i:] can realise clue[j:]
        if i >= n:
            return j == len(clue)
        if line[i] != SHADED and fits(i + 1, j):  # cell i unshaded
            return True
        if j == len(clue):
            return False
        end = i + clue[j]
        if end > n or any(line[k] == UNSHADED for k in range(i, end)):
            return False
        if end < n and line[end] == SHADED:
            return False
        return fits(end + 1, j + 1)

    return fits(0, 0)


def _official_line(line: list[Any], hints: list[int]) -> bool:
    """The official `_check_line_hints` on a converted answer line (no integer 0 is left in it, so the line counts
    as fully decided): cells equal to 's' count, only 'e' ends a run (any other string is skipped, so "s x s" is one
    run of 2), and the runs must equal the hints as a list; the clue [0] needs no 's' at all. (Its count test,
    shaded >= sum of the hints, follows from equal runs.)"""
    if hints == [0]:
        return line.count(SHADED) == 0
    found, count = [], 0
    for cell in line:
        if cell == SHADED:
            count += 1
        elif cell == UNSHADED and count:
            found.append(count)
            count = 0
    if count:
        found.append(count)
    return found == hints


class Nonogram(ShadingGame):
    name, title = "nonogram", "Nonogram"
    single_rule = "the other choice would break a row or column clue"
    clue_fraction = (0.0, 0.2)  # ours

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 8:  # the official factory takes any size; from 9 uniqueness checks take seconds
            raise ValueError(f"nonogram size {n} is not supported; sizes are 4 to 8")

    def rules(self, n: int) -> str:
        return (
            "Shade some cells. Each row clue lists, from left to right, the lengths of the runs of consecutive "
            "shaded cells in that row; each column clue lists them from top to bottom. Runs are separated by at "
            "least one unshaded cell; the clue 0 means the line has no shaded cell. "
        ) + self._legend()

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return [[SHADED if rng.random() < 0.55 else UNSHADED for _ in range(n)] for _ in range(n)]

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        return {
            "row_hints": [runs(line) or [0] for line in solution],
            "col_hints": [runs(line) or [0] for line in board_lines(solution)[len(solution) :]],
        }

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if v not in (SHADED, UNSHADED):
            return False
        n = len(board)
        row = tuple(v if j == c else board[r][j] for j in range(n))
        col = tuple(v if i == r else board[i][c] for i in range(n))
        return _line_fits(row, _clue(side["row_hints"][r])) and _line_fits(col, _clue(side["col_hints"][c]))

    def units(self, board: Board, side: dict) -> list[bool]:
        clues = list(side["row_hints"]) + list(side["col_hints"])
        return [
            all(is_shading_value(x) for x in line) and tuple(runs(line)) == _clue(hints)
            for line, hints in zip(board_lines(board), clues, strict=True)
        ]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer turns 0, '0' and '*' into 'e'; then ConstraintRowHints and ConstraintColHints.
        try:
            cells = [[UNSHADED if x in (0, "0", "*") else x for x in row] for row in board]
            n = len(cells)
            rows = [cells[i] for i in range(n)]
            cols = [[cells[i][j] for i in range(n)] for j in range(n)]
            return all(_official_line(line, side["row_hints"][i]) for i, line in enumerate(rows)) and all(
                _official_line(line, side["col_hints"][j]) for j, line in enumerate(cols)
            )
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        def clues(key: str) -> str:
            return " | ".join(" ".join(map(str, hints)) for hints in side.get(key) or [])

        return (
            f"Row clues (top to bottom, each read left to right): {clues('row_hints')}\n"
            f"Column clues (left to right, each read top to bottom): {clues('col_hints')}"
        )


KAKURO = register_game(Kakuro())
AQUARIUM = register_game(Aquarium())
HITORI = register_game(Hitori())
NONOGRAM = register_game(Nonogram())
