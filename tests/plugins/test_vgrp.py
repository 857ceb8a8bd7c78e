"""VGRP-Bench plugin: the card's hand-computed cases, the verifier against brute-force solvers written here, the
official checker's gaps and the strict mode that closes them, adversarial completions, the S-SFT / R-SFT transforms
through the real CLI, and GRPO / SFT runs through `trl-ext train`."""

from __future__ import annotations

import itertools
import json
import pickle
import re

import pytest
from vgrp_boards import board_output, grid_text, with_cell

import trl_ext
from trl_ext.cli import main
from trl_ext.testing import tiny_grpo_flags, tiny_run_flags, train_argv
from trl_ext_plugins.vgrp.config import VGRPConfig
from trl_ext_plugins.vgrp.data import build, make_vgrp_rows
from trl_ext_plugins.vgrp.rewards import FormatReward, PartialReward, PerceptionReward, SolveReward, TotalReward
from trl_ext_plugins.vgrp.transforms import to_r_sft, to_s_sft
from trl_ext_plugins.vgrp.verify import Puzzle, parse_official, parse_strict, partial_score, verify

# The card's 4x4 Sudoku; checked by hand: rows, columns (1324, 2413, 3142, 4231) and boxes (1234, 3412, 2143, 4321).
S = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
G0 = [[1, 0, 0, 4], [0, 4, 1, 0], [2, 0, 0, 3], [0, 3, 0, 0]]
G0_TEXT = "[[1,0,0,4],[0,4,1,0],[2,0,0,3],[0,3,0,0]]"
S_TEXT = "[[1,2,3,4],[3,4,1,2],[2,1,4,3],[4,3,2,1]]"


def sudoku(init=G0):
    return Puzzle.from_row("sudoku", json.dumps(init), "{}")


def output(perception: str, answer: str) -> str:
    return f"Perception\n{perception}\nAnswer\n{answer}"


# --- independent checkers and brute-force solvers ---


def sudoku4_ok(board) -> bool:
    full = {1, 2, 3, 4}
    rows = [set(r) for r in board]
    cols = [{board[r][c] for r in range(4)} for c in range(4)]
    boxes = [{board[r][c] for r in (br, br + 1) for c in (bc, bc + 1)} for br in (0, 2) for bc in (0, 2)]
    return all(u == full for u in rows + cols + boxes)


def all_latin(n):
    out = []

    def extend(rows):
        if len(rows) == n:
            out.append([list(r) for r in rows])
            return
        for perm in itertools.permutations(range(1, n + 1)):
            if all(perm[c] != row[c] for row in rows for c in range(n)):
                extend(rows + [perm])

    extend([])
    return out


LATIN4 = all_latin(4)
SUDOKU4 = [b for b in LATIN4 if sudoku4_ok(b)]


def binairo_line_ok(line) -> bool:
    n = len(line)
    return line.count("w") == line.count("b") == n // 2 and all(
        not (line[i] == line[i + 1] == line[i + 2]) for i in range(n - 2)
    )


def all_binairo(n):
    rows = [list(r) for r in itertools.product("wb", repeat=n) if binairo_line_ok(list(r))]
    return [
        [list(r) for r in combo]
        for combo in itertools.product(rows, repeat=n)
        if all(binairo_line_ok([combo[r][c] for r in range(n)]) for c in range(n))
    ]


def futoshiki_ok(board, side) -> bool:
    n = len(board)
    for r, signs in enumerate(side["row"]):
        for c, s in enumerate(signs):
            if (s == "<" and not board[r][c] < board[r][c + 1]) or (s == ">" and not board[r][c] > board[r][c + 1]):
                return False
    for r, signs in enumerate(side["col"]):
        for c, s in enumerate(signs):
            if (s == "^" and not board[r][c] < board[r + 1][c]) or (s == "v" and not board[r][c] > board[r + 1][c]):
                return False
    return all(sorted(row) == list(range(1, n + 1)) for row in board)


def keeps(init, board) -> bool:
    return all(
        g == 0 or g == b for grow, brow in zip(init, board, strict=True) for g, b in zip(grow, brow, strict=True)
    )


