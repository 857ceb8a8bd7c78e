"""VGRP Sudoku variants (Odd-Even, Jigsaw, Killer, Colored): hand-checked boards against `units` and
`official_check`, generated puzzles through `make_vgrp_dataset` against checkers written here, and the official
checker's quirks (int conversion, 0 as empty, no value range, Jigsaw regions never checked)."""

from __future__ import annotations

import json
import math

import pytest
from vgrp_boards import board_output, grid_text, strs, with_cell

from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.data import make_vgrp_dataset
from trl_ext_plugins.vgrp.games import get_game
from trl_ext_plugins.vgrp.puzzles import EMPTY, count_solutions
from trl_ext_plugins.vgrp.transforms import to_r_sft
from trl_ext_plugins.vgrp.verify import Puzzle, verify


def puzzle(game: str, init, side) -> Puzzle:
    return Puzzle.from_row(game, json.dumps(init), json.dumps(side))


def empty_board(n: int):
    return [[0] * n for _ in range(n)]


# --- hand-made boards ---

# The card's 4x4 Sudoku: rows, columns (1324, 2413, 3142, 4231) and boxes (1234, 3412, 2143, 4321) checked by hand.
S = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
# S with 1 and 2 swapped everywhere: still a Sudoku (a relabelling), but every 1/2 cell changes parity.
S_12 = [[2, 1, 3, 4], [3, 4, 2, 1], [1, 2, 4, 3], [4, 3, 1, 2]]
# Parity of S by hand ('w' even, 'b' odd).
S_TYPES = [list("bwbw"), list("bwbw"), list("wbwb"), list("wbwb")]

# Jigsaw regions (connected, 4 cells each) and a solution worked out by hand:
#   A A A B      region A = r1c1 r1c2 r1c3 r2c2   (1-based)
#   C A B B      region B = r1c4 r2c3 r2c4 r3c4
#   C C D B      region C = r2c1 r3c1 r3c2 r4c1
#   C D D D      region D = r3c3 r4c2 r4c3 r4c4
REGIONS = [[0, 0, 0, 1], [2, 0, 1, 1], [2, 2, 3, 1], [2, 3, 3, 3]]
# Row 1 = 1234 gives r2c2 = 4 (region A); row 2 = 2413; columns then force row 3 = 3142 and row 4 = 4321.
# Rows, columns (1234, 2413, 3142, 4321) and regions A {1,2,3,4}, B {4,1,3,2}, C {2,3,1,4}, D {4,3,2,1} all hold 1-4.
J = [[1, 2, 3, 4], [2, 4, 1, 3], [3, 1, 4, 2], [4, 3, 2, 1]]
# J with rows 2 and 3 swapped: still a Latin square, but every region repeats a number (A: 1,2,3,1).
J_SWAP = [[1, 2, 3, 4], [3, 1, 4, 2], [2, 4, 1, 3], [4, 3, 2, 1]]

