"""VGRP-Bench sum and shading games (Kakuro, Aquarium, Hitori, Nonogram): hand-solved puzzles against
`official_check` and `units`, one deliberate violation per rule, the official checker's quirks, and generated puzzles
through the public dataset path (unique, verified in both modes, R-SFT trace ending at the solution)."""

from __future__ import annotations

import json

import pytest
from vgrp_boards import board_output, check_generated_puzzles, strs, with_cells

from trl_ext_plugins.vgrp.games import get_game
from trl_ext_plugins.vgrp.puzzles import count_solutions
from trl_ext_plugins.vgrp.verify import Puzzle, verify


def grid(text: str):
    """'ss.e' rows -> a board of 's'/'e' cells."""
    return [list(row) for row in text.split()]


# --- Kakuro ---
# Rows: 1213 (sum 7), 3141 (9), 2424 (12), 4312 (10); columns: 1324 (10), 2143 (10), 1421 (8), 3142 (10). No two
# neighbours are equal along any row or column (checked pair by pair).
KAK = [[1, 2, 1, 3], [3, 1, 4, 1], [2, 4, 2, 4], [4, 3, 1, 2]]
KAK_SIDE = {"row": [7, 9, 12, 10], "col": [10, 10, 8, 10]}


def test_kakuro_hand_solution_and_violations():
    game = get_game("kakuro")
    assert game.official_check(strs(KAK), KAK_SIDE)
    assert game.units(KAK, KAK_SIDE) == [True] * 16  # per line: its sum, its neighbours
    # Neighbour rule alone: +1 at r1c1 and r2c2, -1 at r1c2 and r2c1 keeps every sum; rows 2113 and 2241 and column
    # 2224 now hold equal neighbours (column 1243 does not): 3 of 16 units broken.
    equal = with_cells(KAK, (0, 0, 2), (0, 1, 1), (1, 0, 2), (1, 1, 2))
    assert not game.official_check(strs(equal), KAK_SIDE)
    assert sum(game.units(equal, KAK_SIDE)) == 13
    # Sum rule alone: r1c4 3 -> 4 (row 1214, column 4142 keep distinct neighbours): row 1 and column 4 sums broken.
    more = with_cells(KAK, (0, 3, 4))
    assert not game.official_check(strs(more), KAK_SIDE)
    assert sum(game.units(more, KAK_SIDE)) == 14


def test_kakuro_official_quirks():
    game = get_game("kakuro")
    # Cells are read with int(): " 3" is 3, a letter fails the answer.
    assert game.official_check(with_cells(strs(KAK), (0, 3, " 3")), KAK_SIDE)
    assert not game.official_check(with_cells(strs(KAK), (0, 3, "x")), KAK_SIDE)
    # "0" is an empty cell: its lines must only not exceed their sums, so an all-zero answer passes.
    assert game.official_check([["0"] * 4 for _ in range(4)], KAK_SIDE)
    assert game.official_check(with_cells(strs(KAK), (0, 0, "0")), KAK_SIDE)
    assert not any(game.units([[0] * 4 for _ in range(4)], KAK_SIDE))
    # No range test: rows 1 2 -1 5 and 3 1 6 -1 keep the sums 7 and 9, columns 3 (-1+6+2+1 = 8) and 4 (5-1+4+2 = 10).
    wild = with_cells(KAK, (0, 2, -1), (0, 3, 5), (1, 2, 6), (1, 3, -1))
    assert game.official_check(strs(wild), KAK_SIDE)
    assert not all(game.units(wild, KAK_SIDE))
    # A sum list shorter than the grid leaves the other lines unchecked. r3c4 4 -> 3 (row 3 2423, column 4 3132 keep
    # distinct neighbours) breaks the sums of row 3 and column 4 only; with the sums of row 1 alone it passes.
    low = strs(with_cells(KAK, (2, 3, 3)))
    assert not game.official_check(low, KAK_SIDE)
    assert game.official_check(low, {"row": [7], "col": []})


