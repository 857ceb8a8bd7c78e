"""VGRP-Bench placement games (Star Battle, Light Up, Trees&Tents, Battleships): hand-solved puzzles against `official_check` and
`units`, one deliberate violation per rule, the official checker's quirks, and generated puzzles through the public
dataset path (unique, verified in both modes, R-SFT trace ending at the solution)."""

from __future__ import annotations

import pytest
from vgrp_boards import check_generated_puzzles, replace, with_cell

from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.games import get_game
from trl_ext_plugins.vgrp.verify import Puzzle, partial_score

# --- Star Battle ---
# Stars at r1c2, r2c4, r3c1, r4c3: one per row and column (columns 2, 4, 1, 3), neighbouring rows 2+ columns apart,
# so no two touch. Quadrant regions A (top left), B (top right), C, D each hold one of them.
# Units: 4 rows + 4 columns + 4 regions + 9 2x2 blocks = 21.
STARS = [["e", "s", "e", "e"], ["e", "e", "e", "s"], ["s", "e", "e", "e"], ["e", "e", "s", "e"]]
QUADRANTS = {"regions": [["A", "A", "B", "B"], ["A", "A", "B", "B"], ["C", "C", "D", "D"], ["C", "C", "D", "D"]]}
# Region A spans row 1 and r2c4: stars r1c2 and r2c4 share it, region B (r2c1-r2c3) has none.
BENT = {"regions": [["A", "A", "A", "A"], ["B", "B", "B", "A"], ["C", "C", "D", "D"], ["C", "C", "D", "D"]]}
ROW_REGIONS = {"regions": [["A"] * 4, ["B"] * 4, ["C"] * 4, ["D"] * 4]}
# Columns 2, 1, 4, 3: one star per row, column and row region, but r1c2/r2c1 and r3c4/r4c3 touch diagonally, in the
# 2x2 blocks at r1c1 and r3c3.
TOUCHING = [["e", "s", "e", "e"], ["s", "e", "e", "e"], ["e", "e", "e", "s"], ["e", "e", "s", "e"]]


def test_starbattle_hand_solution_and_violations():
    game = get_game("starbattle")
    assert game.official_check(STARS, QUADRANTS) and game.official_check(STARS, ROW_REGIONS)
    assert game.units(STARS, QUADRANTS) == [True] * 21
    # Row / column / region count, too many: a star added at r1c4 puts two in row 1, column 4 and region B and
    # touches r2c4 (block at r1c3): 4 units broken.
    extra = with_cell(STARS, 0, 3, "s")
    assert not game.official_check(extra, QUADRANTS)
    assert sum(game.units(extra, QUADRANTS)) == 21 - 4
    # Too few: r1c2 emptied leaves row 1, column 2 and region A without a star: 3 broken.
    missing = with_cell(STARS, 0, 1, "e")
    assert not game.official_check(missing, QUADRANTS)
    assert sum(game.units(missing, QUADRANTS)) == 21 - 3
    # Region rule alone: rows and columns fine, region A two stars, region B none.
    assert not game.official_check(STARS, BENT)
    assert sum(game.units(STARS, BENT)) == 21 - 2
    # Touching rule alone: two 2x2 blocks broken.
    assert not game.official_check(TOUCHING, ROW_REGIONS)
    assert sum(game.units(TOUCHING, ROW_REGIONS)) == 21 - 2


def test_starbattle_official_quirks():
    game = get_game("starbattle")
    # Only cells equal to "s" are stars: "0" (turned into "e") and any other string are empty cells.
    assert game.official_check(replace(STARS, "e", "0"), QUADRANTS)
    assert game.official_check(replace(STARS, "e", "x"), QUADRANTS)
    assert all(game.units(replace(STARS, "e", 0), QUADRANTS))  # strict reads e and 0 as the integer 0
    assert not all(game.units(replace(STARS, "e", "x"), QUADRANTS))
    # " s" is no star, so row 1 has none.
    assert not game.official_check(with_cell(STARS, 0, 1, " s"), QUADRANTS)
    # Without regions the official check raises, which check_answer turns into False.
    assert not game.official_check(STARS, {})