# Killer cages on S (cells 0-based), sums by hand: a 1+2, b 3+4, c 3+2, d 4+1, e 2+3, f 1+3, g 4+2, h 4, i 1.
CAGES = [
    {"cells": [[0, 0], [0, 1]], "sum": 3},
    {"cells": [[0, 2], [0, 3]], "sum": 7},
    {"cells": [[1, 0], [2, 0]], "sum": 5},
    {"cells": [[1, 1], [1, 2]], "sum": 5},
    {"cells": [[1, 3], [2, 3]], "sum": 5},
    {"cells": [[2, 1], [3, 1]], "sum": 4},
    {"cells": [[2, 2], [3, 2]], "sum": 6},
    {"cells": [[3, 0]], "sum": 4},
    {"cells": [[3, 3]], "sum": 1},
]
# On S_12 the cages a, b, h hold (2+1, 3+4, 4) and the other six miss their sums (c 3+1, d 4+2, e 1+3, f 2+3,
# g 4+1, i 2).
# S with r1c1/r1c2 swapped (2, 1): cage a still sums to 3 and row 1 and every box still hold 1-4, but columns 1
# (2,3,2,4) and 2 (1,4,1,3) repeat.
S_COLS = [[2, 1, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]

# Colored Sudoku: the cyclic square L and colours that give each colour each number once, by hand:
# A = (0,0)1 (1,2)4 (2,0)3 (3,2)2, B = (0,1)2 (1,3)1 (2,1)4 (3,3)3, C = (0,2)3 (1,0)2 (2,2)1 (3,0)4,
# D = (0,3)4 (1,1)3 (2,3)2 (3,1)1.
L = [[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]]
COLORS = [list("ABCD"), list("CDAB"), list("ABCD"), list("CDAB")]
# L with rows 1 and 2 swapped: a Latin square whose every colour repeats (A: 2, 3, 3, 2).
L_SWAP = [[2, 3, 4, 1], [1, 2, 3, 4], [3, 4, 1, 2], [4, 1, 2, 3]]


# (game, side, solution, [(broken board, rule broken, units expected by hand)])
HAND = {
    "oddevensudoku": (
        {"cell_types": S_TYPES},
        S,
        [
            # r1c1 = 3: row 1, column 1 and box 1 repeat 3 (3 is odd like the 1 it replaces: parity holds)
            (
                with_cell(S, 0, 0, 3),
                "sudoku",
                [False, True, True, True, False, True, True, True] + [False, True, True, True] + [True] * 4,
            ),
            # S_12: a valid Sudoku, but every row has a 1 and a 2 on cells of the other parity
            (S_12, "parity", [True] * 12 + [False] * 4),
        ],
    ),
    "jigsawsudoku": (
        {"regions": REGIONS},
        J,
        [
            # r1c1 = 2: row 1, column 1 and region A repeat 2
            (
                with_cell(J, 0, 0, 2),
                "row/column",
                [False, True, True, True, False, True, True, True] + [False, True, True, True],
            ),
            (J_SWAP, "region", [True] * 8 + [False] * 4),
        ],
    ),
    "killersudoku": (
        {"cages": CAGES},
        S,
        [
            (S_COLS, "sudoku", [True] * 4 + [False, False, True, True] + [True] * 4 + [True] * 9),
            (S_12, "cage", [True] * 12 + [True, True, False, False, False, False, False, True, False]),
        ],
    ),
    "coloredsudoku": (
        {"colors": COLORS},
        L,
        [
            # r1c1 = 2: row 1, column 1 and colour A (1 -> 2 next to the 2 at r4c3) repeat 2
            (
                with_cell(L, 0, 0, 2),
                "row/column",
                [False, True, True, True, False, True, True, True] + [False, True, True, True],
            ),
            (L_SWAP, "colour", [True] * 8 + [False] * 4),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_made_solution_accepted_and_each_rule_violation_rejected(name):
    game = get_game(name)
    side, solution, broken = HAND[name]
    assert all(game.units(solution, side))
    assert game.official_check(strs(solution), side)
    p = puzzle(name, empty_board(4), side)
    for mode in ("official", "strict"):
        assert verify(board_output(p.init, solution), p, mode).answer_ok
    for board, rule, expected_units in broken:
        assert game.units(board, side) == expected_units, rule
        assert verify(board_output(p.init, board), p, "strict").answer_ok is False, rule
        official = game.official_check(strs(board), side)
        # the official Jigsaw checker never sees the regions: a region violation passes (see the quirk test)
        assert official is (name == "jigsawsudoku" and rule == "region"), rule


def test_hand_made_puzzles_have_one_solution_and_a_changed_given_fails():
    # Odd-Even: columns 1, 3 are odd on rows 1-2 and even on rows 3-4 (columns 2, 4 the reverse), so the parity map
    # alone leaves 8 boards: which of 1/3 and of 2/4 comes first in each half. By hand, r1c1 = 1 fixes the top odds,
    # r1c2 = 2 the top evens, r3c1 = 2 the bottom evens and r3c2 = 1 the bottom odds: S only.
    assert count_solutions(get_game("oddevensudoku"), empty_board(4), {"cell_types": S_TYPES}) == 2  # (limit 2)
    init = [[1, 2, 0, 0], [0, 0, 0, 0], [2, 1, 0, 0], [0, 0, 0, 0]]
    oe = puzzle("oddevensudoku", init, {"cell_types": S_TYPES})
    assert count_solutions(oe.game, oe.init, oe.side) == 1
    # Jigsaw: J and S both satisfy REGIONS (S's regions: A 1,2,3,4; B 4,1,2,3; C 3,2,1,4; D 4,3,2,1). With row 1 =
    # 1234 given, r2c2 = 4 (region A) and row 2's other cells are (2,1,3), (3,1,2) or (3,2,1) (column and region B
    # rules); the given r2c1 = 2 keeps (2,1,3), and the columns then force rows 3 and 4 of J.
    assert count_solutions(get_game("jigsawsudoku"), [J[0], [0] * 4, [0] * 4, [0] * 4], {"regions": REGIONS}) == 2
    jig = puzzle("jigsawsudoku", [J[0], [2, 0, 0, 0], [0] * 4, [0] * 4], {"regions": REGIONS})
    assert count_solutions(jig.game, jig.init, jig.side) == 1
    # Killer: the cages alone pin S. By hand: h, i give r4c1 = 4, r4c4 = 1; cage c (5) in column 1 with r1c1 in
    # {1,2} needs {2,3}, so r1c1 = 1, r1c2 = 2; cage f (4) is {1,3} so r2c2 = 4, cage d gives r2c3 = 1, row 4 gives
    # r4c2 = 3, r3c2 = 1, r4c3 = 2, cage g r3c3 = 4, column 3 r1c3 = 3, r1c4 = 4, and box 1 r2c1 = 3: S.
    kil = puzzle("killersudoku", empty_board(4), {"cages": CAGES})
    assert count_solutions(kil.game, kil.init, kil.side) == 1
    for p, solution in ((oe, S), (jig, J)):
        r, c = next((r, c) for r in range(4) for c in range(4) if p.init[r][c] != EMPTY)
        wrong = with_cell(solution, r, c, solution[r][c] % 4 + 1)
        for mode in ("official", "strict"):
            assert verify(board_output(p.init, solution), p, mode).answer_ok
            assert not verify(board_output(p.init, wrong), p, mode).answer_ok


# --- generated puzzles through the public path ---


def independent_ok(name: str, board, side) -> bool:
    """The rules, written here: rows, columns, then the variant's own units."""
    n = len(board)
    full = set(range(1, n + 1))
    units = [set(row) for row in board] + [{board[r][c] for r in range(n)} for c in range(n)]
    if name in ("oddevensudoku", "killersudoku"):
        b = math.isqrt(n)
        units += [
            {board[br + i][bc + j] for i in range(b) for j in range(b)}
            for br in range(0, n, b)
            for bc in range(0, n, b)
        ]
    if name in ("jigsawsudoku", "coloredsudoku"):
        labels = side["regions" if name == "jigsawsudoku" else "colors"]
        for key in {x for row in labels for x in row}:
            units.append({board[r][c] for r in range(n) for c in range(n) if labels[r][c] == key})
        assert len({x for row in labels for x in row}) == n
    if not all(u == full for u in units):
        return False
    if name == "oddevensudoku":
        return all(
            (t == "w") == (board[r][c] % 2 == 0) for r, row in enumerate(side["cell_types"]) for c, t in enumerate(row)
        )
    if name == "killersudoku":
        cells = [tuple(cell) for cage in side["cages"] for cell in cage["cells"]]
        assert sorted(cells) == [(r, c) for r in range(n) for c in range(n)]  # the cages cover the board once
        return all(sum(board[r][c] for r, c in cage["cells"]) == cage["sum"] for cage in side["cages"])
    return True


def connected(cells) -> bool:
    cells = {tuple(cell) for cell in cells}
    seen, stack = set(), [min(cells)]
    while stack:
        r, c = stack.pop()
        if (r, c) in seen:
            continue
        seen.add((r, c))
        stack += [nb for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if nb in cells]
    return seen == cells


SIDE_KEY = {
    "oddevensudoku": "cell_types",
    "jigsawsudoku": "regions",
    "killersudoku": "cages",
    "coloredsudoku": "colors",
}
MAP_HEADING = {
    "oddevensudoku": "Parity map",
    "jigsawsudoku": "Region map",
    "killersudoku": "Cage map",
    "coloredsudoku": "Colour map",
}


@pytest.mark.parametrize(
    ("name", "sizes", "clues"),
    [
        ("oddevensudoku", [4], [1, 4]),
        ("jigsawsudoku", [4, 5], [3, 8]),
        ("killersudoku", [4], [0, 3]),
        ("coloredsudoku", [4, 5], [3, 8]),
    ],
)
def test_generated_puzzles_unique_verified_and_r_sft_replays(name, sizes, clues):
    cfg = VGRPConfig(games=[name], sizes=sizes, num_clues=clues, seed=3)
    rows = make_vgrp_dataset(cfg, n=6, split="train")
    assert len(rows) == 6 and {row["game"] for row in rows} == {name}
    for row in rows:
        init, solution, side = (json.loads(row[k]) for k in ("init_board", "solution", "side_info"))
        assert SIDE_KEY[name] in side, "data.generate_puzzle must draw the side information of every game"
        assert MAP_HEADING[name] in row["prompt"][0]["content"], "the prompt must show the side information"
        assert independent_ok(name, solution, side)
        assert all(init[r][c] in (0, solution[r][c]) for r in range(len(init)) for c in range(len(init)))
        if name == "jigsawsudoku":
            assert all(connected(cells) for cells in _cells_by_label(side["regions"]))
        if name == "killersudoku":
            assert all(connected(cage["cells"]) for cage in side["cages"])
        p = Puzzle.from_row(row["game"], row["init_board"], row["side_info"])
        assert count_solutions(p.game, p.init, p.side) == 1
        for mode in ("official", "strict"):
            assert verify(board_output(init, solution), p, mode).answer_ok
        completion = to_r_sft(row, max_steps=10_000)["completion"][0]["content"]
        assert completion.endswith(f"Answer\n{grid_text(solution)}")
        assert _replay(completion, init) == solution


def _cells_by_label(labels):
    out = {}
    for r, row in enumerate(labels):
        for c, key in enumerate(row):
            out.setdefault(key, []).append((r, c))
    return list(out.values())


def _replay(completion: str, init):
    """Apply the trace's set / try / undo lines to the initial board."""
    import re

    board = [list(row) for row in init]
    placed = []
    for op, r, c, v in re.findall(r"Step \d+: (try |undo )?r(\d+)c(\d+) = (\d+)", completion):
        r, c = int(r) - 1, int(c) - 1
        if op == "undo ":
            while placed:
                rr, cc = placed.pop()
                board[rr][cc] = 0
                if (rr, cc) == (r, c):
                    break
        else:
            board[r][c] = int(v)
            placed.append((r, c))
    return board


def test_nine_by_nine_sizes_and_unsupported_sizes():
    for name in ("oddevensudoku", "killersudoku"):
        with pytest.raises(ValueError, match="4 and 9"):
            get_game(name).check_size(6)
    for name in ("jigsawsudoku", "coloredsudoku"):
        get_game(name).check_size(6)
        with pytest.raises(ValueError):
            get_game(name).check_size(3)
    cfg = VGRPConfig(games=["killersudoku", "jigsawsudoku"], sizes=[9], num_clues=[30, 34], seed=1)
    for row in make_vgrp_dataset(cfg, n=2, split="train"):
        solution, side = json.loads(row["solution"]), json.loads(row["side_info"])
        assert SIDE_KEY[row["game"]] in side, "data.generate_puzzle must draw the side information of every game"
        assert row["size"] == 9 and independent_ok(row["game"], solution, side)
        assert len(row["prompt"][0]["content"]) <= 2000


# --- the official checker's quirks ---


def test_official_oddeven_and_killer_convert_with_int():
    oe, kil = get_game("oddevensudoku"), get_game("killersudoku")
    for game, side in ((oe, {"cell_types": S_TYPES}), (kil, {"cages": CAGES})):
        spaced = strs(S)
        spaced[1][1] = " 4"  # int(" 4") == 4: accepted (the plain Sudoku check would compare the raw string)
        assert game.official_check(spaced, side)
        spaced[1][1] = "+4"
        assert game.official_check(spaced, side)
        bad = strs(S)
        bad[1][1] = "x"  # does not convert: the answer fails (plain Sudoku would accept an 'x' that repeats nothing)
        assert not game.official_check(bad, side)
        assert get_game("sudoku").official_check(bad, {})


def test_official_oddeven_and_killer_read_0_as_empty_and_have_no_value_range():
    oe, kil = get_game("oddevensudoku"), get_game("killersudoku")
    # A 0 is an empty cell after int(): it repeats nothing, has no parity and adds nothing to its cage.
    zero = strs(with_cell(S, 2, 2, 0))
    assert oe.official_check(zero, {"cell_types": S_TYPES})
    assert kil.official_check(zero, {"cages": CAGES})
    # An all-zero answer passes Killer officially (every cage is under its sum and has an empty cell).
    assert kil.official_check([["0"] * 4 for _ in range(4)], {"cages": CAGES})
    # ... unless a cage's filled cells already exceed its sum: cage b (sum 7) as r1c3 = 9, r1c4 = 0 (9 repeats
    # nothing in row 1, column 3 or box 2).
    assert kil.official_check(strs(with_cell(with_cell(S, 0, 3, 0), 0, 2, 9)), {"cages": CAGES}) is False
    # Out-of-range numbers: cage a (sum 3) as 5 + (-2) repeats nothing and reaches its sum.
    assert kil.official_check(strs(with_cell(with_cell(S, 0, 0, 5), 0, 1, -2)), {"cages": CAGES})
    # Odd-Even: a 5 on an odd ('b') cell that repeats nothing passes; a 6 on the same cell fails its parity.
    assert oe.official_check(strs(with_cell(S, 0, 0, 5)), {"cell_types": S_TYPES})
    assert not oe.official_check(strs(with_cell(S, 0, 0, 6)), {"cell_types": S_TYPES})
    # strict (units) rejects all of these
    assert not all(kil.units(with_cell(with_cell(S, 0, 0, 5), 0, 1, -2), {"cages": CAGES}))
    assert not all(oe.units(with_cell(S, 2, 2, 0), {"cell_types": S_TYPES}))


def test_official_jigsaw_ignores_regions_strict_does_not():
    p = puzzle("jigsawsudoku", empty_board(4), {"regions": REGIONS})
    text = board_output(p.init, J_SWAP)
    assert verify(text, p, "official").answer_ok  # rows and columns hold, every region repeats
    assert not verify(text, p, "strict").answer_ok


def test_official_grouped_games_compare_raw_strings():
    jig, col = get_game("jigsawsudoku"), get_game("coloredsudoku")
    # a '0' string is a value, not an empty cell, in the raw-string checks: two of them in a row repeat
    zeros = strs(with_cell(with_cell(J, 0, 0, 0), 1, 1, 0))  # r1c1 and r2c2: different rows and columns
    assert jig.official_check(zeros, {"regions": REGIONS})
    assert not jig.official_check(strs(with_cell(with_cell(J, 0, 0, 0), 0, 1, 0)), {"regions": REGIONS})
    # no value range: an 'x' that repeats nothing passes Colored Sudoku officially; a colour repeat fails
    assert col.official_check(strs(with_cell(L, 0, 0, "x")), {"colors": COLORS})
    # r1c1 'x' and r2c3 'x' (colour A both, rows and columns differ) repeat inside colour A
    assert not col.official_check(strs(with_cell(with_cell(L, 0, 0, "x"), 1, 2, "x")), {"colors": COLORS})


def test_partial_reward_counts_the_variant_units():
    from trl_ext_plugins.vgrp.verify import partial_score

    # Killer S_12 breaks six of the 21 units (12 Sudoku units hold; cages a, b, h hold): 15 / 21.
    p = puzzle("killersudoku", empty_board(4), {"cages": CAGES})
    assert partial_score(S_12, p) == pytest.approx(15 / 21)
    # An invalid cell (a 7 in a 4x4) breaks its row, column, box and cage (cage a): 21 - 4 = 17 / 21.
    assert partial_score(with_cell(S, 0, 0, 7), p) == pytest.approx(17 / 21)
    # Odd-Even: the invalid 7 breaks row 1, column 1, box 1 and row 1's parity: 12 / 16.
    p = puzzle("oddevensudoku", empty_board(4), {"cell_types": S_TYPES})
    assert partial_score(with_cell(S, 0, 0, 7), p) == pytest.approx(12 / 16)