# --- Aquarium ---
# Aquariums:  A A B B    A = r1c1 r1c2 r2c1, B = r1c3 r1c4 r2c4 r3c4 r4c4, C = r2c2 r2c3 r3c2 r3c3,
#             A C C B    D = r3c1 r4c1 r4c2 r4c3.
#             D C C B    Levels: A water in row 2, B in rows 3-4, C full, D in row 4.
#             D D D B
# Water per row: 0, 3 (c1-c3), 3 (c2-c4), 4; per column: 2 (rows 2, 4), 3, 3, 2 (rows 3, 4).
AQUARIUMS = [
    [[0, 0], [0, 1], [1, 0]],
    [[0, 2], [0, 3], [1, 3], [2, 3], [3, 3]],
    [[1, 1], [1, 2], [2, 1], [2, 2]],
    [[2, 0], [3, 0], [3, 1], [3, 2]],
]
AQ = grid("eeee ssse esss ssss")
AQ_SIDE = {"aquariums": AQUARIUMS, "row_counts": [0, 3, 3, 4], "col_counts": [2, 3, 3, 2]}
# The rectangle r2c1, r2c4, r3c1, r3c4 flipped: counts unchanged, A dry, D level from row 3 (fine), B has water in row
# 2 above a dry r3c4: only B's level is broken.
AQ_FLIP = grid("eeee esss ssse ssss")


def test_aquarium_hand_solution_and_violations():
    game = get_game("aquarium")
    assert game.official_check(AQ, AQ_SIDE)
    assert game.units(AQ, AQ_SIDE) == [True] * 12  # 8 counts + 4 aquariums
    assert not game.official_check(AQ_FLIP, AQ_SIDE)
    assert game.units(AQ_FLIP, AQ_SIDE) == [True] * 9 + [False] + [True] * 2
    # Count rule alone: D filled from row 3 (a level fill) puts 4 in row 3 and 3 in column 1.
    more = with_cells(AQ, (2, 0, "s"))
    assert not game.official_check(more, AQ_SIDE)
    assert sum(game.units(more, AQ_SIDE)) == 10


def test_aquarium_official_quirks():
    game = get_game("aquarium")
    # Only a cell equal to "e" is dry for the level rule: "x" below B's water passes (it is no water for the counts
    # either, and the counts still hold); "0" is turned into "e" and fails.
    assert game.official_check(with_cells(AQ_FLIP, (2, 3, "x")), AQ_SIDE)
    assert not game.official_check(with_cells(AQ_FLIP, (2, 3, "0")), AQ_SIDE)
    assert not all(game.units(with_cells(AQ_FLIP, (2, 3, "x")), AQ_SIDE))
    # "0" for every dry cell passes; strict reads "e"/"0" as 0, which the units accept as dry.
    assert game.official_check([["0" if x == "e" else x for x in row] for row in AQ], AQ_SIDE)
    assert all(game.units([[0 if x == "e" else x for x in row] for row in AQ], AQ_SIDE))


# --- Hitori ---
# Shaded: r1c2, r2c4, r3c1, r4c3 (no two touch). Unshaded: r1c1-r2c1-r2c2-r2c3-r1c3-r1c4, r2c2-r3c2-r3c3-r3c4-r4c4,
# r3c2-r4c2-r4c1: one area. The unshaded numbers are the Latin square (r + c) % 4 + 1; each shaded cell repeats a
# number of its row: r1c2 = 3 (as r1c3), r2c4 = 2 (as r2c1), r3c1 = 4 (as r3c2), r4c3 = 1 (as r4c2).
NUMBERS = [[1, 3, 3, 4], [2, 3, 4, 2], [4, 4, 1, 2], [4, 1, 1, 3]]
HIT = grid("esee eees seee eese")
HIT_SIDE = {"numbers": NUMBERS}
LATIN = {"numbers": [[(r + c) % 4 + 1 for c in range(4)] for r in range(4)]}


def test_hitori_hand_solution_and_violations():
    game = get_game("hitori")
    assert game.official_check(HIT, HIT_SIDE)
    assert game.units(HIT, HIT_SIDE) == [True] * 17  # 8 no-repeat lines, 8 no-touch lines, 1 connected area
    # No-repeat rule alone: r1c2 unshaded repeats 3 in row 1 (r1c3) and column 2 (r2c2).
    repeat = with_cells(HIT, (0, 1, "e"))
    assert not game.official_check(repeat, HIT_SIDE)
    assert sum(game.units(repeat, HIT_SIDE)) == 15
    # Touching rule alone: r1c1 shaded next to r1c2 (the rest stays connected through r2c1).
    touch = with_cells(HIT, (0, 0, "s"))
    assert not game.official_check(touch, HIT_SIDE)
    assert game.units(touch, HIT_SIDE) == [True] * 8 + [False] + [True] * 8
    # Connected rule alone (numbers without repeats): r1c2 and r2c1 shaded cut off r1c1.
    cut = grid("esee seee eeee eeee")
    assert not game.official_check(cut, LATIN)
    assert game.units(cut, LATIN) == [True] * 16 + [False]


