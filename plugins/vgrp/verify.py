"""Parsing a model's "Perception / Answer" output and checking it against a puzzle, in two modes.

`official` reproduces VGRP-Bench's evaluator (`extract_perception_and_answer`, `check_perception`, `check_answer` in
src/evaluate.py): sections split on "Perception\\n"/"Initial State\\n" and "\\nAnswer\\n"/"\\nSolution\\n", grids read
with `strip()[2:-2].split('],[')` and `split(',')`, cells kept as raw strings ('*' in the perception read as 0), no
JSON repair, no normalisation. Perception compares every cell of the initial board as strings (so empty cells must be
written 0 or *). The answer must be n x n, keep every given (initial cells other than 0/'0'/'e') as strings, then
pass the game's official constraint check, which has no value-range test.

`strict` (ours, the default of the GRPO rewards) closes the official checker's gaps a policy could exploit: headers
may carry a colon or differ in case, rows may be split by newlines, cells are normalised (spaces and quotes removed,
'*', '.', '_', 'e', '0' read as empty), and the answer must hold only valid values (1..n, or w/b) in every cell.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .games import get_game
from .puzzles import EMPTY, Board, Game

MODES = ("official", "strict")
MAX_SIDE = 32  # a grid larger than this is not a board of any puzzle here; parsing stops
_EMPTY_MARKS = {"0", "*", ".", "_", "e", "-"}
_QUOTES = "'\"`"


@dataclass(frozen=True)
class Puzzle:
    """One puzzle: the game, the initial board (0 = empty) and the side information (Futoshiki's inequalities)."""

    game: Game
    init: Board
    side: dict

    @property
    def size(self) -> int:
        return len(self.init)

    @classmethod
    def from_row(cls, game: Any, init_board: Any, side_info: Any = None) -> Puzzle:
        """From dataset columns: `game` a name, `init_board` and `side_info` JSON strings (or already decoded).
        Raises ValueError for a row that describes no puzzle."""
        if not isinstance(game, str):
            raise ValueError(f"game must be a string, got {type(game).__name__}")
        init = json.loads(init_board) if isinstance(init_board, str) else init_board
        side = json.loads(side_info) if isinstance(side_info, str) and side_info.strip() else side_info
        side = side if isinstance(side, dict) else {}
        if (
            not isinstance(init, list)
            or not 0 < len(init) <= MAX_SIDE
            or not all(isinstance(row, list) and len(row) == len(init) for row in init)
        ):
            raise ValueError("init_board must be a square list of rows")
        return cls(get_game(game), init, side)


# --- official ---


def parse_official(text: str) -> tuple[list[list[Any]] | None, list[list[str]] | None]:
    """(perception, answer) exactly as the official `extract_perception_and_answer` (text input off): both None
    when the sections are not found."""
    try:
        if "Initial State" in text:
            parts = text.split("Initial State\n", 1)
        elif "Perception" in text:
            parts = text.split("Perception\n", 1)
        else:
            return None, None
        if len(parts) != 2:
            return None, None
        content = parts[1]
        if "Answer" in content:
            sections = content.split("\nAnswer\n")
        elif "Solution" in content:
            sections = content.split("\nSolution\n")
        else:
            return None, None
        if len(sections) != 2:
            return None, None
        perception, answer = sections
        if perception.strip() == "Wrong":
            return None, None
        initial_state = [list(row.split(",")) for row in perception.strip()[2:-2].split("],[")]
        solution = [list(row.split(",")) for row in answer.strip()[2:-2].split("],[")]
        initial_state = [[cell if cell != "*" else 0 for cell in row] for row in initial_state]
        return initial_state, solution
    except Exception:
        return None, None


def perception_ok_official(perceived: list[list[Any]] | None, init: Board) -> bool:
    if perceived is None:
        return False
    if len(perceived) != len(init) or any(len(row) != len(init[0]) for row in perceived):
        return False
    return all(str(init[i][j]) == str(perceived[i][j]) for i in range(len(init)) for j in range(len(init[0])))


def answer_ok_official(answer: list[list[str]] | None, puzzle: Puzzle) -> bool:
    if answer is None:
        return False
    n = puzzle.size
    if len(answer) != n or any(len(row) != n for row in answer):
        return False
    for i in range(n):
        for j in range(n):
            given = puzzle.init[i][j]
            skipped = (0, "0", "e") if puzzle.game.official_skips_e_givens else (0, "0")
            if given not in skipped and str(given) != str(answer[i][j]):
                return False
    try:
        return bool(puzzle.game.official_check([list(row) for row in answer], puzzle.side))
    except Exception:
        return False


# --- strict ---

# A header starts a line and is followed by the end of the line or by the grid itself ("Answer: [[...]]").
_HEADER_P = re.compile(r"(?im)^[ \t#*]*(?:perception|initial state)[ \t*]*:?[ \t*]*(?=\[|$)")
_HEADER_A = re.compile(r"(?im)^[ \t#*]*(?:answer|solution)[ \t*]*:?[ \t*]*(?=\[|$)")


def _cell(raw: str) -> Any:
    cell = raw.strip().strip(_QUOTES).strip().lower()
    if cell in _EMPTY_MARKS or cell == "":
        return EMPTY
    if cell.isdigit() and len(cell) <= 3:
        return int(cell)
    return cell


def parse_grid_strict(section: str) -> list[list[Any]] | None:
    """A grid from a section's text: bracketed rows "[[1,2],[3,4]]" (any spacing, rows on lines or not) or bare
    lines of cells split by commas or spaces. None when there is no grid or it is ragged or too large."""
    section = section.strip()
    if not section:
        return None
    if "[" in section:
        start = section.index("[")
        depth, end = 0, None
        for k in range(start, len(section)):
            if section[k] == "[":
                depth += 1
            elif section[k] == "]":
                depth -= 1
                if depth == 0:
                    end = k
                    break
        if end is None:
            return None
        # "[[...],[...]]": the rows inside the first outer bracket; "[...]\n[...]": every bracketed row.
        rows_text = re.findall(r"\[([^\[\]]*)\]", section[start + 1 : end]) or re.findall(r"\[([^\[\]]*)\]", section)
        rows = [[_cell(c) for c in row.split(",")] for row in rows_text[: MAX_SIDE + 1]]
    else:
        lines = [line for line in section.splitlines() if line.strip()][: MAX_SIDE + 1]
        rows = [[_cell(c) for c in (line.split(",") if "," in line else line.split())] for line in lines]
    if not rows or len(rows) > MAX_SIDE or any(len(row) != len(rows[0]) or len(row) > MAX_SIDE for row in rows):
        return None
    return rows


def parse_strict(text: str) -> tuple[list[list[Any]] | None, list[list[Any]] | None]:
    """(perception, answer): the first Perception/Initial State header, then the first Answer/Solution header after
    it; each section's grid (see `parse_grid_strict`). Both None when either header is missing."""
    p = _HEADER_P.search(text)
    if p is None:
        return None, None
    a = _HEADER_A.search(text, p.end())
    if a is None:
        return None, None
    return parse_grid_strict(text[p.end() : a.start()]), parse_grid_strict(text[a.end() :])


def _norm_given(cell: Any) -> Any:
    return _cell(str(cell)) if not isinstance(cell, int) or isinstance(cell, bool) else cell


def perception_ok_strict(perceived: list[list[Any]] | None, init: Board) -> bool:
    if perceived is None or len(perceived) != len(init) or any(len(row) != len(init[0]) for row in perceived):
        return False
    return all(
        _norm_given(g) == p
        for grow, prow in zip(init, perceived, strict=True)
        for g, p in zip(grow, prow, strict=True)
    )


def valid_cells(answer: list[list[Any]], puzzle: Puzzle) -> list[list[bool]]:
    """Per cell: holds a value of the game and agrees with the given, if any (in a shading game a given 'e' is an
    unshaded cell, which the answer must keep unshaded: 'e', or 0 as the strict parser reads it)."""
    values = set(puzzle.game.values(puzzle.size))
    shading = puzzle.game.unshaded_is_value

    def agrees(given: Any, cell: Any) -> bool:
        if given in (0, "0"):
            return True
        if given == "e":
            return not shading or cell in (EMPTY, "e")
        return _norm_given(given) == cell

    return [
        [answer[i][j] in values and agrees(puzzle.init[i][j], answer[i][j]) for j in range(puzzle.size)]
        for i in range(puzzle.size)
    ]


def answer_ok_strict(answer: list[list[Any]] | None, puzzle: Puzzle) -> bool:
    n = puzzle.size
    if answer is None or len(answer) != n or any(len(row) != n for row in answer):
        return False
    if not all(all(row) for row in valid_cells(answer, puzzle)):
        return False
    return all(puzzle.game.units(answer, puzzle.side))


def partial_score(answer: list[list[Any]] | None, puzzle: Puzzle) -> float:
    """R_partial: the fraction of the game's constraint units (Sudoku: rows, columns, boxes; Binairo: rows,
    columns; Futoshiki: rows, columns, inequalities) that the strict-parsed answer satisfies; 0 when its shape is
    wrong. A unit with an invalid cell or a cell that contradicts a given counts as broken (ours: so that ignoring
    the givens earns nothing)."""
    n = puzzle.size
    if answer is None or len(answer) != n or any(len(row) != n for row in answer):
        return 0.0
    ok = valid_cells(answer, puzzle)
    # Each unit is checked on a board where bad cells get distinct impossible markers, so they break their units.
    marked = [[answer[i][j] if ok[i][j] else ("!", i, j) for j in range(n)] for i in range(n)]
    try:
        units = puzzle.game.units(marked, puzzle.side)
    except TypeError:  # an inequality on a bad cell: score the comparable units, the others broken
        units = _units_with_bad(marked, puzzle)
    return sum(units) / len(units) if units else 0.0


def _units_with_bad(marked: list[list[Any]], puzzle: Puzzle) -> list[bool]:
    from .puzzles import Futoshiki

    n = puzzle.size
    full = set(range(1, n + 1))
    lines = [list(row) for row in marked] + [[marked[r][c] for r in range(n)] for c in range(n)]
    out = [set(line) == full for line in lines]
    for r1, c1, r2, c2 in Futoshiki._pairs(n, puzzle.side):
        a, b = marked[r1][c1], marked[r2][c2]
        out.append(isinstance(a, int) and isinstance(b, int) and a < b)
    return out


@dataclass(frozen=True)
class Verdict:
    parsed: bool
    perception_ok: bool
    answer_ok: bool  # gated on perception, as the official accuracy
    answer_ok_ungated: bool


def verify(text: str, puzzle: Puzzle, mode: str = "official") -> Verdict:
    """Parse `text` and check it against `puzzle` in `mode` ("official" or "strict")."""
    if mode == "official":
        perceived, answer = parse_official(text)
        p_ok = perception_ok_official(perceived, puzzle.init)
        a_ok = answer_ok_official(answer, puzzle)
    elif mode == "strict":
        perceived, answer = parse_strict(text)
        p_ok = perception_ok_strict(perceived, puzzle.init)
        a_ok = answer_ok_strict(answer, puzzle)
    else:
        raise ValueError(f"verifier={mode!r} is not one of {', '.join(MODES)}")
    parsed = perceived is not None and answer is not None
    return Verdict(parsed, p_ok, p_ok and a_ok, a_ok)


def format_grid(board: Board) -> str:
    """The official output form of a grid: "[[1,0,0,4],[...]]", no spaces, no quotes."""
    return "[" + ",".join("[" + ",".join(str(cell) for cell in row) + "]" for row in board) + "]"
