"""VGRP-Bench games where the answer places objects on a grid: Star Battle, Light Up, Trees&Tents and Battleships
(arXiv:2503.23064; rules and checkers as in ryf1123/VGRP-Bench at fceb58d, src/puzzles/{starbattle,lightup,
treesandtents,battleships}.py and the answer handling of src/evaluate.py).

- Star Battle: put one star ('s') in every row, every column and every region; no two stars touch, not even
  diagonally; every other cell is 'e'. Side info (the official `regions`): {"regions": n x n region letters}.
- Light Up: put bulbs ('s') on non-wall cells so that every non-wall cell is lit (a bulb lights its row and column
  up to the nearest wall), no bulb lights another, and a numbered wall has exactly that many bulbs beside it
  (orthogonally). Wall cells hold 'w', the other cells 's' or 'e'. Side info: {"walls": [[r, c], ...],
  "wall_numbers": n x n ints} (the official `wall_numbers`: -1 = no number).
- Trees&Tents: put a tent ('tt') next to (orthogonally) each tree ('tr'); as the official checker reads it, every
  tent touches exactly one tree and every tree exactly one tent; no two tents touch, not even diagonally; the row
  and column clues count the tents; every other cell is 'e'. Side info: {"trees": [[r, c], ...], "row_clues": n
  ints, "col_clues": n ints} (the official `clues` holds the two clue lists).
- Battleships: place a fleet of straight ships ('s', water 'e'); ships touch neither orthogonally (two ships in
  line would read as one longer ship) nor diagonally; the row and column hints count the ship cells. Side info (the
  official `hints`): {"row_hints": n ints, "col_hints": n ints, "ships": {"length": count}}.

Walls and trees are side info (ours): in the official files they are cells of the initial board, so its givens
check keeps them; here the initial board holds only the sampled givens, so `official_check` requires 'w' on every
wall and 'tr' on every tree (what the official givens check enforces) and the prompt draws a map of them.

A given 'e' (sampled from the solution like any cell) is never enforced by either checker (the official givens
check skips 'e'), while the solver, and so the uniqueness check, keeps it; a different valid answer still passes.

The strict parser reads 'e' (and '0') as the integer 0, so `values` lists 0 too: the answer may write it for an
empty cell, the solver never places it (`allowed` rejects it).
"""

from __future__ import annotations

import random
from typing import Any

from .puzzles import EMPTY, OFFICIAL_ERRORS, Board, Game, board_lines, register_game, spaced

STAR, UNMARKED, WALL, TENT, TREE = "s", "e", "w", "tt", "tr"
_EMPTY_MARKS = (UNMARKED, EMPTY)  # an answer's empty cell: 'e', or 0 as the strict parser reads 'e'/'0'
_ORTHO = ((-1, 0), (1, 0), (0, -1), (0, 1))
_KING = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


# --- shared helpers ---


def _neighbours(n: int, r: int, c: int, steps: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    return [(r + dr, c + dc) for dr, dc in steps if 0 <= r + dr < n and 0 <= c + dc < n]


def _windows(board: Board) -> list[list[Any]]:
    """Every 2x2 block: two cells touch (even diagonally) exactly when some block holds both."""
    n = len(board)
    return [[board[r + i][c + j] for i in (0, 1) for j in (0, 1)] for r in range(n - 1) for c in range(n - 1)]


def _cells(side: dict, key: str) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in side.get(key) or []}


def _rc(r: int, c: int) -> str:
    return f"r{r + 1}c{c + 1}"


def _legend(marks: str) -> str:
    return (
        f"Answer with {marks} and e for every other cell. In the board, letters are given cells; in the Perception "
        "copy them as they are and write 0 for each empty cell."
    )


# --- Star Battle ---


