"""VGRP-Bench's Sudoku variants: Odd-Even, Jigsaw, Killer and Colored Sudoku.

Each game follows the official constraint classes (ryf1123/VGRP-Bench, src/puzzles/<game>.py) and reproduces what
the official evaluator (src/evaluate.py `check_answer` and its `main`) actually checks in `official_check`:

- Odd-Even Sudoku (`oddevensudoku`, sizes 4 and 9): Sudoku plus a parity type per cell in `side_info["cell_types"]`,
  'w' = even, 'b' = odd (the official `ConstraintOddEven`; any other type leaves the cell free). Officially the
  answer's cells are converted with `int()` first (a cell that does not convert fails the answer), and 0 then counts
  as empty in every check.
- Jigsaw Sudoku (`jigsawsudoku`, sizes 4-9): rows, columns and irregular regions `side_info["regions"]` (a grid of
  region ids) each hold 1..n once. Officially the regions never reach the checker (`check_answer` puts no "regions"
  into the game state and `ConstraintRegionNoRepeat` skips when they are missing): only rows and columns are
  checked, on the raw strings.
- Killer Sudoku (`killersudoku`, sizes 4 and 9): Sudoku plus cages `side_info["cages"]` = [{"cells": [[r, c], ...],
  "sum": s}] whose cells add up to s (the official `ConstraintCageSum`: no rule against repeats inside a cage).
  Officially the answer is converted with `int()` first; 0 counts as empty everywhere, a cage's partial sum must not
  exceed its target and only a cage without 0 must reach it.
- Colored Sudoku (`coloredsudoku`, sizes 4-9): rows, columns and colour groups `side_info["colors"]` (a grid of
  letters 'A'...) each without repeats (the official `ConstraintColorNoRepeat`), checked on the raw strings. Our
  generator gives every colour n cells, one of each number.

The official checks have no value-range test (a 0, a 9 in a 4x4 or, for Killer, a negative number can pass);
`units` (strict mode, R_partial) demands 1..n in every unit. Side information is a JSON-serialisable dict; each
game's `render_extra` draws it as a letter map for the text prompt.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from typing import Any

from .puzzles import EMPTY, Board, Game, Sudoku, register_game

Cell = tuple[int, int]
OFFICIAL_BOX_SIZES = (4, 9)  # the official ConstraintSubGridNoRepeat asserts these sizes
GROUPED_SIZES = range(4, 10)  # Jigsaw / Colored: no boxes, so any size; 4-9 keeps prompts and solving small
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# --- small helpers shared by the four games ---


def label(k: int) -> str:
    """The letter naming group k in a rendered map (52 letters: enough for the cages of a 9x9 Killer Sudoku)."""
    return _LABELS[k] if k < len(_LABELS) else f"<{k}>"


def _rows_and_columns(board: Board) -> list[list[Any]]:
    n = len(board)
    return [list(row) for row in board] + [[board[r][c] for r in range(n)] for c in range(n)]


def _box_cells(n: int) -> list[list[Cell]]:
    b = math.isqrt(n)
    return [[(br + i, bc + j) for i in range(b) for j in range(b)] for br in range(0, n, b) for bc in range(0, n, b)]


def _groups(labels: list[list[Any]]) -> list[list[Cell]]:
    """Cells grouped by their label, groups in order of first appearance (row-major)."""
    groups: dict[Any, list[Cell]] = {}
    for r, row in enumerate(labels):
        for c, key in enumerate(row):
            groups.setdefault(key, []).append((r, c))
    return list(groups.values())


def _official_no_repeat(cells: Iterable[Any]) -> bool:
    """The official no-repeat constraints: cells equal to the integer 0 are empty and skipped (a string '0' is not)."""
    vals = [x for x in cells if x != 0]
    return len(vals) == len(set(vals))


def _unit_complete(cells: list[Any], n: int) -> bool:
    """A unit of the strict rules: integers in 1..n, no repeats (for n cells: each number once). Non-integers (the
    markers R_partial puts on bad cells) break it."""
    ok = all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= n for x in cells)
    return ok and len(set(cells)) == len(cells)


def _to_ints(board: list[list[Any]]) -> list[list[int]] | None:
    """The official `int(cell)` conversion of Odd-Even and Killer answers (so ' 1', '+1' and '01' read as 1); None
    when a cell does not convert, which fails the answer officially."""
    try:
        return [[int(cell) for cell in row] for row in board]
    except (TypeError, ValueError):
        return None


def _render_map(labels: list[list[Any]], title: str) -> str:
    return title + "\n" + "\n".join(" ".join(str(x) for x in row) for row in labels)


def _connected_components(free: set[Cell]) -> list[int]:
    """Sizes of the 4-connected components of `free`."""
    seen: set[Cell] = set()
    sizes = []
    for start in free:
        if start in seen:
            continue
        seen.add(start)
        stack, size = [start], 0
        while stack:
            r, c = stack.pop()
            size += 1
            for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if nb in free and nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        sizes.append(size)
    return sizes


def _neighbours(cells: Iterable[Cell], free: set[Cell]) -> list[Cell]:
    out = {nb for r, c in cells for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if nb in free}
    return sorted(out)  # sorted: the rng alone decides, not set order


def _random_fill(n: int, groups: list[list[Cell]], rng: random.Random, max_nodes: int) -> Board | None:
    """A random n x n board with rows, columns and `groups` each free of repeats (randomised backtracking, fewest
    candidates first); None past `max_nodes` or when there is none."""
    board = [[EMPTY] * n for _ in range(n)]
    group_of = {cell: k for k, cells in enumerate(groups) for cell in cells}
    nodes = [0]

    def options(r: int, c: int) -> list[int]:
        used = set(board[r]) | {board[i][c] for i in range(n)}
        if (r, c) in group_of:
            used |= {board[i][j] for i, j in groups[group_of[(r, c)]]}
        return [v for v in range(1, n + 1) if v not in used]

    def fill() -> bool:
        nodes[0] += 1
        if nodes[0] > max_nodes:
            return False
        best = None
        for r in range(n):
            for c in range(n):
                if board[r][c] == EMPTY:
                    cand = options(r, c)
                    if best is None or len(cand) < len(best[2]):
                        best = (r, c, cand)
        if best is None:
            return True
        r, c, cand = best
        for v in rng.sample(cand, len(cand)):
            board[r][c] = v
            if fill():
                return True
        board[r][c] = EMPTY
        return False

    return board if fill() else None


def random_latin_square(n: int, rng: random.Random) -> Board:
    """A random n x n Latin square (randomised backtracking: more varied than a shuffled cyclic square)."""
    board = _random_fill(n, [], rng, max_nodes=1_000_000)
    if board is None:
        raise RuntimeError(f"no {n}x{n} latin square found")
    return board


def random_regions(
    n: int, rng: random.Random, solution: Board | None = None, attempts: int = 2000
) -> list[list[int]] | None:
    """A partition of the n x n board into n connected regions of n cells (region ids 0..n-1), or None after
    `attempts` tries. With `solution`, every region must hold each of its numbers once. Regions grow one at a time
    from the first free cell (row-major); a region is kept only when every component of the cells left can still be
    cut into regions of n cells."""
    for _ in range(attempts):
        regions = [[-1] * n for _ in range(n)]
        free = {(r, c) for r in range(n) for c in range(n)}
        for k in range(n):
            start = min(free)
            for _ in range(20):
                region = [start]
                values = {solution[start[0]][start[1]]} if solution else set()
                rest = free - {start}
                while len(region) < n:
                    options = [
                        cell
                        for cell in _neighbours(region, rest)
                        if not solution or solution[cell[0]][cell[1]] not in values
                    ]
                    if not options:
                        break
                    cell = rng.choice(options)
                    region.append(cell)
                    if solution:
                        values.add(solution[cell[0]][cell[1]])
                    rest.discard(cell)
                if len(region) == n and all(size % n == 0 for size in _connected_components(rest)):
                    break
            else:
                break
            for r, c in region:
                regions[r][c] = k
            free = rest
        else:
            return regions
    return None


# --- Odd-Even Sudoku ---


class OddEvenSudoku(Sudoku):
    """Sudoku with a parity type on the cells ('w' white = even, 'b' black = odd, as the official ConstraintOddEven).
    Our generator types every cell (the two official letters colour the whole board)."""

    name, title = "oddevensudoku", "Odd-Even Sudoku"
    clue_fraction = (0.10, 0.40)  # ours; the parity map narrows each cell
    single_rule = "only value its row, column, box and parity mark allow"
    _PARITY = {"w": 0, "b": 1}

    def check_size(self, n: int) -> None:
        if n not in OFFICIAL_BOX_SIZES:
            raise ValueError(f"oddevensudoku size {n} is not supported; sizes are 4 and 9 (as the official checker)")

    def rules(self, n: int) -> str:
        b = math.isqrt(n)
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row, each column and each {b}x{b} box "
            f"contains every number from 1 to {n} exactly once, every cell marked E in the parity map holds an even "
            "number and every cell marked O an odd number."
        )

    def random_side_info(self, solution: Board, rng: random.Random) -> dict:
        return {"cell_types": [["w" if v % 2 == 0 else "b" for v in row] for row in solution]}

    def _parity_ok(self, value: Any, cell_type: Any) -> bool:
        want = self._PARITY.get(cell_type)
        return want is None or (isinstance(value, int) and value % 2 == want)

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        types = side.get("cell_types")
        if types and not self._parity_ok(v, types[r][c]):
            return False
        return super().allowed(board, r, c, v, side)

    def units(self, board: Board, side: dict) -> list[bool]:
        """Rows, columns and boxes, then one parity unit per row (its marked cells all of the right parity)."""
        types = side.get("cell_types") or [[None] * len(board) for _ in board]
        parity = [
            all(self._parity_ok(v, t) for v, t in zip(row, trow, strict=True))
            for row, trow in zip(board, types, strict=True)
        ]
        return super().units(board, side) + parity

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        ints = _to_ints(board)
        if ints is None:
            return False
        n = len(ints)
        if n not in OFFICIAL_BOX_SIZES:  # the official sub-grid check asserts 4 or 9; the exception fails the answer
            return False
        boxes = [[ints[r][c] for r, c in box] for box in _box_cells(n)]
        if not all(_official_no_repeat(unit) for unit in _rows_and_columns(ints) + boxes):
            return False
        types = side.get("cell_types")
        if types is None:  # the official constraint skips when the puzzle has no cell types
            return True
        for i in range(n):
            for j in range(n):
                v = ints[i][j]
                if v != 0 and ((types[i][j] == "w" and v % 2 != 0) or (types[i][j] == "b" and v % 2 == 0)):
                    return False
        return True

    def render_extra(self, board: Board, side: dict) -> str:
        types = side.get("cell_types")
        if not types:
            return ""
        marks = [[{"w": "E", "b": "O"}.get(t, ".") for t in row] for row in types]
        return _render_map(marks, "Parity map (E: even number, O: odd number):")


# --- Jigsaw and Colored Sudoku: a Latin square whose groups (regions, colours) also hold each number once ---


class _GroupedLatin(Game):
    """Rows, columns and the groups of `side_info[group_key]` (a grid of group labels) without repeats."""

    group_key = ""
    group_word = ""

    def check_size(self, n: int) -> None:
        if n not in GROUPED_SIZES:
            raise ValueError(f"{self.name} size {n} is not supported; sizes are 4 to 9")

    def values(self, n: int) -> list[Any]:
        return list(range(1, n + 1))

    def rules(self, n: int) -> str:
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row, each column and each "
            f"{self.group_word} (the cells sharing a letter in the {self.group_word} map) contains every number from "
            f"1 to {n} exactly once."
        )

    def random_solution(self, n: int, rng: random.Random) -> Board:
        return random_latin_square(n, rng)

    def _group_cells(self, side: dict) -> list[list[Cell]]:
        labels = side.get(self.group_key)
        return _groups(labels) if labels else []

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        n = len(board)
        if any(board[r][j] == v for j in range(n)) or any(board[i][c] == v for i in range(n)):
            return False
        labels = side.get(self.group_key)
        if not labels:
            return True
        key = labels[r][c]
        return not any(board[i][j] == v for i in range(n) for j in range(n) if labels[i][j] == key)

    def units(self, board: Board, side: dict) -> list[bool]:
        n = len(board)
        groups = [[board[r][c] for r, c in cells] for cells in self._group_cells(side)]
        return [_unit_complete(unit, n) for unit in _rows_and_columns(board) + groups]

    def render_extra(self, board: Board, side: dict) -> str:
        labels = side.get(self.group_key)
        if not labels:
            return ""
        # letters follow first appearance (row-major), so a layout renders the same whatever ids it stores
        order = {key: k for k, key in enumerate(dict.fromkeys(x for row in labels for x in row))}
        letters = [[label(order[x]) for x in row] for row in labels]
        return _render_map(
            letters, f"{self.group_word.capitalize()} map (cells with the same letter form one {self.group_word}):"
        )


class JigsawSudoku(_GroupedLatin):
    """Jigsaw Sudoku: irregular connected regions of n cells instead of boxes; `side_info["regions"]` holds a region
    id (int) per cell."""

    name, title = "jigsawsudoku", "Jigsaw Sudoku"
    clue_fraction = (0.25, 0.55)  # ours
    single_rule = "only value its row, column and region allow"
    group_key, group_word = "regions", "region"

    def __init__(self) -> None:
        # Regions drawn with the last solutions, so that random_side_info returns the layout the solution was
        # filled into (the Game interface draws the solution first, then the side information from it).
        self._drawn: dict[str, list[list[int]]] = {}

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """Regions first, then a random filling of rows, columns and regions (regions drawn from a solution are
        rarely found beyond 7x7); a layout with no filling found quickly is drawn again."""
        for _ in range(1000):
            regions = random_regions(n, rng)
            if regions is None:
                continue
            board = _random_fill(n, _groups(regions), rng, max_nodes=20 * n * n)
            if board is not None:
                if len(self._drawn) >= 64:
                    self._drawn.clear()
                self._drawn[json.dumps(board)] = regions
                return board
        raise RuntimeError(f"no {n}x{n} jigsaw sudoku found")

    def random_side_info(self, solution: Board, rng: random.Random) -> dict:
        regions = self._drawn.pop(json.dumps(solution), None) or random_regions(len(solution), rng, solution)
        if regions is None:
            raise RuntimeError("no jigsaw regions found for this solution")
        return {"regions": regions}

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # The official check_answer never passes the regions to the factory, and ConstraintRegionNoRepeat returns
        # True without them: only rows and columns count, on the raw strings.
        return all(_official_no_repeat(line) for line in _rows_and_columns(board))


class ColoredSudoku(_GroupedLatin):
    """Colored Sudoku: each colour (`side_info["colors"]`, letters 'A'... as the official factory's colour names)
    holds each number once; colours need not be connected."""

    name, title = "coloredsudoku", "Colored Sudoku"
    clue_fraction = (0.25, 0.55)  # ours
    single_rule = "only value its row, column and colour allow"
    group_key, group_word = "colors", "colour"

    def random_side_info(self, solution: Board, rng: random.Random) -> dict:
        """The n cells of each number get the n colours in a random order, so every colour holds each number once."""
        n = len(solution)
        colors = [[""] * n for _ in range(n)]
        for v in range(1, n + 1):
            cells = [(r, c) for r in range(n) for c in range(n) if solution[r][c] == v]
            for (r, c), k in zip(cells, rng.sample(range(n), n), strict=True):
                colors[r][c] = label(k)
        return {"colors": colors}

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        if not all(_official_no_repeat(line) for line in _rows_and_columns(board)):
            return False
        colors = side.get("colors")
        if colors is None:  # ConstraintColorNoRepeat skips without colours
            return True
        return all(_official_no_repeat(board[r][c] for r, c in cells) for cells in _groups(colors))


# --- Killer Sudoku ---


class KillerSudoku(Sudoku):
    """Sudoku plus cages that cover the board, each with the sum of its cells (the official cage format)."""

    name, title = "killersudoku", "Killer Sudoku"
    clue_fraction = (0.15, 0.40)  # ours; below ~12 clues a 9x9 exceeds the solver's budget
    single_rule = "only value its row, column, box and cage sum allow"
    # Cage sizes drawn by the generator (ours): mostly 2-3 cells, some singles on 4x4, up to 5 on 9x9.
    _CAGE_SIZES = {4: (1, 2, 2, 2, 3, 3), 9: (2, 2, 3, 3, 3, 4, 4, 5)}

    def check_size(self, n: int) -> None:
        if n not in OFFICIAL_BOX_SIZES:
            raise ValueError(f"killersudoku size {n} is not supported; sizes are 4 and 9 (as the official checker)")

    def rules(self, n: int) -> str:
        b = math.isqrt(n)
        return (
            f"Fill every empty cell with a number from 1 to {n} so that each row, each column and each {b}x{b} box "
            f"contains every number from 1 to {n} exactly once, and the numbers in each cage (the cells sharing a "
            "letter in the cage map) add up to that cage's sum."
        )

    def random_side_info(self, solution: Board, rng: random.Random) -> dict:
        """Connected cages covering the board, grown from the first free cell (row-major) to a drawn size; a cage
        takes no number twice (the usual Killer convention; the official checker does not ask for it)."""
        n = len(solution)
        free = {(r, c) for r in range(n) for c in range(n)}
        cages = []
        while free:
            start = min(free)
            cells, values = [start], {solution[start[0]][start[1]]}
            free.discard(start)
            size = rng.choice(self._CAGE_SIZES[n])
            while len(cells) < size:
                options = [cell for cell in _neighbours(cells, free) if solution[cell[0]][cell[1]] not in values]
                if not options:
                    break
                cell = rng.choice(options)
                cells.append(cell)
                values.add(solution[cell[0]][cell[1]])
                free.discard(cell)
            cages.append({"cells": [[r, c] for r, c in sorted(cells)], "sum": sum(solution[r][c] for r, c in cells)})
        return {"cages": cages}

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        if not super().allowed(board, r, c, v, side):
            return False
        n = len(board)
        for cage in side.get("cages") or []:
            cells = [tuple(cell) for cell in cage["cells"]]
            if (r, c) not in cells:
                continue
            total, empty = v, 0
            for i, j in cells:
                if (i, j) != (r, c):
                    if board[i][j] == EMPTY:
                        empty += 1
                    else:
                        total += board[i][j]
            # the other empty cells add between 1 and n each
            if not total + empty <= cage["sum"] <= total + empty * n:
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        """Rows, columns and boxes, then one unit per cage (its cells are numbers that add up to the sum)."""
        cages = []
        for cage in side.get("cages") or []:
            vals = [board[r][c] for r, c in cage["cells"]]
            ints = all(isinstance(x, int) and not isinstance(x, bool) for x in vals)
            cages.append(ints and sum(vals) == cage["sum"])
        return super().units(board, side) + cages

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # The official main() converts the answer with int() before check_answer (a failure drops the puzzle from
        # the counts: never correct); 0 then counts as empty in every constraint.
        ints = _to_ints(board)
        if ints is None:
            return False
        n = len(ints)
        if n not in OFFICIAL_BOX_SIZES:
            return False
        boxes = [[ints[r][c] for r, c in box] for box in _box_cells(n)]
        if not all(_official_no_repeat(unit) for unit in _rows_and_columns(ints) + boxes):
            return False
        for cage in side.get("cages") or []:
            vals = [ints[r][c] for r, c in cage["cells"]]
            total = sum(x for x in vals if x != 0)
            if total > cage["sum"] or (all(x != 0 for x in vals) and total != cage["sum"]):
                return False
        return True

    def render_extra(self, board: Board, side: dict) -> str:
        cages = side.get("cages") or []
        if not cages:
            return ""
        n = len(board)
        letters = [["."] * n for _ in range(n)]
        for k, cage in enumerate(cages):
            for r, c in cage["cells"]:
                letters[r][c] = label(k)
        sums = ", ".join(f"{label(k)}={cage['sum']}" for k, cage in enumerate(cages))
        return _render_map(letters, "Cage map (cells with the same letter form one cage):") + f"\nCage sums: {sums}"


ODD_EVEN_SUDOKU = register_game(OddEvenSudoku())
JIGSAW_SUDOKU = register_game(JigsawSudoku())
KILLER_SUDOKU = register_game(KillerSudoku())
COLORED_SUDOKU = register_game(ColoredSudoku())