# --- Light Up ---
# Walls at r2c2 (number 1) and r3c3 (number 2); bulbs r1c1, r2c4, r3c2, r4c3:
#   s e e e
#   e w e s
#   e s w e
#   e e s e
# No bulb sees another: r1c1 has row 1 and column 1 to itself; r2c4 sees r2c3 (then the wall) and column 4; r3c2 sees
# r3c1, the wall r2c2 above and r4c2 below; r4c3 sees row 4 and the wall r3c3 above. Every other cell is lit: row 1
# and column 1 by r1c1, r2c3 by r2c4, r3c4 by r2c4 (column 4), r4c1/r4c2/r4c4 by r4c3. Wall r2c2 has one bulb beside
# it (r3c2), wall r3c3 two (r3c2, r4c3).
# Units: 2 walls + 12 runs (rows: 1, 2, 2, 1; columns: 1, 2, 2, 1) + 14 non-wall cells = 28.
LIGHT = [["s", "e", "e", "e"], ["e", "w", "e", "s"], ["e", "s", "w", "e"], ["e", "e", "s", "e"]]
NUMBERS = [[-1] * 4, [-1, 1, -1, -1], [-1, -1, 2, -1], [-1] * 4]
LIGHT_SIDE = {"walls": [[1, 1], [2, 2]], "wall_numbers": NUMBERS}
PLAIN_SIDE = {"walls": [[1, 1], [2, 2]], "wall_numbers": [[-1] * 4 for _ in range(4)]}


def test_lightup_hand_solution_and_violations():
    game = get_game("lightup")
    assert game.official_check(LIGHT, LIGHT_SIDE)
    assert game.units(LIGHT, LIGHT_SIDE) == [True] * 28
    # Lighting rule: without the bulb r3c2, r3c2 is dark and both wall numbers miss a bulb: 3 units broken.
    dark = with_cell(LIGHT, 2, 1, "e")
    assert not game.official_check(dark, LIGHT_SIDE)
    assert sum(game.units(dark, LIGHT_SIDE)) == 28 - 3
    # Bulbs seeing each other: a bulb at r4c1 sees r1c1 (column 1) and r4c3 (row 4): 2 runs broken.
    seen = with_cell(LIGHT, 3, 0, "s")
    assert not game.official_check(seen, LIGHT_SIDE)
    assert sum(game.units(seen, LIGHT_SIDE)) == 28 - 2
    # Number rule: wall r2c2 marked 2 while it has one bulb beside it.
    side = {"walls": LIGHT_SIDE["walls"], "wall_numbers": with_cell(NUMBERS, 1, 1, 2)}
    assert not game.official_check(LIGHT, side)
    assert sum(game.units(LIGHT, side)) == 28 - 1
    # Walls must be written w: an "e" on the wall r2c2 breaks its unit (and, ours, the official givens rule).
    no_wall = with_cell(LIGHT, 1, 1, "e")
    assert not game.official_check(no_wall, LIGHT_SIDE)
    assert sum(game.units(no_wall, LIGHT_SIDE)) == 28 - 1


def test_lightup_official_quirks():
    game = get_game("lightup")
    # Only cells equal to "e" must be lit: with no wall numbers, an "x" for the bulb r3c2 leaves r3c2 dark and passes.
    dark_x = with_cell(LIGHT, 2, 1, "x")
    assert game.official_check(dark_x, PLAIN_SIDE)
    assert not all(game.units(dark_x, PLAIN_SIDE))
    # A "w" written on a non-wall cell blocks light: a bulb at r4c1 behind "w" at r3c1 and r4c2 sees no bulb.
    walled = with_cell(with_cell(with_cell(LIGHT, 3, 0, "s"), 2, 0, "w"), 3, 1, "w")
    assert game.official_check(walled, LIGHT_SIDE)
    assert not all(game.units(walled, LIGHT_SIDE))
    # "0" is read as "e".
    assert game.official_check(replace(LIGHT, "e", "0"), LIGHT_SIDE)
    # Without wall numbers the number rule is skipped.
    assert game.official_check(LIGHT, {"walls": LIGHT_SIDE["walls"], "wall_numbers": []})