class StarBattle(Game):
    unshaded_is_value = True  # a given 'e' (no star/bulb/tent/ship) binds the answer in strict mode
    name, title = "starbattle", "Star Battle"
    single_rule = "the other choice would break a row, column or region star or make two stars touch"
    clue_fraction = (0.0, 0.15)  # ours

    def check_size(self, n: int) -> None:
        # One star per line needs n >= 4; from 8 the generic solver's uniqueness checks take seconds a puzzle.
        if not 4 <= n <= 7:
            raise ValueError(f"starbattle size {n} is not supported; sizes are 4 to 7")

    def values(self, n: int) -> list[Any]:
        return [STAR, UNMARKED, EMPTY]

    def rules(self, n: int) -> str:
        return (
            "Place stars so that every row, every column and every region (cells with the same letter in the "
            "region map) holds exactly one star, and no two stars touch, not even diagonally. "
        ) + _legend("s for a star")

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """A random star per row whose columns form a permutation with neighbouring rows at least two columns
        apart (exists for n >= 4), found by randomised backtracking."""
        cols: list[int] = []

        def place(r: int) -> bool:
            if r == n:
                return True
            for c in rng.sample(range(n), n):
                if c not in cols and (not cols or abs(cols[-1] - c) > 1):
                    cols.append(c)
                    if place(r + 1):
                        return True
                    cols.pop()
            return False

        place(0)
        return [[STAR if c == cols[r] else UNMARKED for c in range(n)] for r in range(n)]

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        """Regions grown at random from the stars, one cell at a time (ours: the official generator is not
        released), so each region holds exactly one star of the solution."""
        n = len(solution)
        regions: list[list[str]] = [[""] * n for _ in range(n)]
        stars = [(r, c) for r in range(n) for c in range(n) if solution[r][c] == STAR]
        letters = rng.sample([chr(65 + k) for k in range(n)], n)
        for (r, c), letter in zip(stars, letters, strict=True):
            regions[r][c] = letter
        grown = list(stars)
        while len(grown) < n * n:
            r, c = rng.choice(grown)
            free = [(rr, cc) for rr, cc in _neighbours(n, r, c, _ORTHO) if not regions[rr][cc]]
            if free:
                rr, cc = rng.choice(free)
                regions[rr][cc] = regions[r][c]
                grown.append((rr, cc))
        return {"regions": regions}

    @staticmethod
    def _region_cells(side: dict) -> dict[Any, list[tuple[int, int]]]:
        out: dict[Any, list[tuple[int, int]]] = {}
        for r, row in enumerate(side["regions"]):
            for c, region in enumerate(row):
                out.setdefault(region, []).append((r, c))
        return out

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """A star: none yet in its row, column or region, none around it. An empty cell: its row, column and
        region still hold a star or an undecided cell."""
        n = len(board)
        region = [cell for cell in self._region_cells(side)[side["regions"][r][c]] if cell != (r, c)]
        row = [(r, j) for j in range(n) if j != c]
        col = [(i, c) for i in range(n) if i != r]
        if v == STAR:
            return self._star_fits(board, r, c, side)
        if v == UNMARKED:
            return all(any(board[i][j] in (STAR, EMPTY) for i, j in unit) for unit in (row, col, region))
        return False

    def _star_fits(self, board: Board, r: int, c: int, side: dict) -> bool:
        """No star yet in the row, column or region of (r, c), nor around it."""
        n = len(board)
        region = self._region_cells(side)[side["regions"][r][c]]
        if any(board[r][j] == STAR for j in range(n)) or any(board[i][c] == STAR for i in range(n)):
            return False
        if any(board[i][j] == STAR for i, j in region):
            return False
        return not any(board[i][j] == STAR for i, j in _neighbours(n, r, c, _KING))

    def units(self, board: Board, side: dict) -> list[bool]:
        """Rows, columns and regions with exactly one star (and only valid cells); every 2x2 block with at most
        one star (no two stars touch)."""
        groups = board_lines(board) + [[board[r][c] for r, c in cells] for cells in self._region_cells(side).values()]
        out = [all(x == STAR or x in _EMPTY_MARKS for x in g) and g.count(STAR) == 1 for g in groups]
        return out + [block.count(STAR) <= 1 for block in _windows(board)]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # check_answer turns 0/'0' into 'e'; the constraints count only cells equal to 's' (any other string, ' s'
        # or 'x', is an empty cell) and a line or region without the integer 0 (always, after that) must hold
        # exactly one star. The region ids come from the regions grid (the letters it holds).
        try:
            n = len(board)
            cells = [["e" if x in (0, "0") else x for x in row] for row in board]
            for line in board_lines(cells):
                if sum(x == STAR for x in line) != 1:
                    return False
            regions = side["regions"]
            counts: dict[Any, int] = {}
            for i in range(n):
                for j in range(n):
                    if cells[i][j] == STAR:
                        counts[regions[i][j]] = counts.get(regions[i][j], 0) + 1
            if any(counts.get(region, 0) != 1 for region in {x for row in regions for x in row}):
                return False
            for i in range(n):
                for j in range(n):
                    if cells[i][j] == STAR and any(cells[a][b] == STAR for a, b in _neighbours(n, i, j, _KING)):
                        return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        rows = "\n".join(" ".join(str(x) for x in row) for row in side.get("regions") or [])
        return f"Region map (cells with the same letter form a region):\n{rows}"