def test_brute_force_counts():
    assert len(LATIN4) == 576 and len(SUDOKU4) == 288  # the known counts of 4x4 Latin squares and Sudoku grids
    assert S in SUDOKU4
    # 4x4 0-1 matrices with every row and column sum 2 (OEIS A001499: 90); no triple fits in a balanced 4-line.
    assert len(all_binairo(4)) == 90


# --- card test 1: answer_ok ---


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_card_1_known_solution_swap_and_changed_given(mode):
    puzzle = sudoku()
    assert verify(output(G0_TEXT, S_TEXT), puzzle, mode).answer_ok
    swapped = [row[:] for row in S]
    swapped[3][2], swapped[3][3] = swapped[3][3], swapped[3][2]  # row 3 -> 4,3,1,2: column 2 reads 3,1,4,1
    assert not sudoku4_ok(swapped)
    assert not verify(output(G0_TEXT, grid_text(swapped)), puzzle, mode).answer_ok
    relabelled = [[{1: 2, 2: 1}.get(v, v) for v in row] for row in S]  # a valid Sudoku that changes the given 1
    assert sudoku4_ok(relabelled) and relabelled[0][0] == 2
    verdict = verify(output(G0_TEXT, grid_text(relabelled)), puzzle, mode)
    assert verdict.perception_ok and not verdict.answer_ok and not verdict.answer_ok_ungated


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_other_valid_solutions_are_accepted_without_comparing_to_s(mode):
    empty = [[0] * 4 for _ in range(4)]
    puzzle = sudoku(empty)
    for board in SUDOKU4[::29]:
        assert verify(output(grid_text(empty), grid_text(board)), puzzle, mode).answer_ok
    for board in LATIN4[::37]:
        assert verify(output(grid_text(empty), grid_text(board)), puzzle, mode).answer_ok == sudoku4_ok(board)


def test_answer_is_gated_on_perception():
    wrong_perception = "[[1,0,0,4],[0,4,1,0],[2,0,0,3],[0,3,0,2]]"
    for mode in ("official", "strict"):
        v = verify(output(wrong_perception, S_TEXT), sudoku(), mode)
        assert not v.perception_ok and not v.answer_ok and v.answer_ok_ungated


# --- card test 2: parsing ---


def test_card_2_parsing():
    text = output(G0_TEXT, S_TEXT)
    perceived, answer = parse_official(text)
    assert perceived == [["1", "0", "0", "4"], ["0", "4", "1", "0"], ["2", "0", "0", "3"], ["0", "3", "0", "0"]]
    assert answer == [["1", "2", "3", "4"], ["3", "4", "1", "2"], ["2", "1", "4", "3"], ["4", "3", "2", "1"]]
    assert parse_strict(text) == (G0, S)
    missing = f"Perception\n{G0_TEXT}\n{S_TEXT}"
    assert parse_official(missing) == (None, None) and parse_strict(missing) == (None, None)
    assert parse_official("Initial State\n[[1]]\nSolution\n[[2]]") == ([["1"]], [["2"]])
    assert parse_official(f"Perception\n{G0_TEXT}\nAnswer\n{S_TEXT}\nAnswer\n{S_TEXT}") == (None, None)
    assert parse_official(f"Perception\nWrong\nAnswer\n{S_TEXT}") == (None, None)


def test_official_has_no_normalisation_strict_has():
    spaced = "[[1, 2, 3, 4],[3, 4, 1, 2],[2, 1, 4, 3],[4, 3, 2, 1]]"
    quoted = "[['1','2','3','4'],['3','4','1','2'],['2','1','4','3'],['4','3','2','1']]"
    lines = "[1,2,3,4]\n[3,4,1,2]\n[2,1,4,3]\n[4,3,2,1]"
    bare = "1 2 3 4\n3 4 1 2\n2 1 4 3\n4 3 2 1"
    for answer in (spaced, quoted):
        assert parse_official(output(G0_TEXT, answer))[1][0][1] in (" 2", "'2'")
        assert not verify(output(G0_TEXT, answer), sudoku(), "official").answer_ok_ungated
        assert verify(output(G0_TEXT, answer), sudoku(), "strict").answer_ok
    for answer in (lines, bare):
        assert verify(output(G0_TEXT, answer), sudoku(), "strict").answer_ok
        assert not verify(output(G0_TEXT, answer), sudoku(), "official").answer_ok_ungated
    assert verify(f"perception:\n{G0_TEXT}\nANSWER:\n{S_TEXT}", sudoku(), "strict").answer_ok
    assert not verify(f"perception:\n{G0_TEXT}\nANSWER:\n{S_TEXT}", sudoku(), "official").parsed
    assert verify(f"Perception: {G0_TEXT}\nAnswer: {S_TEXT}", sudoku(), "strict").answer_ok
    # A header word inside prose is not a header.
    assert parse_strict(f"The perception is easy.\nAnswer\n{S_TEXT}") == (None, None)


