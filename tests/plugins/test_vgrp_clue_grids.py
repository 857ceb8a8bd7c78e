"""VGRP-Bench clue-grid games (Skyscraper, Renzoku, Kakurasu, Thermometers): hand-solved puzzles against
`official_check` and `units`, one deliberate violation per rule, the official checker's quirks, and generated puzzles
through the public dataset path (unique, verified in both modes, R-SFT trace ending at the solution)."""

from __future__ import annotations

import pytest
from vgrp_boards import check_generated_puzzles, strs, with_cell

from trl_ext_plugins.vgrp.games import get_game


def swap_rows(board, a, b):
    out = [list(row) for row in board]
    out[a], out[b] = out[b], out[a]
    return out


# --- Skyscraper ---
# S[r][c] = (r + c) % 4 + 1, a symmetric Latin square. Seen from the left: row 0 1234 -> 4, row 1 2341 -> 3 (2,3,4),
# row 2 3412 -> 2 (3,4), row 3 4123 -> 1. From the right: 4321 -> 1, 1432 -> 2 (1,4), 2143 -> 2 (2,4), 3214 -> 2
# (3,4). Columns equal rows (symmetric), so top = left and bottom = right.
SKY = [[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]]
SKY_SIDE = {"top": [4, 3, 2, 1], "bottom": [1, 2, 2, 2], "left": [4, 3, 2, 1], "right": [1, 2, 2, 2]}


def test_skyscraper_hand_solution_and_violations():
    game = get_game("skyscraper")
    assert game.official_check(strs(SKY), SKY_SIDE)
    assert all(game.units(SKY, SKY_SIDE)) and len(game.units(SKY, SKY_SIDE)) == 8 + 16
    # Latin rule: a repeated 2 in row 0 and column 0.
    bad = with_cell(SKY, 0, 0, 2)
    assert not game.official_check(strs(bad), SKY_SIDE) and not all(game.units(bad, SKY_SIDE))
    # View rule: rows 0 and 1 swapped is still Latin. Broken clues, by hand: left/right of rows 0 and 1 (4), top of
    # columns 0 (2134 -> 3), 1 (3241 -> 2), 2 (4312 -> 1), 3 (1423 -> 2) and bottom of column 2 (2134 -> 3): 9 of 24.
    swapped = swap_rows(SKY, 0, 1)
    assert not game.official_check(strs(swapped), SKY_SIDE)
    units = game.units(swapped, SKY_SIDE)
    assert all(units[:8]) and sum(units) == 24 - 9


def test_skyscraper_official_quirks():
    game = get_game("skyscraper")
    # Heights are read with int() (" 4" is 4) and there is no range test: a 5 in place of the 4 at r1c4 keeps every
    # view (row 1: 1235 -> 4 and 5 -> 1; column 4: 5123 -> 1 and 3215 -> 2) and repeats nothing.
    assert game.official_check(strs(with_cell(SKY, 0, 3, " 4")), SKY_SIDE)
    five = with_cell(SKY, 0, 3, 5)
    assert game.official_check(strs(five), SKY_SIDE)
    assert not all(game.units(five, SKY_SIDE))
    # A line without a clue is never read as heights: with no clues at all, distinct letters pass.
    no_clues = {key: [0, 0, 0, 0] for key in ("top", "bottom", "left", "right")}
    letters = [["a", "b", "c", "d"], ["b", "c", "d", "a"], ["c", "d", "a", "b"], ["d", "a", "b", "c"]]
    assert game.official_check(letters, no_clues)
    # With a clue on the line, a letter fails (int() raises, which the official check_answer turns into False).
    assert not game.official_check(letters, SKY_SIDE)