# --- Light Up ---


def _sight(n: int, walls: set[tuple[int, int]], r: int, c: int) -> list[tuple[int, int]]:
    """The cells a bulb at (r, c) lights besides its own: along the row and column up to the nearest wall."""
    out = []
    for dr, dc in _ORTHO:
        rr, cc = r + dr, c + dc
        while 0 <= rr < n and 0 <= cc < n and (rr, cc) not in walls:
            out.append((rr, cc))
            rr, cc = rr + dr, cc + dc
    return out


class LightUp(Game):
    unshaded_is_value = True  # a given 'e' (no star/bulb/tent/ship) binds the answer in strict mode
    name, title = "lightup", "Light Up"
    single_rule = "the other choice would leave a cell dark, make two bulbs see each other or break a wall number"
    clue_fraction = (0.0, 0.2)  # ours
    WALL_SHARE = 0.2  # chance that a cell is a wall (ours)
    NUMBER_SHARE = 1.0  # chance that a wall shows its number of neighbouring bulbs (ours)

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 7:  # the official factory takes >= 3
            raise ValueError(f"lightup size {n} is not supported; sizes are 4 to 7")

    def values(self, n: int) -> list[Any]:
        return [STAR, UNMARKED, WALL, EMPTY]

    def rules(self, n: int) -> str:
        return (
            "Place light bulbs on cells that are not walls. A bulb lights its own cell and every cell in its row "
            "and column up to the nearest wall. Every non-wall cell must be lit, no bulb may light another bulb, "
            "and a wall with a number must have exactly that many bulbs in the cells directly above, below, left "
            "and right of it. "
        ) + _legend("s for a bulb, w for every wall cell (see the wall map)")

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """Random walls, then bulbs on the still-dark cells in random order (a dark cell sees no bulb, so each
        new bulb is legal and the pass ends with every cell lit)."""
        board = [[WALL if rng.random() < self.WALL_SHARE else UNMARKED for _ in range(n)] for _ in range(n)]
        walls = {(r, c) for r in range(n) for c in range(n) if board[r][c] == WALL}
        lit: set[tuple[int, int]] = set()
        for cell in rng.sample(range(n * n), n * n):
            r, c = divmod(cell, n)
            if (r, c) not in walls and (r, c) not in lit:
                board[r][c] = STAR
                lit |= {(r, c), *_sight(n, walls, r, c)}
        return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        n = len(solution)
        walls = [[r, c] for r in range(n) for c in range(n) if solution[r][c] == WALL]
        numbers = [[-1] * n for _ in range(n)]
        for r, c in walls:
            if rng.random() < self.NUMBER_SHARE:
                numbers[r][c] = sum(solution[a][b] == STAR for a, b in _neighbours(n, r, c, _ORTHO))
        return {"walls": walls, "wall_numbers": numbers}

    @staticmethod
    def _numbered(side: dict, r: int, c: int) -> int:
        numbers = side.get("wall_numbers") or []
        return numbers[r][c] if r < len(numbers) and c < len(numbers[r]) else -1

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """Walls take 'w' and nothing else takes it. A bulb: no bulb in sight, no numbered wall beside it already
        full. An empty cell: every numbered wall beside it can still be reached, and it and every empty cell in
        its sight still see a bulb or an undecided cell."""
        n = len(board)
        walls = _cells(side, "walls")
        if (r, c) in walls or v == WALL:
            return (r, c) in walls and v == WALL
        beside = [
            (a, b) for a, b in _neighbours(n, r, c, _ORTHO) if (a, b) in walls and self._numbered(side, a, b) >= 0
        ]
        if v == STAR:
            if any(board[a][b] == STAR for a, b in _sight(n, walls, r, c)):
                return False
            return all(self._bulbs_beside(board, walls, a, b) < self._numbered(side, a, b) for a, b in beside)
        if v != UNMARKED:
            return False
        for a, b in beside:
            open_cells = [
                x
                for x in _neighbours(n, a, b, _ORTHO)
                if x != (r, c) and x not in walls and board[x[0]][x[1]] == EMPTY
            ]
            if self._bulbs_beside(board, walls, a, b) + len(open_cells) < self._numbered(side, a, b):
                return False
        sight = _sight(n, walls, r, c)
        for cell in [(r, c)] + [(a, b) for a, b in sight if board[a][b] == UNMARKED]:
            if not any(x != (r, c) and board[x[0]][x[1]] in (STAR, EMPTY) for x in _sight(n, walls, *cell)):
                return False
        return True

    @staticmethod
    def _bulbs_beside(board: Board, walls: set[tuple[int, int]], r: int, c: int) -> int:
        return sum(board[a][b] == STAR for a, b in _neighbours(len(board), r, c, _ORTHO) if (a, b) not in walls)

    @staticmethod
    def _segments(n: int, walls: set[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """The maximal runs of non-wall cells along rows and columns (a bulb lights its two runs)."""
        out = []
        for line in [[(r, c) for c in range(n)] for r in range(n)] + [[(r, c) for r in range(n)] for c in range(n)]:
            run: list[tuple[int, int]] = []
            for cell in [*line, None]:
                if cell is None or cell in walls:
                    if run:
                        out.append(run)
                    run = []
                else:
                    run.append(cell)
        return out

    def units(self, board: Board, side: dict) -> list[bool]:
        """Each wall: 'w' and, if numbered, that many bulbs beside it; each run of non-wall cells: valid cells and
        at most one bulb; each non-wall cell: lit."""
        n = len(board)
        walls = _cells(side, "walls")
        out = []
        for r, c in sorted(walls):
            number = self._numbered(side, r, c)
            out.append(board[r][c] == WALL and (number < 0 or self._bulbs_beside(board, walls, r, c) == number))
        for run in self._segments(n, walls):
            cells = [board[r][c] for r, c in run]
            out.append(all(x == STAR or x in _EMPTY_MARKS for x in cells) and cells.count(STAR) <= 1)
        for r in range(n):
            for c in range(n):
                if (r, c) not in walls:
                    out.append(any(board[a][b] == STAR for a, b in [(r, c), *_sight(n, walls, r, c)]))
        return out

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # Ours: every wall must hold 'w' (in the official files walls are givens of the initial board).
        # check_answer turns '0' into 'e'. ConstraintLightUpBulb: light runs until a cell equal to 'w' (a 'w'
        # written on a non-wall cell blocks light too) and no 's' may see another. ConstraintLightUpWall: a cell
        # equal to 'w' whose wall_numbers entry is not -1 has exactly that many 's' beside it (skipped when
        # wall_numbers is empty). ConstraintLightUpIllumination: only cells equal to 'e' must see an 's' (so any
        # other string, 'x' or ' e', is never checked).
        try:
            n = len(board)
            cells = [["e" if x == "0" else x for x in row] for row in board]
            if any(cells[r][c] != WALL for r, c in _cells(side, "walls")):
                return False
            drawn = {(r, c) for r in range(n) for c in range(n) if cells[r][c] == WALL}
            for r in range(n):
                for c in range(n):
                    sees_bulb = any(cells[a][b] == STAR for a, b in _sight(n, drawn, r, c))
                    if cells[r][c] == STAR and sees_bulb:
                        return False
                    if cells[r][c] == UNMARKED and not sees_bulb:
                        return False
            numbers = side.get("wall_numbers")
            if numbers:
                for r in range(n):
                    for c in range(n):
                        if cells[r][c] == WALL and numbers[r][c] != -1:
                            near = sum(cells[a][b] == STAR for a, b in _neighbours(n, r, c, _ORTHO))
                            if near != numbers[r][c]:
                                return False
            return True
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        n = len(board)
        walls = _cells(side, "walls")
        rows = []
        for r in range(n):
            marks = []
            for c in range(n):
                number = self._numbered(side, r, c)
                marks.append(("#" if number < 0 else str(number)) if (r, c) in walls else ".")
            rows.append(" ".join(marks))
        return "Wall map (# = wall, a digit = numbered wall, . = not a wall):\n" + "\n".join(rows)


# --- Trees&Tents ---


class TreesAndTents(Game):
    unshaded_is_value = True  # a given 'e' (no star/bulb/tent/ship) binds the answer in strict mode
    name, title = "treesandtents", "Trees and Tents"
    single_rule = "the other choice would break a row or column count, a tree's tent or make two tents touch"
    clue_fraction = (0.0, 0.2)  # ours
    TENT_SHARE = 0.2  # tents drawn per cell of the grid (ours)

    def check_size(self, n: int) -> None:
        if not 4 <= n <= 8:  # the official factory takes >= 3
            raise ValueError(f"treesandtents size {n} is not supported; sizes are 4 to 8")

    def values(self, n: int) -> list[Any]:
        return [TENT, TREE, UNMARKED, EMPTY]

    def rules(self, n: int) -> str:
        return (
            "Place tents next to the trees (see the tree map). Every tent is directly above, below, left or right "
            "of exactly one tree, and every tree has exactly one tent directly above, below, left or right of it. "
            "No two tents touch, not even diagonally. Each row and column clue is the number of tents in that row "
            "or column. "
        ) + _legend("tt for a tent, tr for every tree cell")

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """Tent-tree pairs dropped at random cells: a tent touches no other tent, and the pair touches no other
        pair's tent or tree orthogonally, so each tent has exactly one tree beside it and each tree one tent."""
        board: Board = [[UNMARKED] * n for _ in range(n)]
        want = max(1, round(self.TENT_SHARE * n * n))
        pairs = 0
        for cell in rng.sample(range(n * n), n * n):
            if pairs >= want:
                break
            r, c = divmod(cell, n)
            if board[r][c] != UNMARKED or any(board[a][b] == TENT for a, b in _neighbours(n, r, c, _KING)):
                continue
            if any(board[a][b] == TREE for a, b in _neighbours(n, r, c, _ORTHO)):
                continue
            spots = [
                (a, b)
                for a, b in _neighbours(n, r, c, _ORTHO)
                if board[a][b] == UNMARKED and not any(board[x][y] == TENT for x, y in _neighbours(n, a, b, _ORTHO))
            ]
            if spots:
                a, b = rng.choice(spots)
                board[r][c], board[a][b] = TENT, TREE
                pairs += 1
        return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        n = len(solution)
        return {
            "trees": [[r, c] for r in range(n) for c in range(n) if solution[r][c] == TREE],
            "row_clues": [row.count(TENT) for row in solution],
            "col_clues": [[solution[r][c] for r in range(n)].count(TENT) for c in range(n)],
        }

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """Trees take 'tr' and nothing else takes it. A tent: room left in its row and column count, no tent
        around it, exactly one tree beside it and that tree without a tent yet. An empty cell: its row and column
        can still reach their counts and every tree beside it without a tent keeps an undecided spot."""
        n = len(board)
        trees = _cells(side, "trees")
        if (r, c) in trees or v == TREE:
            return (r, c) in trees and v == TREE
        row = [board[r][j] for j in range(n) if j != c]
        col = [board[i][c] for i in range(n) if i != r]
        row_clue, col_clue = side["row_clues"][r], side["col_clues"][c]
        beside = [(a, b) for a, b in _neighbours(n, r, c, _ORTHO) if (a, b) in trees]
        if v == TENT:
            if row.count(TENT) >= row_clue or col.count(TENT) >= col_clue or len(beside) != 1:
                return False
            if any(board[a][b] == TENT for a, b in _neighbours(n, r, c, _KING)):
                return False
            a, b = beside[0]
            return not any(board[x][y] == TENT for x, y in _neighbours(n, a, b, _ORTHO))
        if v != UNMARKED:
            return False
        if row.count(TENT) + row.count(EMPTY) < row_clue or col.count(TENT) + col.count(EMPTY) < col_clue:
            return False
        for a, b in beside:
            around = [(x, y) for x, y in _neighbours(n, a, b, _ORTHO) if (x, y) != (r, c) and (x, y) not in trees]
            if not any(board[x][y] in (TENT, EMPTY) for x, y in around):
                return False
        return True

    def units(self, board: Board, side: dict) -> list[bool]:
        """Row and column counts (with valid cells); each tree: 'tr' with exactly one tent beside it; every tent
        with exactly one tree beside it and no 'tr' off the trees; every 2x2 block with at most one tent."""
        n = len(board)
        trees = _cells(side, "trees")
        clues = list(side["row_clues"]) + list(side["col_clues"])
        out = [
            all(x in (TENT, TREE) or x in _EMPTY_MARKS for x in line) and line.count(TENT) == clue
            for line, clue in zip(board_lines(board), clues, strict=True)
        ]
        for r, c in sorted(trees):
            tents = sum(board[a][b] == TENT for a, b in _neighbours(n, r, c, _ORTHO))
            out.append(board[r][c] == TREE and tents == 1)
        placed = all(
            sum((a, b) in trees for a, b in _neighbours(n, r, c, _ORTHO)) == 1
            for r in range(n)
            for c in range(n)
            if board[r][c] == TENT
        )
        stray = any(board[r][c] == TREE for r in range(n) for c in range(n) if (r, c) not in trees)
        out.append(placed and not stray)
        return out + [block.count(TENT) <= 1 for block in _windows(board)]

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # Ours: every tree must hold 'tr' (in the official files trees are givens of the initial board).
        # evaluate.py turns 't' into 'tt' and 'r' into 'tr', check_answer 0/'0' into 'e'. Then, on cells equal to
        # 'tt'/'tr' (any other string is an empty cell): row and column tent counts exact; each tent has exactly
        # one 'tr' beside it (a 'tr' written off the trees counts as a tree); each 'tr' at most one tent beside it
        # and, with no undecided cell left, at least one; no two tents touch; as many tents as trees. Without
        # row/column clues the counts are not checked (the official `if not clues: return True`).
        try:
            n = len(board)
            alias = {"t": TENT, "r": TREE, 0: UNMARKED, "0": UNMARKED}
            cells = [[alias.get(x, x) for x in row] for row in board]
            if any(cells[r][c] != TREE for r, c in _cells(side, "trees")):
                return False
            if side.get("row_clues") or side.get("col_clues"):  # the official `if not clues: return True`
                for i in range(n):
                    if cells[i].count(TENT) != side["row_clues"][i]:
                        return False
                    if [cells[r][i] for r in range(n)].count(TENT) != side["col_clues"][i]:
                        return False
            for r in range(n):
                for c in range(n):
                    near = [cells[a][b] for a, b in _neighbours(n, r, c, _ORTHO)]
                    if cells[r][c] == TENT and near.count(TREE) != 1:
                        return False
                    if cells[r][c] == TREE and near.count(TENT) != 1:
                        return False
                    if cells[r][c] == TENT and any(cells[a][b] == TENT for a, b in _neighbours(n, r, c, _KING)):
                        return False
            return sum(row.count(TENT) for row in cells) == sum(row.count(TREE) for row in cells)
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        n = len(board)
        trees = _cells(side, "trees")
        rows = "\n".join(" ".join("T" if (r, c) in trees else "." for c in range(n)) for r in range(n))
        return (
            f"Tree map (T = tree):\n{rows}\n"
            f"Row clues (tents, top to bottom): {spaced(side.get('row_clues') or [])}\n"
            f"Column clues (tents, left to right): {spaced(side.get('col_clues') or [])}"
        )


# --- Battleships ---


def _runs(board: Board) -> list[tuple[list[tuple[int, int]], bool]]:
    """The ships on a board whose ship cells ('s') touch no other diagonally (so every orthogonally connected group
    is a straight line): each as its cells and whether it is closed (no undecided cell could extend it)."""
    n = len(board)
    seen: set[tuple[int, int]] = set()
    out = []
    for r in range(n):
        for c in range(n):
            if board[r][c] != STAR or (r, c) in seen:
                continue
            across = c + 1 < n and board[r][c + 1] == STAR
            dr, dc = (0, 1) if across else (1, 0)
            cells = [(r, c)]
            while True:
                rr, cc = cells[-1][0] + dr, cells[-1][1] + dc
                if not (0 <= rr < n and 0 <= cc < n) or board[rr][cc] != STAR:
                    break
                cells.append((rr, cc))
            seen.update(cells)
            ends = [(r - dr, c - dc), (cells[-1][0] + dr, cells[-1][1] + dc)]
            if len(cells) == 1:  # a single cell may still grow either way
                ends = _neighbours(n, r, c, _ORTHO)
            closed = all(not (0 <= a < n and 0 <= b < n) or board[a][b] not in (STAR, EMPTY) for a, b in ends)
            out.append((cells, closed))
    return out


class Battleships(Game):
    unshaded_is_value = True  # a given 'e' (no star/bulb/tent/ship) binds the answer in strict mode
    name, title = "battleships", "Battleships"
    single_rule = "the other choice would break a row or column count, the fleet or make ships touch"
    clue_fraction = (0.0, 0.2)  # ours
    FLEETS = {  # ship length -> count per size (ours: the official generator's fleets are not released)
        4: {2: 1, 1: 2},
        5: {3: 1, 2: 1, 1: 2},
        6: {3: 1, 2: 2, 1: 2},
        7: {4: 1, 3: 1, 2: 2, 1: 2},
    }

    def check_size(self, n: int) -> None:
        if n not in self.FLEETS:  # from 8 the generic solver's uniqueness checks take seconds a puzzle
            raise ValueError(f"battleships size {n} is not supported; sizes are 4 to 7")

    def values(self, n: int) -> list[Any]:
        return [STAR, UNMARKED, EMPTY]

    def rules(self, n: int) -> str:
        return (
            "Place the fleet of ships (listed below) in the grid. Each ship is a straight line of cells, across or "
            "down; ships do not touch each other, not even diagonally. Each row and column hint is the number of "
            "ship cells in that row or column. "
        ) + _legend("s for a ship cell")

    def random_solution(self, n: int, rng: random.Random) -> Board:
        """The fleet placed longest ship first at random free spots, none touching another (retried from an empty
        sea when a ship finds no room)."""
        lengths = sorted((k for k, count in self.FLEETS[n].items() for _ in range(count)), reverse=True)
        while True:
            board: Board = [[UNMARKED] * n for _ in range(n)]
            for length in lengths:
                spots = []
                for r in range(n):
                    for c in range(n):
                        for dr, dc in ((0, 1), (1, 0)) if length > 1 else ((0, 1),):
                            cells = [(r + dr * k, c + dc * k) for k in range(length)]
                            if all(0 <= a < n and 0 <= b < n for a, b in cells) and not any(
                                board[x][y] == STAR
                                for a, b in cells
                                for x, y in [(a, b), *_neighbours(n, a, b, _KING)]
                            ):
                                spots.append(cells)
                if not spots:
                    break
                for a, b in rng.choice(spots):
                    board[a][b] = STAR
            else:
                return board

    def random_side_info(self, solution: Board, rng: random.Random, *_: Any) -> dict:
        n = len(solution)
        return {
            "row_hints": [row.count(STAR) for row in solution],
            "col_hints": [[solution[r][c] for r in range(n)].count(STAR) for c in range(n)],
            "ships": {str(k): v for k, v in sorted(self.FLEETS[n].items(), reverse=True)},
        }

    @staticmethod
    def _fleet(side: dict) -> dict[int, int]:
        return {int(k): int(v) for k, v in (side.get("ships") or {}).items()}

    def allowed(self, board: Board, r: int, c: int, v: Any, side: dict) -> bool:
        """Row and column hints still reachable, no ship cell touching another diagonally, no ship longer than the
        fleet's longest, and no more closed ships of a length than the fleet holds."""
        if v not in (STAR, UNMARKED):
            return False
        n = len(board)
        row = [v if j == c else board[r][j] for j in range(n)]
        col = [v if i == r else board[i][c] for i in range(n)]
        for line, hint in ((row, side["row_hints"][r]), (col, side["col_hints"][c])):
            if not line.count(STAR) <= hint <= line.count(STAR) + line.count(EMPTY):
                return False
        diagonal = [(r + dr, c + dc) for dr in (-1, 1) for dc in (-1, 1)]
        if v == STAR and any(0 <= a < n and 0 <= b < n and board[a][b] == STAR for a, b in diagonal):
            return False
        board[r][c] = v
        try:
            fleet = self._fleet(side)
            closed: dict[int, int] = {}
            for cells, done in _runs(board):
                if len(cells) > max(fleet, default=0):
                    return False
                if done:
                    closed[len(cells)] = closed.get(len(cells), 0) + 1
            return all(count <= fleet.get(length, 0) for length, count in closed.items())
        finally:
            board[r][c] = EMPTY

    def units(self, board: Board, side: dict) -> list[bool]:
        """Row and column hints (with valid cells); the fleet exactly; every 2x2 block without a diagonal pair of
        ship cells."""
        hints = list(side["row_hints"]) + list(side["col_hints"])
        out = [
            all(x == STAR or x in _EMPTY_MARKS for x in line) and line.count(STAR) == hint
            for line, hint in zip(board_lines(board), hints, strict=True)
        ]
        blocks = _windows(board)
        diagonal_free = [not (b[0] == b[3] == STAR or b[1] == b[2] == STAR) for b in blocks]
        lengths: dict[int, int] = {}
        if all(diagonal_free):
            for cells, _ in _runs(board):
                lengths[len(cells)] = lengths.get(len(cells), 0) + 1
        out.append(all(diagonal_free) and lengths == {k: v for k, v in self._fleet(side).items() if v})
        return out + diagonal_free

    def official_check(self, board: list[list[str]], side: dict) -> bool:
        # No conversion of the answer (battleships is not in check_answer's 0 -> 'e' list): only cells equal to 's'
        # are ship cells, '0' and any other string are water. ConstraintBattleships: no 's' with a diagonal 's'.
        # ConstraintBattleshipsHints: as many 's' as the fleet's cells, each row and column exactly its hint (a line
        # of strings is always complete), then ships read from their first cell in row-major order (across if the
        # next cell is 's', else down) and, for each length of `ships`, exactly its count.
        try:
            n = len(board)
            for i in range(n):
                for j in range(n):
                    if board[i][j] == STAR and any(
                        0 <= i + di < n and 0 <= j + dj < n and board[i + di][j + dj] == STAR
                        for di in (-1, 1)
                        for dj in (-1, 1)
                    ):
                        return False
            ships = side["ships"]
            if sum(row.count(STAR) for row in board) != sum(int(k) * int(v) for k, v in ships.items()):
                return False
            for i in range(n):
                if board[i].count(STAR) != side["row_hints"][i]:
                    return False
                if [board[r][i] for r in range(n)].count(STAR) != side["col_hints"][i]:
                    return False
            found: dict[int, int] = {}
            for cells, _ in _runs(board):
                found[len(cells)] = found.get(len(cells), 0) + 1
            return all(found.get(int(k), 0) == int(v) for k, v in ships.items())
        except OFFICIAL_ERRORS:
            return False

    def render_extra(self, board: Board, side: dict) -> str:
        fleet = ", ".join(f"{v} of length {k}" for k, v in self._fleet(side).items())
        return (
            f"Fleet: {fleet}\n"
            f"Row hints (ship cells, top to bottom): {spaced(side.get('row_hints') or [])}\n"
            f"Column hints (ship cells, left to right): {spaced(side.get('col_hints') or [])}"
        )


STARBATTLE = register_game(StarBattle())
LIGHTUP = register_game(LightUp())
TREESANDTENTS = register_game(TreesAndTents())
BATTLESHIPS = register_game(Battleships())