def test_official_perception_compares_every_cell_and_reads_star_as_empty():
    star = "[[1,*,*,4],[*,4,1,*],[2,*,*,3],[*,3,*,*]]"
    dots = "[[1,.,.,4],[.,4,1,.],[2,.,.,3],[.,3,.,.]]"
    assert verify(output(star, S_TEXT), sudoku(), "official").answer_ok
    assert not verify(output(dots, S_TEXT), sudoku(), "official").perception_ok
    assert verify(output(dots, S_TEXT), sudoku(), "strict").answer_ok


@pytest.mark.parametrize("cell", ["9", "0", "x", "1x"])
def test_official_gaps_value_range_and_glued_text_strict_closes_them(cell):
    # (0, 1) is empty in G0; the value is distinct from its row/column/box, so the official no-repeat check passes.
    answer = grid_text(with_cell(S, 0, 1, cell))
    assert verify(output(G0_TEXT, answer), sudoku(), "official").answer_ok
    assert not verify(output(G0_TEXT, answer), sudoku(), "strict").answer_ok


def test_official_reads_trailing_text_into_the_last_cell():
    # strip()[2:-2] on "[[...,1]] Done." leaves the last cell "1]] Don", distinct from its row/column/box and
    # (3, 3) is empty in G0, so the official check passes; strict reads the grid and ignores text after it.
    text = output(G0_TEXT, S_TEXT + " Done.")
    assert parse_official(text)[1][3][3] == "1]] Don"
    assert verify(text, sudoku(), "official").answer_ok and verify(text, sudoku(), "strict").answer_ok


# --- card test 3: R_partial ---


def test_card_3_partial_hand_counts():
    empty = sudoku([[0] * 4 for _ in range(4)])
    # Row 3 := row 0: every column repeats a value (1,3,2,1 / 2,4,1,2 / 3,1,4,3 / 4,2,3,4) and both lower boxes
    # (2,1,1,2 and 4,3,3,4); rows and upper boxes are fine: k = 6 -> (12 - 6)/12.
    dup_row = [S[0], S[1], S[2], S[0]]
    assert partial_score(dup_row, empty) == pytest.approx((12 - 6) / 12)
    # Row 0 := 1,1,3,4: row 0, column 1 (1,4,1,3) and the top-left box (1,1,3,4) break: k = 3.
    one_dup = [[1, 1, 3, 4], *S[1:]]
    assert partial_score(one_dup, empty) == pytest.approx((12 - 3) / 12)
    assert partial_score(S, empty) == 1.0
    assert partial_score([row[:3] for row in S], empty) == 0.0  # wrong shape
    assert partial_score(None, empty) == 0.0
    # A cell that contradicts a given breaks its row, column and box: k = 3.
    assert partial_score(S, sudoku([[2, 0, 0, 0], [0] * 4, [0] * 4, [0] * 4])) == pytest.approx(9 / 12)
    # An out-of-range value breaks its units: (0,1) := 9 -> row 0, column 1, box 0.
    assert partial_score([[1, 9, 3, 4], *S[1:]], empty) == pytest.approx(9 / 12)