# --- Trees&Tents ---
# Trees r1c1, r3c4, r4c2 with tents r1c2, r3c3, r4c1:
#   tr tt e  e
#   e  e  e  e
#   e  e  tt tr
#   tt tr e  e
# Tent r1c2 touches only tree r1c1, r3c3 only r3c4, r4c1 only r4c2; each tree has exactly that tent beside it; no two
# tents touch (r3c3 and r4c1 are two columns apart). Row clues 1 0 1 1, column clues 1 1 1 0.
# Units: 8 lines + 3 trees + 1 tent placement + 9 2x2 blocks = 21.
TENTS = [["tr", "tt", "e", "e"], ["e", "e", "e", "e"], ["e", "e", "tt", "tr"], ["tt", "tr", "e", "e"]]
TENTS_SIDE = {"trees": [[0, 0], [2, 3], [3, 1]], "row_clues": [1, 0, 1, 1], "col_clues": [1, 1, 1, 0]}


def test_treesandtents_hand_solution_and_violations():
    game = get_game("treesandtents")
    assert game.official_check(TENTS, TENTS_SIDE)
    assert game.units(TENTS, TENTS_SIDE) == [True] * 21
    # Count rule: the tent of r1c1 moved to r2c1 (still beside its tree only): rows 1, 2 and columns 1, 2 miscounted.
    moved = with_cell(with_cell(TENTS, 0, 1, "e"), 1, 0, "tt")
    assert not game.official_check(moved, TENTS_SIDE)
    assert sum(game.units(moved, TENTS_SIDE)) == 21 - 4
    # Tree rule: the tent of r3c4 moved to r2c3, beside no tree: rows 2 and 3, tree r3c4, the placement unit and,
    # as r2c3 touches the tent r1c2 diagonally, the block at r1c2: 5 units broken.
    astray = with_cell(with_cell(TENTS, 2, 2, "e"), 1, 2, "tt")
    assert not game.official_check(astray, TENTS_SIDE)
    assert sum(game.units(astray, TENTS_SIDE)) == 21 - 5
    # Touching rule: the tent of r4c2 moved from r4c1 to r4c3, under the tent r3c3: columns 1 and 3 miscounted and
    # the blocks at r3c2 and r3c3 hold two tents.
    touching = with_cell(with_cell(TENTS, 3, 0, "e"), 3, 2, "tt")
    assert not game.official_check(touching, TENTS_SIDE)
    assert sum(game.units(touching, TENTS_SIDE)) == 21 - 4
    # Trees must be written tr (ours, for the official givens rule).
    no_tree = with_cell(TENTS, 0, 0, "e")
    assert not game.official_check(no_tree, TENTS_SIDE) and not all(game.units(no_tree, TENTS_SIDE))


def test_treesandtents_official_quirks():
    game = get_game("treesandtents")
    # evaluate.py reads "t" as a tent and "r" as a tree; "0" and any other string are empty cells.
    short = replace(replace(TENTS, "tt", "t"), "tr", "r")
    assert game.official_check(short, TENTS_SIDE)
    assert game.official_check(replace(TENTS, "e", "0"), TENTS_SIDE)
    assert game.official_check(replace(TENTS, "e", "x"), TENTS_SIDE)
    assert not all(game.units(replace(TENTS, "e", "x"), TENTS_SIDE))
    # Without clues the counts are not checked (the official `if not clues: return True`).
    moved = with_cell(with_cell(TENTS, 0, 1, "e"), 1, 0, "tt")
    assert game.official_check(moved, {"trees": TENTS_SIDE["trees"]})


# --- Battleships ---
# Fleet: one ship of length 2, two of length 1. Ship r1c1-r1c2, single ships r2c4 and r4c1:
#   s s e e
#   e e e s
#   e e e e
#   s e e e
# No two ship cells of different ships touch (r1c2 and r2c4 are two columns apart). Row hints 2 1 0 1, column hints
# 2 1 0 1. Units: 8 lines + 1 fleet + 9 2x2 blocks = 18.
SHIPS = [["s", "s", "e", "e"], ["e", "e", "e", "s"], ["e", "e", "e", "e"], ["s", "e", "e", "e"]]
SHIPS_SIDE = {"row_hints": [2, 1, 0, 1], "col_hints": [2, 1, 0, 1], "ships": {"2": 1, "1": 2}}