# --- Renzoku ---
# Latin square; every consecutive neighbour pair carries a dot. Rows: 1234 -> 111, 2143 -> 1.1 (1-4 no), 3412 -> 1.1,
# 4321 -> 111. Between rows 0/1: 1-2, 2-1, 3-4, 4-3 all dots; rows 1/2: 2-3 dot, 1-4 no, 4-1 no, 3-2 dot; rows 2/3:
# 3-4, 4-3, 1-2, 2-1 all dots. 20 dots.
REN = [[1, 2, 3, 4], [2, 1, 4, 3], [3, 4, 1, 2], [4, 3, 2, 1]]
REN_SIDE = {
    "row": [["1", "1", "1"], ["1", "0", "1"], ["1", "0", "1"], ["1", "1", "1"]],
    "col": [["1", "1", "1", "1"], ["1", "0", "0", "1"], ["1", "1", "1", "1"]],
}
# Columns 2 and 3 swapped: still Latin; broken dots by hand: row 0 2-4, row 3 3-1, rows 1/2 column 4 (4-1): 3 of 20.
REN_SWAPPED = [[1, 2, 4, 3], [2, 1, 3, 4], [3, 4, 2, 1], [4, 3, 1, 2]]


def test_renzoku_hand_solution_and_violations():
    game = get_game("renzoku")
    assert game.official_check(strs(REN), REN_SIDE)
    assert all(game.units(REN, REN_SIDE)) and len(game.units(REN, REN_SIDE)) == 8 + 20
    bad = with_cell(REN, 0, 0, 2)  # repeats 2 in row 0 and column 0
    assert not game.official_check(strs(bad), REN_SIDE) and not all(game.units(bad, REN_SIDE))
    assert not game.official_check(strs(REN_SWAPPED), REN_SIDE)
    units = game.units(REN_SWAPPED, REN_SIDE)
    assert all(units[:8]) and sum(units) == 28 - 3


def test_renzoku_official_quirks():
    game = get_game("renzoku")
    # An answer "0" reads as an empty cell, so the dots next to it are skipped (and it repeats nothing).
    zero = with_cell(strs(REN), 0, 0, "0")
    assert game.official_check(zero, REN_SIDE)
    assert not all(game.units(with_cell(REN, 0, 0, 0), REN_SIDE))
    # Only the string "1" is a dot: integer hints are ignored.
    int_hints = {key: [[int(h) for h in row] for row in rows] for key, rows in REN_SIDE.items()}
    assert game.official_check(strs(REN_SWAPPED), int_hints)
    # A "row" list with fewer than n rows means no row hints at all (the column hints still count).
    short = {"row": REN_SIDE["row"][:3], "col": [["0"] * 4 for _ in range(3)]}
    assert game.official_check(strs(REN_SWAPPED), short)
    # Every cell is read with int(): a letter fails even where no dot is; " 2" passes.
    assert not game.official_check(with_cell(strs(REN), 1, 2, "x"), {"row": [], "col": []})
    assert game.official_check(with_cell(strs(REN), 0, 1, " 2"), REN_SIDE)


# --- Kakurasu ---
# Row clues: r1 s... -> 1; r2 shades columns 2, 4 -> 6; r3 columns 1, 2, 3 -> 6; r4 column 3 -> 3. Column clues:
# c1 rows 1, 3 -> 4; c2 rows 2, 3 -> 5; c3 rows 3, 4 -> 7; c4 row 2 -> 2.
KAK = [["s", "e", "e", "e"], ["e", "s", "e", "s"], ["s", "s", "s", "e"], ["e", "e", "s", "e"]]
KAK_SIDE = {"row_clues": [1, 6, 6, 3], "col_clues": [4, 5, 7, 2]}


def test_kakurasu_hand_solution_and_violation():
    game = get_game("kakurasu")
    assert game.official_check(KAK, KAK_SIDE)
    assert game.units(KAK, KAK_SIDE) == [True] * 8
    bad = with_cell(KAK, 0, 0, "e")  # row 1 sums to 0 (not 1), column 1 to 3 (not 4): 2 of 8 units broken
    assert not game.official_check(bad, KAK_SIDE)
    assert sum(game.units(bad, KAK_SIDE)) == 6


def test_kakurasu_official_quirks():
    game = get_game("kakurasu")
    # Only cells equal to "s" are shaded: "0" (turned into "e") and any other string read as unshaded.
    as_zero = [["0" if x == "e" else x for x in row] for row in KAK]
    as_x = [["x" if x == "e" else x for x in row] for row in KAK]
    assert game.official_check(as_zero, KAK_SIDE) and game.official_check(as_x, KAK_SIDE)
    assert all(game.units([[0 if x == "e" else x for x in row] for row in KAK], KAK_SIDE))  # strict reads e as 0
    assert not all(game.units(as_x, KAK_SIDE))
    # " s" is not shaded, so the sums fail.
    assert not game.official_check(with_cell(KAK, 0, 0, " s"), KAK_SIDE)