def test_partial_binairo_and_futoshiki_hand_counts():
    b = [list("wbwb"), list("bwbw"), list("wbbw"), list("bwwb")]
    puzzle = Puzzle.from_row("binairo", json.dumps([[0] * 4] * 4), "{}")
    assert partial_score(b, puzzle) == 1.0
    broken = [list("wbwb"), list("bwbw"), list("wbbw"), list("bwbb")]  # row 3 (3 b) and column 2 (w,b,b,b) break
    assert partial_score(broken, puzzle) == pytest.approx(6 / 8)
    side = {"row": [["<", "", ""], ["", "", ""], ["", "", ""], ["", "", ""]], "col": [["", "", "", ""]] * 3}
    fut = Puzzle.from_row("futoshiki", json.dumps([[0] * 4] * 4), json.dumps(side))
    # 8 lines + 1 inequality: S has 1 < 2 in row 0 -> all 9; swapping the sign breaks exactly that unit.
    assert partial_score(S, fut) == 1.0
    side["row"][0][0] = ">"
    fut = Puzzle.from_row("futoshiki", json.dumps([[0] * 4] * 4), json.dumps(side))
    assert partial_score(S, fut) == pytest.approx(8 / 9)


# --- card test 4: the generator against brute force ---


def _solutions(game, init, side):
    if game == "sudoku":
        pool = SUDOKU4
    elif game == "binairo":
        pool = all_binairo(4)
    else:
        pool = [b for b in LATIN4 if futoshiki_ok(b, side)]
    return [b for b in pool if keeps(init, b)]


@pytest.mark.parametrize("game", ["sudoku", "binairo", "futoshiki"])
def test_card_4_generated_puzzles_against_brute_force(game):
    rows = make_vgrp_rows(VGRPConfig(games=[game], sizes=[4]), 12, "train")
    for row in rows:
        init, solution, side = (json.loads(row[k]) for k in ("init_board", "solution", "side_info"))
        assert keeps(init, solution) and row["num_clues"] == sum(v != 0 for r in init for v in r)
        found = _solutions(game, init, side)
        assert found == [solution]  # unique (unique=True) and equal to the stored solution
        puzzle = Puzzle.from_row(game, row["init_board"], row["side_info"])
        for mode in ("official", "strict"):
            assert verify(output(grid_text(init), grid_text(solution)), puzzle, mode).answer_ok
        # Every other board of the game is rejected (the stored solution is the only one).
        pool = SUDOKU4 if game == "sudoku" else all_binairo(4) if game == "binairo" else LATIN4
        for other in pool[::7]:
            if other != solution:
                assert not verify(output(grid_text(init), grid_text(other)), puzzle, "strict").answer_ok


def test_card_4_splits_and_determinism():
    cfg = VGRPConfig(games=["sudoku"], sizes=[4], num_clues=[8, 10])
    train, val = make_vgrp_rows(cfg, 120, "train"), make_vgrp_rows(cfg, 30, "val")
    assert {r["solution"] for r in train}.isdisjoint({r["solution"] for r in val})
    assert make_vgrp_rows(cfg, 30, "val") == val
    assert make_vgrp_rows(cfg, 10, "train") == train[:10]  # a longer dataset extends a shorter one
    other = make_vgrp_rows(VGRPConfig(games=["sudoku"], sizes=[4], num_clues=[8, 10], seed=1), 10, "train")
    assert other != train[:10]
    assert all(8 <= r["num_clues"] for r in train)
    data = build()
    assert (len(data["train"]), len(data["test"])) == (400, 50)
    assert set(data["train"]["solution"]).isdisjoint(set(data["test"]["solution"]))
    assert max(len(r["prompt"][0]["content"]) for r in data["train"]) <= 2000


def test_unique_false_keeps_the_clue_count_and_nine_by_nine_solves():
    rows = make_vgrp_rows(VGRPConfig(games=["sudoku"], sizes=[4], num_clues=5, unique=False), 10, "train")
    assert all(r["num_clues"] == 5 for r in rows)
    big = make_vgrp_rows(VGRPConfig(games=["sudoku"], sizes=[9], num_clues=40), 2, "train")
    for row in big:
        init, solution = json.loads(row["init_board"]), json.loads(row["solution"])
        assert sum(v != 0 for r in init for v in r) >= 40
        assert all(sorted(r) == list(range(1, 10)) for r in solution)
        assert all(sorted(col) == list(range(1, 10)) for col in zip(*solution, strict=True))
        puzzle = Puzzle.from_row("sudoku", init, {})
        assert verify(output(grid_text(init), grid_text(solution)), puzzle, "strict").answer_ok


