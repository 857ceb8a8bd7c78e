"""Board helpers shared by the VGRP-Bench tests (tests/plugins/test_vgrp*.py), written here, independently of the
plugin's own formatting and parsing, so that a bug there cannot hide itself in the expected text. Imported as a plain
module: pytest's default (prepend) import mode puts tests/plugins on sys.path."""

from __future__ import annotations

import json

from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.data import make_vgrp_dataset
from trl_ext_plugins.vgrp.games import get_game
from trl_ext_plugins.vgrp.puzzles import count_solutions
from trl_ext_plugins.vgrp.transforms import to_r_sft
from trl_ext_plugins.vgrp.verify import Puzzle, verify


def grid_text(board) -> str:
    """The compact `[[a,b],[c,d]]` text of a board, written here rather than taken from verify.format_grid."""
    return "[" + ",".join("[" + ",".join(map(str, row)) + "]" for row in board) + "]"


def board_output(init, answer) -> str:
    """A completion with both sections, built from boards with grid_text (not with the plugin's formatting)."""
    return f"Perception\n{grid_text(init)}\nAnswer\n{grid_text(answer)}"


def strs(board):
    """Every cell as a string, the form the official checkers receive from the official parser."""
    return [[str(x) for x in row] for row in board]


def with_cells(board, *changes):
    """A copy of the board with each (r, c, value) of changes applied; the board itself is left unchanged."""
    out = [list(row) for row in board]
    for r, c, v in changes:
        out[r][c] = v
    return out


def with_cell(board, r, c, v):
    """A copy of the board with cell (r, c) set to v; the board itself is left unchanged."""
    return with_cells(board, (r, c, v))


def replace(board, old, new):
    """A copy of the board with every cell equal to old turned into new."""
    return [[new if x == old else x for x in row] for row in board]


def check_generated_puzzles(
    name: str,
    size: int,
    *,
    num_clues=None,
    has_side_info: bool = True,
    official_as_strings: bool = True,
    prompt_text: str | None = None,
) -> None:
    """Three generated puzzles through the public dataset path: the side info reaches its column (non-empty, or `{}`
    when has_side_info is False), the puzzle has one solution, the solution passes `units` and `official_check`
    (given strs(solution) unless official_as_strings is False), the Perception/Answer text verifies in both modes,
    the R-SFT trace ends at the solution, and the prompt holds prompt_text (default: the first line of the game's
    render_extra)."""
    extra = {} if num_clues is None else {"num_clues": num_clues}
    cfg = VGRPConfig(games=[name], sizes=[size], seed=3, **extra)
    rows = make_vgrp_dataset(cfg, n=3, split="train")
    game = get_game(name)
    for row in rows:
        side = json.loads(row["side_info"])
        if has_side_info:
            assert side, "the game's side info must reach the side_info column"
        else:
            assert side == {}  # everything is on the board
        init, solution = json.loads(row["init_board"]), json.loads(row["solution"])
        assert count_solutions(game, init, side) == 1
        assert all(game.units(solution, side))
        assert game.official_check(strs(solution) if official_as_strings else solution, side)
        puzzle = Puzzle.from_row(row["game"], row["init_board"], row["side_info"])
        text = board_output(init, solution)
        for mode in ("official", "strict"):
            assert verify(text, puzzle, mode=mode).answer_ok, (mode, text)
        completion = to_r_sft(row, max_steps=100_000)["completion"][0]["content"]
        assert completion.endswith(f"Answer\n{grid_text(solution)}")
        expected = game.render_extra(init, side).splitlines()[0] if prompt_text is None else prompt_text
        assert expected in row["prompt"][0]["content"]