# --- Thermometers ---
# Thermometers (bulb first): T1 r1c1-r1c3, T2 r1c4 down to r4c4, T3 r2c1-r3c1, T4 r2c2-r2c3, T5 r4c1-r4c3, T6 r3c3 then
# r3c2; they cover the grid. Fill levels 2, 1, 0, 2, 1, 1. Rows: sseS -> 3, essE -> 2, eese -> 1, seee -> 1;
# columns: c1 s..s -> 2, c2 ss -> 2, c3 r2, r3 -> 2, c4 r1 -> 1.
THERMS = [
    [[0, 0], [0, 1], [0, 2]],
    [[0, 3], [1, 3], [2, 3], [3, 3]],
    [[1, 0], [2, 0]],
    [[1, 1], [1, 2]],
    [[3, 0], [3, 1], [3, 2]],
    [[2, 2], [2, 1]],
]
THERMO = [["s", "s", "e", "s"], ["e", "s", "s", "e"], ["e", "e", "s", "e"], ["s", "e", "e", "e"]]
THERMO_SIDE = {"thermometers": THERMS, "row_counts": [3, 2, 1, 1], "col_counts": [2, 2, 2, 1]}
# The rectangle r1c2, r1c3, r3c2, r3c3 flipped: counts unchanged, T1 (s e s) and T6 (e then s) have gaps.
THERMO_GAPS = [["s", "e", "s", "s"], ["e", "s", "s", "e"], ["e", "s", "e", "e"], ["s", "e", "e", "e"]]


def test_thermometers_hand_solution_and_violations():
    game = get_game("thermometers")
    assert game.official_check(THERMO, THERMO_SIDE)
    assert game.units(THERMO, THERMO_SIDE) == [True] * 14  # 8 counts + 6 thermometers, no cell outside
    # Fill rule: 2 of the 14 units broken.
    assert not game.official_check(THERMO_GAPS, THERMO_SIDE)
    assert sum(game.units(THERMO_GAPS, THERMO_SIDE)) == 12
    # Count rule: T3's bulb filled (a valid fill) makes row 2 and column 1 hold 3 each.
    more = with_cell(THERMO, 1, 0, "s")
    assert not game.official_check(more, THERMO_SIDE)
    assert sum(game.units(more, THERMO_SIDE)) == 12
    # Outside rule: without T3, r2c1 and r3c1 lie outside every thermometer; the solution still fits, filling r2c1
    # does not (and breaks the row 2 / column 1 counts too).
    side = dict(THERMO_SIDE, thermometers=[t for k, t in enumerate(THERMS) if k != 2])
    assert game.official_check(THERMO, side) and all(game.units(THERMO, side))
    assert not game.official_check(more, side)
    assert game.units(more, side)[-1] is False


def test_thermometers_official_quirks():
    game = get_game("thermometers")
    # Only "e" ends a fill: with "0" in the gaps the flipped rectangle passes (counts unchanged).
    zero_gaps = with_cell(with_cell(THERMO_GAPS, 0, 1, "0"), 2, 2, "0")
    assert game.official_check(zero_gaps, THERMO_SIDE)
    assert not all(game.units(with_cell(with_cell(THERMO_GAPS, 0, 1, 0), 2, 2, 0), THERMO_SIDE))
    # No value test: "x" for every unshaded cell passes.
    as_x = [["x" if x == "e" else x for x in row] for row in THERMO]
    assert game.official_check(as_x, THERMO_SIDE) and not all(game.units(as_x, THERMO_SIDE))


# --- generated puzzles through the public path ---

GAMES = ["skyscraper", "renzoku", "kakurasu", "thermometers"]


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("size", [4, 5])
def test_generated_puzzles_unique_verified_and_traced(name, size):
    check_generated_puzzles(name, size, num_clues=[0, 4])