# --- card test 5: R-SFT trace replay ---

STEP = re.compile(r"^Step (\d+): (?:(try|undo) )?r(\d+)c(\d+) = (\w+) \((.+)\)$")


def replay(init, target):
    """Apply the trace's lines to the initial board: set/try place a value, undo restores the board to what it was
    before the matching try. Written here, independently of the solver."""
    board = [row[:] for row in init]
    stack = []
    lines = target.split("\n")
    assert lines[0] == "Reasoning"
    count = 0
    for line in lines[1:]:
        if line == "Perception":
            break
        m = STEP.match(line)
        assert m, line
        count += 1
        assert int(m.group(1)) == count
        op, r, c, raw = m.group(2), int(m.group(3)) - 1, int(m.group(4)) - 1, m.group(5)
        value = int(raw) if raw.isdigit() else raw
        if op == "undo":
            snapshot, (tr, tc, tv) = stack.pop()
            assert (tr, tc, tv) == (r, c, value)
            board = snapshot
            continue
        assert board[r][c] == 0, line
        if op == "try":
            stack.append(([row[:] for row in board], (r, c, value)))
        board[r][c] = value
    return board, lines


@pytest.mark.parametrize(
    "cfg",
    [
        VGRPConfig(games=["sudoku"], sizes=[4], num_clues=[8, 10]),
        VGRPConfig(games=["sudoku"], sizes=[4], num_clues=4),
        VGRPConfig(games=["binairo"], sizes=[6], num_clues=[6, 8]),
        VGRPConfig(games=["futoshiki"], sizes=[5], num_clues=[2, 4]),
    ],
    ids=["sudoku4", "sudoku4_few", "binairo6", "futoshiki5"],
)
def test_card_5_r_sft_trace_replays_to_the_solution(cfg):
    undos = 0
    for row in make_vgrp_rows(cfg, 8, "train"):
        built = to_r_sft(row, max_steps=10_000)
        target = built["completion"][0]["content"]
        init, solution = json.loads(row["init_board"]), json.loads(row["solution"])
        board, lines = replay(init, target)
        assert board == solution
        assert target.endswith(board_output(init, solution))
        undos += sum(" undo " in f" {line} " for line in lines)
        puzzle = Puzzle.from_row(row["game"], row["init_board"], row["side_info"])
        assert verify(target, puzzle, "official").answer_ok and verify(target, puzzle, "strict").answer_ok
    if cfg.games == ["futoshiki"]:
        assert undos > 0  # the backtracking path is exercised


def test_r_sft_drops_long_traces_instead_of_truncating():
    row = make_vgrp_rows(VGRPConfig(games=["sudoku"], sizes=[4], num_clues=[8, 10]), 1, "train")[0]
    assert to_r_sft(row, max_steps=1) is None
    init, solution = json.loads(row["init_board"]), json.loads(row["solution"])
    assert to_s_sft(row)["completion"][0]["content"] == board_output(init, solution)


# --- rewards ---


def columns(n, init=G0, game="sudoku", side="{}"):
    return {"init_board": [json.dumps(init)] * n, "game": [game] * n, "side_info": [side] * n}


def test_rewards_trl_signature_and_values():
    good = output(G0_TEXT, S_TEXT)
    half = output(G0_TEXT, grid_text([S[0], S[1], S[2], S[0]]))
    no_percept = output("[[1]]", S_TEXT)
    completions = [good, half, no_percept, "garbage", [{"role": "assistant", "content": good}]]
    kw = columns(len(completions))
    assert SolveReward()(prompts=["p"] * 5, completions=completions, **kw) == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert PerceptionReward()(completions=completions, **kw) == [1.0, 1.0, 0.0, 0.0, 1.0]
    # Row 3 := row 0 breaks the 4 columns and the 2 lower boxes, and row 3 puts 2 on the given 3 at (3, 1): k = 7.
    assert PartialReward()(completions=completions, **kw) == pytest.approx([1.0, 5 / 12, 1.0, 0.0, 1.0])
    assert FormatReward()(completions=completions, **kw) == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert SolveReward(gated=False)(completions=completions, **kw)[2] == 1.0
    total = TotalReward()(completions=completions, **kw)
    # 1 + .2 + .2 + .1; .2·1 + .2·5/12 + .1; .2·1 + .1 (a 1x1 perception parses but is wrong)
    assert total == pytest.approx([1.5, 0.2 + 0.2 * 5 / 12 + 0.1, 0.3, 0.0, 1.5])
    # "[[1]]" parses (strict) as a 1x1 grid, so both sections parse: R_fmt counts it, R_percept does not.
    assert TotalReward()(completions=[no_percept], **columns(1)) == pytest.approx([0.2 * 1.0 + 0.1])