def test_battleships_hand_solution_and_violations():
    game = get_game("battleships")
    assert game.official_check(SHIPS, SHIPS_SIDE)
    assert game.units(SHIPS, SHIPS_SIDE) == [True] * 18
    # Hint rule: the ship r4c1 moved to r4c3: columns 1 and 3 miscounted.
    moved = with_cell(with_cell(SHIPS, 3, 0, "e"), 3, 2, "s")
    assert not game.official_check(moved, SHIPS_SIDE)
    assert sum(game.units(moved, SHIPS_SIDE)) == 18 - 2
    # Touching rule: the ship r2c4 moved to r2c3 touches r1c2 diagonally: columns 3 and 4 miscounted, the block at
    # r1c2 and the fleet unit (read only on a board without diagonal contacts) broken.
    touching = with_cell(with_cell(SHIPS, 1, 3, "e"), 1, 2, "s")
    assert not game.official_check(touching, SHIPS_SIDE)
    assert sum(game.units(touching, SHIPS_SIDE)) == 18 - 4
    # Fleet rule: the same hints with a fleet of one 3-ship and one 1-ship (4 cells, like the board's 2 + 1 + 1).
    other_fleet = dict(SHIPS_SIDE, ships={"3": 1, "1": 1})
    assert not game.official_check(SHIPS, other_fleet)
    assert sum(game.units(SHIPS, other_fleet)) == 18 - 1
    # Ships in line merge: r1c3 added makes r1c1-r1c3 one 3-ship (and row 1, column 3 miscounted).
    assert not game.official_check(with_cell(SHIPS, 0, 2, "s"), dict(SHIPS_SIDE, row_hints=[3, 1, 0, 1]))


def test_battleships_official_quirks():
    game = get_game("battleships")
    # The answer is not converted: only cells equal to "s" are ships, "0" or "x" is water.
    assert game.official_check(replace(SHIPS, "e", "0"), SHIPS_SIDE)
    assert game.official_check(replace(SHIPS, "e", "x"), SHIPS_SIDE)
    assert not all(game.units(replace(SHIPS, "e", "x"), SHIPS_SIDE))
    assert not game.official_check(with_cell(SHIPS, 1, 3, " s"), SHIPS_SIDE)
    # Without hints the official check raises, which check_answer turns into False.
    assert not game.official_check(SHIPS, {})


# --- R_partial reads the strict answer through `units` ---


def test_partial_score_counts_units_and_survives_bad_cells():
    empty = [[0] * 4 for _ in range(4)]
    stars = Puzzle(get_game("starbattle"), empty, QUADRANTS)
    # The strict parser reads "e" as 0; the extra star at r1c4 breaks 4 of the 21 units (see above).
    assert partial_score(replace(with_cell(STARS, 0, 3, "s"), "e", 0), stars) == pytest.approx(17 / 21)
    # A given contradicted: with r1c2 given as a star, an answer with "e" there breaks its row, column and region
    # (the cell counts as invalid), as in the hand count for the emptied star: 18 of 21.
    given = Puzzle(get_game("starbattle"), with_cell(empty, 0, 1, "s"), QUADRANTS)
    assert partial_score(replace(with_cell(STARS, 0, 1, "e"), "e", 0), given) == pytest.approx(18 / 21)
    # Values of no game: every unit that reads them breaks, nothing raises.
    junk = [["x", 7, "s", "w"]] * 4
    sides = (("starbattle", QUADRANTS), ("lightup", LIGHT_SIDE), ("treesandtents", TENTS_SIDE))
    for name, side in (*sides, ("battleships", SHIPS_SIDE)):
        assert 0.0 <= partial_score(junk, Puzzle(get_game(name), empty, side)) < 1.0


# --- generated puzzles through the public path ---

GAMES = ["starbattle", "lightup", "treesandtents", "battleships"]


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("size", [4, 5])
def test_generated_puzzles_unique_verified_and_traced(name, size):
    # (every cell of these games is a string, so the helper's official_check(strs(solution)) is the same check)
    check_generated_puzzles(name, size)


def test_sizes_outside_the_supported_range_are_refused():
    for name, bad in (("starbattle", 3), ("starbattle", 8), ("lightup", 8), ("treesandtents", 9), ("battleships", 8)):
        with pytest.raises(ValueError):
            VGRPConfig(games=[name], sizes=[bad])