def test_hitori_official_quirks():
    game = get_game("hitori")
    # Only "s" is shaded for the touching rule and only "e" (or "0") is unshaded: "x" next to a shaded cell passes.
    assert game.official_check(with_cells(HIT, (0, 0, "x")), HIT_SIDE)
    assert not all(game.units(with_cells(HIT, (0, 0, "x")), HIT_SIDE))
    assert game.official_check([["0" if x == "e" else x for x in row] for row in HIT], HIT_SIDE)
    # With no unshaded cell at all the area check fails ("x" everywhere repeats and touches nothing).
    assert not game.official_check([["x"] * 4 for _ in range(4)], HIT_SIDE)


def test_an_unshaded_given_binds_the_answer():
    """The official Hitori compares its whole initial shading board (skipping only 0), so shading an 'e' given fails
    there; the official check of the other shading games skips 'e' givens, and strict mode (ours) holds every
    shading game to them. With repeat-free numbers, r1c1 shaded is otherwise as valid as the all-unshaded board."""
    init = with_cells([[0] * 4 for _ in range(4)], (0, 0, "e"))
    puzzle = Puzzle.from_row("hitori", json.dumps(init), json.dumps(LATIN))
    answer = with_cells(grid("eeee eeee eeee eeee"), (0, 0, "s"))
    text = board_output(init, answer)
    assert not verify(text, puzzle, mode="official").answer_ok
    assert not verify(text, puzzle, mode="strict").answer_ok
    kept = board_output(init, grid("eeee eeee eeee eeee"))
    assert verify(kept, puzzle, mode="official").answer_ok and verify(kept, puzzle, mode="strict").answer_ok


# --- Nonogram ---
# Rows: sses -> [2, 1], eeee -> [0], ssse -> [3], eses -> [1, 1]; columns: sese -> [1, 1], sess -> [1, 2],
# eese -> [1], sees -> [1, 1]. Unique from the clues alone: row 1 fits 4 cells one way, row 2 is empty, column 2's
# run of 2 must be rows 3-4, so row 4 is eses, column 1 then needs r3c1, so row 3 is ssse.
NON = grid("sses eeee ssse eses")
NON_SIDE = {"row_hints": [[2, 1], [0], [3], [1, 1]], "col_hints": [[1, 1], [1, 2], [1], [1, 1]]}


def test_nonogram_hand_solution_and_violations():
    game = get_game("nonogram")
    assert game.official_check(NON, NON_SIDE)
    assert game.units(NON, NON_SIDE) == [True] * 8
    assert count_solutions(game, [[0] * 4 for _ in range(4)], NON_SIDE) == 1
    # An extra shaded cell: row 2 is [1] (clue [0]) and column 1 ssse is [3] (clue [1, 1]).
    extra = with_cells(NON, (1, 0, "s"))
    assert not game.official_check(extra, NON_SIDE)
    assert sum(game.units(extra, NON_SIDE)) == 6
    # Runs in the wrong order: row 1 sess is [1, 2]; columns 2 (eess: [2]) and 3 (sese: [1, 1]) break too.
    order = with_cells(NON, (0, 1, "e"), (0, 2, "s"))
    assert not game.official_check(order, NON_SIDE)
    assert sum(game.units(order, NON_SIDE)) == 5


def test_nonogram_official_quirks():
    game = get_game("nonogram")
    # Only "e" ends a run: "s x s e" is one run of 2. Row clues [2], [0], [0], [0]; columns [1], [0], [1], [0].
    side = {"row_hints": [[2], [0], [0], [0]], "col_hints": [[1], [0], [1], [0]]}
    board = with_cells(grid("eeee eeee eeee eeee"), (0, 0, "s"), (0, 1, "x"), (0, 2, "s"))
    assert game.official_check(board, side)
    assert not all(game.units(board, side))
    # "0" and "*" are turned into "e".
    assert game.official_check([["*" if x == "e" else x for x in row] for row in NON], NON_SIDE)
    assert game.official_check([["0" if x == "e" else x for x in row] for row in NON], NON_SIDE)


# --- generated puzzles through the public path ---

GAMES = ["kakuro", "aquarium", "hitori", "nonogram"]


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("size", [4, 5])
def test_generated_puzzles_unique_verified_and_traced(name, size):
    check_generated_puzzles(name, size)


@pytest.mark.parametrize(
    ("name", "bad", "good"), [("kakuro", 2, 3), ("aquarium", 3, 4), ("hitori", 7, 6), ("nonogram", 9, 8)]
)
def test_sizes(name, bad, good):
    game = get_game(name)
    game.check_size(good)
    with pytest.raises(ValueError):
        game.check_size(bad)