def test_rewards_adversarial_completions():
    adversarial = [
        "",
        "Perception\nAnswer\n",
        "Perception\n" + "[" * 5000 + "\nAnswer\n" + "]" * 5000,
        output(G0_TEXT, "[[" + "1," * 50_000 + "1]]"),
        output(G0_TEXT, "[[1,2,3,4],[3,4,1,2],[2,1,4,3]]"),  # 3 rows
        output(G0_TEXT, "[[1,2,3,4],[3,4,1,2],[2,1,4,3],[4,3,2,1,5]]"),  # ragged
        output(G0_TEXT, "[[5,6,7,8],[7,8,5,6],[6,5,8,7],[8,7,6,5]]"),  # no repeats, wrong symbols
        output(G0_TEXT, grid_text(with_cell(S, 0, 1, "0"))),  # official gap: '0'
        output(G0_TEXT, "[[1,4,4,4],[4,4,1,4],[2,4,4,3],[4,3,4,4]]"),  # givens kept, everything else a 4
        None,
        42,
        [{"role": "assistant", "content": None}],
        "Perception\n" + G0_TEXT + "\nAnswer\n" + "\x00" * 100,
    ]
    kw = columns(len(adversarial))
    for reward in (SolveReward(), PerceptionReward(), PartialReward(), FormatReward(), TotalReward()):
        out = reward(completions=adversarial, **kw)
        assert len(out) == len(adversarial) and all(isinstance(v, float) for v in out), (reward.__name__, out)
    solve = SolveReward()(completions=adversarial, **kw)
    assert solve == [0.0] * len(adversarial)
    official = SolveReward(verifier="official")(completions=adversarial, **kw)
    assert official[7] == 1.0  # the gap the strict default closes
    assert PartialReward()(completions=adversarial, **kw)[6] == 0.0  # 5..8 are not values of a 4x4 Sudoku


def test_rows_that_describe_no_puzzle_are_not_applicable():
    good = output(G0_TEXT, S_TEXT)
    kw = {"init_board": ["not json", "[[1,2],[3]]", json.dumps(G0)], "game": ["sudoku", "sudoku", "chess"]}
    kw["side_info"] = ["{}", "{}", "{}"]
    assert SolveReward()(completions=[good] * 3, **kw) == [None, None, None]
    from trl_ext.rewards import RewardSetupError

    with pytest.raises(RewardSetupError, match="init_board"):
        SolveReward()(completions=[good], game=["sudoku"], side_info=["{}"])


def test_unusable_gold_scores_none_never_raises():
    # a valid row, then boards whose cells are no values (lists, dicts, None, bools) or that are no board at all
    good = output(G0_TEXT, S_TEXT)
    boards = [json.dumps(G0), [[[]]], [[{"a": 1}]], "[[null]]", [[True]], None, 5, ["x"]]
    n = len(boards)
    kw = {"init_board": boards, "game": ["sudoku"] * n, "side_info": ["{}"] * n}
    for reward in (SolveReward(), PerceptionReward(), PartialReward(), TotalReward()):
        logged = {}
        out = reward(prompts=["p"] * n, completions=[good] * n, log_metric=logged.__setitem__, **kw)
        assert out[0] is not None and out[1:] == [None] * (n - 1), reward.__name__
        if isinstance(reward, (SolveReward, TotalReward)):
            assert logged["vgrp/gold_error_rate"] == pytest.approx((n - 1) / n)


