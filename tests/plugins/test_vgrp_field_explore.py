"""VGRP-Bench Field Explore: a hand-solved field against `official_check` and `units`, one deliberate violation per
rule, the official checker's quirks (it never checks the counts), and generated puzzles through the public dataset
path (unique, verified in both modes, R-SFT trace ending at the solution)."""

from __future__ import annotations

import pytest
from vgrp_boards import board_output, check_generated_puzzles, replace, with_cell

from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.games import get_game
from trl_ext_plugins.vgrp.puzzles import count_solutions
from trl_ext_plugins.vgrp.verify import Puzzle, partial_score, verify

# Mines at r1c1, r2c3, r4c4. Counts by hand (neighbours include diagonals):
#   r1: c2 touches r1c1, r2c3 -> 2; c3 touches r2c3 -> 1; c4 touches r2c3 -> 1
#   r2: c1 touches r1c1 -> 1; c2 touches r1c1, r2c3 -> 2; c4 touches r2c3 -> 1
#   r3: c1 none -> e; c2 touches r2c3 -> 1; c3 touches r2c3, r4c4 -> 2; c4 touches r2c3, r4c4 -> 2
#   r4: c1, c2 none -> e; c3 touches r4c4 -> 1
# 13 cells are not mines: 13 units.
FIELD = [["s", 2, 1, 1], [1, 2, "s", 1], ["e", 1, 2, 2], ["e", "e", 1, "s"]]
# r1c1, r1c4 and r4c4 hidden. Unique by hand: r2c1 = 1 sees only r1c1 hidden among its neighbours, so r1c1 is a mine;
# r4c3 = 1 sees only r4c4 hidden, so r4c4 is a mine; r1c3 = 1 already touches the mine r2c3, so r1c4 is safe, and
# its one neighbouring mine (r2c3) makes it 1.
INIT = [[0, 2, 1, 0], [1, 2, "s", 1], ["e", 1, 2, 2], ["e", "e", 1, 0]]


def test_hand_field_and_violations():
    game = get_game("fieldexplore")
    assert game.official_check(FIELD, {})
    assert game.units(FIELD, {}) == [True] * 13
    assert all(game.units(replace(FIELD, "e", 0), {}))  # strict reads e and 0 as the integer 0
    # Count rule: r1c2 written 3 next to its 2 mines: its unit breaks.
    assert sum(game.units(with_cell(FIELD, 0, 1, 3), {})) == 13 - 1
    # A blank that touches a mine: r4c3 written e next to r4c4.
    assert sum(game.units(with_cell(FIELD, 3, 2, "e"), {})) == 13 - 1
    # A missing mine: r4c4 written e (right for itself, no mine around it) leaves r3c3 = 2, r3c4 = 2 and r4c3 = 1
    # one short: 14 units, 3 broken.
    assert sum(game.units(with_cell(FIELD, 3, 3, "e"), {})) == 14 - 3
    # An extra mine: r3c1 made a mine overcounts r2c1, r2c2, r3c2, r4c1 and r4c2: 12 units, 5 broken.
    extra = with_cell(FIELD, 2, 0, "s")
    assert game.units(extra, {}).count(False) == 5 and len(game.units(extra, {})) == 12
    # A value of no kind breaks its own unit.
    assert sum(game.units(with_cell(FIELD, 2, 0, "x"), {})) == 13 - 1
    # The solver finds the hand-deduced field and only it.
    assert count_solutions(game, INIT, {}) == 1


def test_official_checker_quirks():
    game = get_game("fieldexplore")
    puzzle = Puzzle(game, INIT, {})
    # The official check_answer returns True after its givens loop: the counts are never checked, so wrong counts,
    # junk values and a copy of the initial board (hidden cells left 0) all pass; strict checks the counts. (The
    # hidden r1c4 written 3 beside its one mine; the hidden r1c1 written x.)
    for answer in (with_cell(FIELD, 0, 3, 3), with_cell(FIELD, 0, 0, "x"), INIT):
        assert game.official_check(answer, {})
        text = board_output(INIT, answer)
        assert verify(text, puzzle, "official").answer_ok
        assert not verify(text, puzzle, "strict").answer_ok
    # A given mine must stay a mine in both modes.
    lost_mine = board_output(INIT, with_cell(FIELD, 1, 2, 1))
    assert not verify(lost_mine, puzzle, "official").answer_ok and not verify(lost_mine, puzzle, "strict").answer_ok
    # A given blank (the official int 0) is not enforced by the official code, not even against a mine.
    mined_blank = board_output(INIT, with_cell(FIELD, 2, 0, "s"))
    assert verify(mined_blank, puzzle, "official").answer_ok
    assert not verify(mined_blank, puzzle, "strict").answer_ok
    # Deviation (shared givens check): a given number must be copied; the official code only forbids a mine there.
    dropped = board_output(INIT, with_cell(FIELD, 0, 1, "e"))
    assert not verify(dropped, puzzle, "official").answer_ok
    # A revealed blank is perceived as e: 0 is the hidden cell in the official form, strict reads both as empty.
    blank_as_zero = board_output(replace(INIT, "e", 0), FIELD)
    assert not verify(blank_as_zero, puzzle, "official").perception_ok
    assert verify(blank_as_zero, puzzle, "strict").answer_ok


def test_partial_score_reads_counts_and_givens():
    puzzle = Puzzle(get_game("fieldexplore"), INIT, {})
    # One wrong count at the hidden r1c4: 12 of the 13 units.
    assert partial_score(with_cell(FIELD, 0, 3, 2), puzzle) == pytest.approx(12 / 13)
    # Everything a mine: the 12 given numbers and blanks turn invalid, which leaves 12 units, all broken.
    assert partial_score([["s"] * 4] * 4, puzzle) == 0.0
    assert partial_score(replace(FIELD, "e", 0), puzzle) == 1.0


@pytest.mark.parametrize("size", [4, 5, 6])
def test_generated_puzzles_unique_verified_and_traced(size):
    check_generated_puzzles(
        "fieldexplore", size, has_side_info=False, official_as_strings=False, prompt_text="s is a revealed mine"
    )


def test_sizes_outside_the_supported_range_are_refused():
    for bad in (3, 8):
        with pytest.raises(ValueError):
            VGRPConfig(games=["fieldexplore"], sizes=[bad])