def test_solve_reward_logs_rates_and_buckets():
    logged = {}
    good = output(G0_TEXT, S_TEXT)
    kw = columns(2)
    SolveReward()(completions=[good, "x"], log_metric=lambda k, v: logged.setdefault(k, v), **kw)
    assert logged["vgrp/solve_rate"] == 0.5 and logged["vgrp/perception_acc"] == 0.5
    assert logged["vgrp/solve/sudoku4x4_c7"] == 0.5  # G0 has 7 clues


def test_futoshiki_and_binairo_rewards():
    side = {"row": [["<", "", ""], ["", "", ""], ["", "", ""], ["", "", ""]], "col": [["", "", "", ""]] * 3}
    init = [[0] * 4 for _ in range(4)]
    kw = columns(2, init, "futoshiki", json.dumps(side))
    flipped = [[2, 1, 3, 4], [4, 3, 1, 2], [1, 2, 4, 3], [3, 4, 2, 1]]  # a Latin square with 2 > 1 in row 0
    done = [output(grid_text(init), grid_text(S)), output(grid_text(init), grid_text(flipped))]
    assert SolveReward()(completions=done, **kw) == [1.0, 0.0]
    b = [list("wbwb"), list("bwbw"), list("wbbw"), list("bwwb")]
    binit = [["w", 0, 0, 0], [0] * 4, [0] * 4, [0] * 4]
    text = output(grid_text(binit), grid_text(b))
    assert SolveReward()(completions=[text], **columns(1, binit, "binairo")) == [1.0]
    assert SolveReward(verifier="official")(completions=[text], **columns(1, binit, "binairo")) == [1.0]
    flipped_b = [["b" if v == "w" else "w" for v in row] for row in b]  # valid, but changes the given w
    assert SolveReward()(
        completions=[output(grid_text(binit), grid_text(flipped_b))], **columns(1, binit, "binairo")
    ) == [0.0]


def test_rewards_are_named_picklable_and_validate_options():
    built = {
        trl_ext.get("reward", n).build().__name__
        for n in (
            "vgrp_solve_reward",
            "vgrp_perception_reward",
            "vgrp_partial_reward",
            "vgrp_format_reward",
            "vgrp_reward",
        )
    }
    assert len(built) == 5
    official = trl_ext.get("reward", "vgrp_solve_reward").build(verifier="official")
    assert official.__name__ != "vgrp_solve_reward"
    clone = pickle.loads(pickle.dumps(official))
    assert clone(completions=[output(G0_TEXT, grid_text(with_cell(S, 0, 1, "0")))], **columns(1)) == [1.0]
    with pytest.raises(ValueError, match="verifier"):
        SolveReward(verifier="lenient")
    with pytest.raises(ValueError, match="reward_weights"):
        TotalReward(weights={"bogus": 1.0})


def test_config_validation():
    assert VGRPConfig().combos() == [("sudoku", 4)]
    assert VGRPConfig(games="sudoku,binairo", sizes="4,6").combos() == [("sudoku", 4), ("binairo", 4), ("binairo", 6)]
    for bad in ({"games": ["chess"]}, {"sizes": [5], "games": ["sudoku"]}, {"num_clues": 99}, {"render": "png"}):
        with pytest.raises(ValueError):
            VGRPConfig(**bad)
    assert VGRPConfig(reward_weights={"solve": 2}).reward_weights == {
        "solve": 2.0,
        "percept": 0.2,
        "partial": 0.2,
        "fmt": 0.1,
    }


# --- the CLI ---


def test_transforms_through_the_cli(tmp_path, capfd):
    s_out, r_out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    assert (
        main(["transform", "vgrp_s_sft", "--dataset_name", "builtin:vgrp", "--split", "test", "--output", str(s_out)])
        == 0
    )
    assert (
        main(
            [
                "transform",
                "vgrp_r_sft",
                "--dataset_name",
                "builtin:vgrp",
                "--split",
                "test",
                "--output",
                str(r_out),
                "--max_steps",
                "50",
            ]
        )
        == 0
    )
    out = "".join(capfd.readouterr())
    assert "50 rows -> 50 rows" in out and "dropped (over max_steps or max_target_chars): 0" in out
    test = build()["test"]
    s_rows = [json.loads(line) for line in s_out.read_text().splitlines()]
    r_rows = [json.loads(line) for line in r_out.read_text().splitlines()]
    assert len(s_rows) == len(r_rows) == 50
    for row, s_row, r_row in zip(test, s_rows, r_rows, strict=True):
        assert set(s_row) == {"prompt", "completion"} and s_row["prompt"] == row["prompt"]
        init, solution = json.loads(row["init_board"]), json.loads(row["solution"])
        assert s_row["completion"] == [{"role": "assistant", "content": board_output(init, solution)}]
        assert replay(init, r_row["completion"][0]["content"])[0] == solution
    assert (
        main(["transform", "vgrp_r_sft", "--dataset_name", "builtin:vgrp", "--output", str(r_out), "--max_steps", "0"])
        != 0
    )


def test_cli_sft_with_r_sft_transform(tiny_model_dir, tmp_path):
    code = main(
        train_argv(
            "sft",
            tiny_model_dir,
            str(tmp_path / "sft"),
            "--dataset_name",
            "builtin:vgrp",
            "--transforms",
            "vgrp_r_sft:max_steps=40",
            *tiny_run_flags(),
            "--max_length",
            "1024",
        )
    )
    assert code == 0


def test_cli_grpo_with_vgrp_rewards(tiny_model_dir, tmp_path, capfd):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:vgrp_mixed",
            "--rewards",
            "vgrp_solve_reward,vgrp_perception_reward,vgrp_partial_reward,vgrp_format_reward",
            "--reward_weights",
            "1.0",
            "0.2",
            "0.2",
            "0.1",
            *tiny_grpo_flags(2),
            "--callbacks",
            "vgrp_metrics",
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    assert "rewards/vgrp_solve_reward/mean" in out and "vgrp/solve_rate" in out and "vgrp/solve/" in out
    summary = json.loads((tmp_path / "grpo" / "vgrp_metrics.json").read_text())
    assert "vgrp/perception_acc" in summary and any(key.startswith("vgrp/solve/") for key in summary)


def test_metrics_callback_summary_is_the_mean_of_logged_values():
    from trl_ext_plugins.vgrp.callbacks import summarize

    history = [
        {"vgrp/solve/sudoku4x4_c8": 1.0, "loss": 3.0},
        {"vgrp/solve/sudoku4x4_c8": 0.0},
        {"vgrp/solve_rate": 0.25},
    ]
    assert summarize(history) == {"vgrp/solve/sudoku4x4_c8": 0.5, "vgrp/solve_rate": 0.25}


@pytest.mark.slow
def test_cli_grpo_smollm2_total_reward(tmp_path, capfd):
    code = main(
        train_argv(
            "grpo",
            "smollm2-135m",
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:vgrp",
            "--rewards",
            "vgrp_reward",
            *tiny_grpo_flags(1, 16),
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0 and "rewards/vgrp_reward/mean" in out and "vgrp/perception_acc" in out


def test_load_official_json(tmp_path):
    from trl_ext_plugins.vgrp.data import load_official

    side = {"row_inequalities": [["<", "", ""], ["", "", ""], ["", "", ""], ["", "", ""]]}
    side["col_inequalities"] = [["", "", "", ""]] * 3
    path = tmp_path / "futoshiki_4x4_val.json"
    path.write_text(json.dumps([{"initialization": G0, "solution": S, **side}]))
    row = load_official(path, "futoshiki")[0]
    assert json.loads(row["side_info"]) == {"row": side["row_inequalities"], "col": side["col_inequalities"]}
    puzzle = Puzzle.from_row(row["game"], row["init_board"], row["side_info"])
    assert verify(output(G0_TEXT, S_TEXT), puzzle, "official").answer_ok
    flipped = [[2, 1, 3, 4], [4, 3, 1, 2], [1, 2, 4, 3], [3, 4, 2, 1]]  # Latin, but 2 > 1 where the row says '<'
    no_givens = Puzzle(puzzle.game, [[0] * 4 for _ in range(4)], puzzle.side)
    empty = grid_text(no_givens.init)
    assert verify(output(empty, S_TEXT), no_givens, "official").answer_ok
    assert not verify(output(empty, grid_text(flipped)), no_givens, "official").answer_ok_ungated
