"""debunk_sft (arXiv:2510.00237): the card's hand-computed cases, the solver, the rewards and the CLI."""

from __future__ import annotations

import json
import random

import pytest
from datasets import Dataset

from trl_ext import get
from trl_ext.cli import main
from trl_ext_plugins.debunk_sft import cards as card_game
from trl_ext_plugins.debunk_sft.callbacks import VOCAB_VARIANTS, row_success, vocab_variant
from trl_ext_plugins.debunk_sft.data import build_points, build_sokoban
from trl_ext_plugins.debunk_sft.rewards import (
    answer_tag_format_reward,
    last_answer,
    points_answer_reward,
    remapped_action_reward,
)
from trl_ext_plugins.debunk_sft.sokoban import Board
from trl_ext_plugins.debunk_sft.transforms import (
    decode_actions,
    diversify_action_vocab,
    diversify_rule_values,
    encode_actions,
    needs_explanation,
    standard_points_prompt,
    standard_sokoban_prompt,
    to_cot_target,
)
from trl_ext_plugins.debunk_sft.words import DEFAULT_POOL

GRID = ("#####", "#_XO#", "#_P_#", "#___#", "#####")  # player below the box; the target right of the box
MAP = {1: "cat", 2: "dog", 3: "bird", 4: "fish"}
STD_MAP = '{"1": "Up", "2": "Down", "3": "Left", "4": "Right"}'


def _sokoban_rows(n: int = 12) -> Dataset:
    return build_sokoban("sft")["train"].select(range(n))


# --- card test 1: the remap round-trip ------------------------------------------------------------------------------
def test_remap_round_trip():
    assert encode_actions([1, 4, 4, 2], MAP) == "cat fish fish dog"
    assert decode_actions("cat fish fish dog", MAP) == [1, 4, 4, 2]
    assert decode_actions("cat cow", MAP) is None


def test_transform_round_trips_prompt_and_target():
    ds = Dataset.from_list([{"prompt": standard_sokoban_prompt(GRID, multi_step=True), "actions": [3, 1, 4]}])
    row = diversify_action_vocab(ds, seed=7)[0]
    words = random.Random(7 + 0).sample(list(DEFAULT_POOL), 4)  # the card's rule: seed = base_seed + index
    assert row["action_words"] == words
    assert json.loads(row["action_mapping"]) == {"1": words[0], "2": words[1], "3": words[2], "4": words[3]}
    assert row["completion"] == f"<answer> {words[2]} {words[0]} {words[3]} </answer>"
    block = " | ".join(f"<answer> {w} </answer>" for w in words)
    assert (
        f"Answer format: {block}\nwhere {words[0]} is Up, {words[1]} is Down, {words[2]} is Left, {words[3]} is Right"
        in row["prompt"]
    )
    assert "<answer> Up </answer>" not in row["prompt"]
    # The reward reads the target back through the row's own map: the sequence solves the grid.
    assert remapped_action_reward(completions=[row["completion"]], action_mapping=[row["action_mapping"]],
                                  actions=[[3, 1, 4]], grid=[list(GRID)]) == [1.0]  # fmt: skip


# --- card test 2: distinct, deterministic per index -------------------------------------------------------------------
def test_words_distinct_and_deterministic():
    ds = _sokoban_rows(40)
    a, b = diversify_action_vocab(ds, seed=3), diversify_action_vocab(ds, seed=3)
    assert all(len(set(w)) == 4 for w in a["action_words"])
    assert a["action_words"] == b["action_words"]
    assert len({tuple(w) for w in a["action_words"]}) > 30  # per-example, not one global map
    assert diversify_action_vocab(ds, seed=4)["action_words"] != a["action_words"]
    # Row i depends on its index only: the same row at index 5 of a shorter dataset gets the same words.
    assert diversify_action_vocab(ds.select(range(6)), seed=3)["action_words"][5] == a["action_words"][5]


# --- card test 3: the explanation line iff the words are not standard direction words --------------------------------
@pytest.mark.parametrize(
    ("words", "explained"),
    [
        (["cat", "dog", "bird", "fish"], True),
        (["Up", "Down", "Left", "Right"], False),
        (["North", "South", "West", "East"], False),
        (["up", "down", "left", "right"], False),
        (["⬆️", "⬇️", "⬅️", "➡️"], True),
        (["Down", "Up", "Right", "Left"], True),  # swapped meanings are not the standard words of their actions
        (["Up", "Down", "Left", "fish"], True),
    ],
)
def test_explanation_line(words, explained):
    assert needs_explanation(words) is explained
    row = diversify_action_vocab(_sokoban_rows(1), fixed_words=words)[0]
    text = row["prompt"][0]["content"]
    assert ("where " in text and " is Up, " in text) is explained


def test_sampled_words_always_explained():
    rows = diversify_action_vocab(_sokoban_rows(20), seed=0)
    assert all("\nwhere " in r["prompt"][0]["content"] for r in rows)
    assert not {w.lower() for w in DEFAULT_POOL} & {"up", "down", "left", "right", "north", "south", "east", "west"}


# --- card test 4: rule remap ----------------------------------------------------------------------------------------
def test_rule_remap_hand_case():
    faces = {"J": 11, "Q": 12, "K": 13}
    assert card_game.card_values(["J", "3", "4", "K"], faces) == [11, 3, 4, 13]
    ds = Dataset.from_list([{"prompt": standard_points_prompt(["J", "3", "4", "K"]), "cards": ["J", "3", "4", "K"]}])
    row = diversify_rule_values(ds, mappings=[(11, 12, 13)])[0]
    assert row["card_values"] == [11, 3, 4, 13] and json.loads(row["face_values"]) == faces
    assert "Face cards: J counts as 11, Q counts as 12 and K counts as 13." in row["prompt"]
    assert "count as 10" not in row["prompt"]
    # The recomputed expression, checked by hand-written arithmetic: it uses 11, 3, 4, 13 and makes 24.
    expr = row["answer"]
    assert sorted(int(t) for t in expr.replace("(", " ").replace(")", " ").split() if t.isdigit()) == [3, 4, 11, 13]
    assert eval(expr, {"__builtins__": {}}) == 24  # noqa: S307 (the solver's own output, digits and operators)
    assert row["completion"] == f"<answer> {expr} </answer>"
    assert points_answer_reward(completions=[row["completion"]], card_values=[row["card_values"]], target=[24]) == [
        1.0
    ]
    # Under the old rule (all 10) the same expression is wrong.
    assert points_answer_reward(completions=[row["completion"]], card_values=[[10, 3, 4, 10]], target=[24]) == [0.0]


def test_rule_values_seeded_and_dropped_when_unsolvable():
    data = build_points("sft")["train"].select(range(30))
    a, b = diversify_rule_values(data, seed=1), diversify_rule_values(data, seed=1)
    assert a["face_values"] == b["face_values"] and len({*a["face_values"]}) > 2
    assert all(card_game.is_solution(r["answer"], r["card_values"]) for r in a)
    # A, A, A, A makes 24 under no rule: the row is dropped rather than kept with a wrong target.
    ds = Dataset.from_list([{"prompt": standard_points_prompt(["A"] * 4), "cards": ["A"] * 4}])
    assert len(diversify_rule_values(ds)) == 0


# --- card test 5: fixed standard words are the identity ---------------------------------------------------------------
def test_fixed_standard_words_identity():
    ds = _sokoban_rows(10)
    out = diversify_action_vocab(ds, fixed_words=["Up", "Down", "Left", "Right"])
    assert out["prompt"] == ds["prompt"]
    assert out["completion"] == ds["completion"]
    plain = Dataset.from_list([{"prompt": standard_sokoban_prompt(GRID, True), "actions": [3, 1, 4],
                                "completion": "<answer> Left Up Right </answer>"}])  # fmt: skip
    same = diversify_action_vocab(plain, fixed_words="Up,Down,Left,Right")[0]
    assert same["prompt"] == plain[0]["prompt"] and same["completion"] == plain[0]["completion"]


# --- card test 6: only the last answer tag ----------------------------------------------------------------------------
def test_last_answer_tag_only():
    text = "<answer> cat </answer> <answer> dog </answer>"
    assert last_answer(text) == "dog"
    mapping = json.dumps({str(k): v for k, v in MAP.items()})
    assert remapped_action_reward(completions=[text], action_mapping=[mapping], actions=[[2]]) == [1.0]
    assert remapped_action_reward(completions=[text], action_mapping=[mapping], actions=[[1]]) == [0.0]
    assert answer_tag_format_reward(completions=[text, "<answer> dog </answer>", "<answer> dog"]) == [0.0, 1.0, 0.0]


# --- solver, verifier, CoT ------------------------------------------------------------------------------------------
def test_bfs_solver_hand_case():
    board = Board(GRID)
    # Box at (1, 2), target at (1, 3), player at (2, 2): step left, up, then push right (3 moves); by hand.
    assert board.plan() == [3, 1, 4]
    assert board.optimal_first_actions() == {3}
    assert Board(("#####", "#PXO#", "#####")).plan() == [4]


def test_sokoban_reward_accepts_any_optimal_first_move():
    # Player at (1,1), box at (2,2), target at (3,2): down-then-... vs right-then-...; both shortest (by hand: the box
    # must be pushed down once from (1,2); the player reaches (1,2) in one move: Right).
    grid = ["######", "#P___#", "#_X__#", "#_O__#", "#____#", "######"]
    assert Board(grid).plan() == [4, 2]
    std = json.dumps({"1": "Up", "2": "Down", "3": "Left", "4": "Right"})
    got = remapped_action_reward(
        completions=[
            "<answer> Right </answer>",
            "<answer> Down </answer>",
            "<answer> Right Down </answer>",
        ],  # fmt: skip
        action_mapping=[std] * 3,
        actions=[[4]] * 3,
        grid=[grid] * 3,
    )
    assert got == [1.0, 0.0, 0.0]


def test_reward_uses_the_rows_own_map():
    a = json.dumps({"1": "cat", "2": "dog", "3": "bird", "4": "fish"})
    b = json.dumps({"1": "dog", "2": "cat", "3": "bird", "4": "fish"})
    got = remapped_action_reward(completions=["<answer> cat </answer>"] * 2, action_mapping=[a, b], actions=[[1], [1]])
    assert got == [1.0, 0.0]


def test_cot_target_rerenders_reasoning_with_the_rows_words():
    out = to_cot_target(diversify_action_vocab(Dataset.from_list([{"prompt": standard_sokoban_prompt(GRID),
                                                                   "actions": [3], "grid": list(GRID)}]),
                                               fixed_words=["cat", "dog", "bird", "fish"]))[0]  # fmt: skip
    assert out["completion"] == (
        "<think> The player is at (2, 2); the box is at (1, 2); the target is at (1, 3). A shortest plan takes 3 "
        "moves: bird cat fish. The first move is bird. </think> <answer> bird </answer>"
    )
    answer_only = to_cot_target(Dataset.from_list([{"prompt": "p", "answer": "7"}]), fmt="answer")[0]
    assert answer_only["completion"] == "<answer> 7 </answer>"
    custom = to_cot_target(Dataset.from_list([{"prompt": "p", "actions": [2], "reasoning": "go {Down}"}]))[0]
    assert custom["completion"] == "<think> go Down </think> <answer> Down </answer>"


def test_builtin_data_is_labelled_by_the_solver():
    data = build_sokoban("sft")
    assert {k: len(v) for k, v in data.items()} == {"train": 300, "test": 100, "hard": 60, "two_boxes": 60}
    assert not {tuple(g) for g in data["train"]["grid"]} & {tuple(g) for g in data["test"]["grid"]}
    for row in data["test"].select(range(20)):
        assert row_success(row["completion"][0]["content"], row)
    for name in ("cardinal", "emoji", "fake", "random"):
        variant = vocab_variant(data["test"].select(range(5)), name)
        words = VOCAB_VARIANTS.get(name) or variant[0]["action_words"]
        assert variant[0]["completion"][0]["content"] == f"<answer> {words[variant[0]['actions'][0] - 1]} </answer>"
    assert build_sokoban("sft")["train"]["grid"] == data["train"]["grid"]  # deterministic
    points = build_points("grpo")
    assert all(card_game.is_solution(r["answer"], r["card_values"]) for r in points["test"])


def test_rewards_registered_with_columns():
    assert get("reward", "remapped_action_reward").required_columns == ("action_mapping", "actions")
    fn = get("reward", "remapped_action_reward").build()
    assert fn.__name__ == "remapped_action_reward"
    assert fn(completions=[None, 5, "", "<answer>" * 10_000], action_mapping=[STD_MAP] * 4,
              actions=[[1]] * 4) == [0.0] * 4  # fmt: skip


def test_unusable_gold_scores_none_never_raises():
    fn = get("reward", "remapped_action_reward").build()
    bad_maps = [None, 5, "{not json", '{"1": "Up"}', '{"1": "Up", "2": "up", "3": "Left", "4": "Right"}',
                '{"1": "", "2": "Down", "3": "Left", "4": "Right"}']  # fmt: skip
    mappings = [STD_MAP, *bad_maps, STD_MAP, STD_MAP, STD_MAP]
    actions = [[3]] * (1 + len(bad_maps)) + [[3], [9], "3"]
    grids = [list(GRID)] * (1 + len(bad_maps)) + [["#", "##"], None, None]
    n = len(mappings)
    logged = {}
    out = fn(prompts=["p"] * n, completions=["<answer> Left </answer>"] * n, completion_ids=[[1]] * n,
             action_mapping=mappings, actions=actions, grid=grids,
             log_metric=lambda k, v: logged.__setitem__(k, v))  # fmt: skip
    assert out == [1.0] + [None] * (n - 1)
    assert logged["debunk/gold_error_rate"] == pytest.approx((n - 1) / n)
    # without a grid, the gold actions are compared; None or no actions are no gold
    out = fn(
        completions=["<answer> Left </answer>"] * 4, action_mapping=[STD_MAP] * 4, actions=[[3], None, [], [True]]
    )
    assert out == [1.0, None, None, None]

    points = get("reward", "points_answer_reward").build()
    expr = card_game.solve([11, 3, 4, 13])
    values = [[11, 3, 4, 13], None, 5, [], ["a", 3], [True, 3, 4, 13], [11, 3, 4, 13]]
    n = len(values)
    out = points(prompts=["p"] * n, completions=[f"<answer> {expr} </answer>"] * n, card_values=values,
                 target=[24] * (n - 1) + ["abc"])  # fmt: skip
    assert out == [1.0] + [None] * (n - 1)


# --- CLI ------------------------------------------------------------------------------------------------------------
def test_cli_transforms(tmp_path):
    out = tmp_path / "vocab.jsonl"
    assert main(["transform", "debunk_action_vocab", "--dataset_name", "builtin:debunk_sokoban", "--split", "test",
                 "--seed", "5", "--output", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 100 and all(len(set(r["action_words"])) == 4 for r in rows)
    assert rows[3]["action_words"] == random.Random(5 + 3).sample(list(DEFAULT_POOL), 4)
    out = tmp_path / "rules.jsonl"
    assert main(["transform", "debunk_rule_values", "--dataset_name", "builtin:debunk_points", "--split", "test",
                 "--output", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(card_game.is_solution(r["answer"], r["card_values"]) for r in rows)


def test_cli_train_sft_with_transforms(tiny_model_dir, tmp_path):
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:debunk_sokoban",
                 "--transforms", "debunk_action_vocab:seed=1,debunk_cot_target", "--output_dir", str(tmp_path / "run"),
                 "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length", "1024",
                 "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_variant_eval_callback_logs_each_variant(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerState

    callback = get("callback", "debunk_variant_eval").build(variants="standard|cardinal|hard", n=2, max_new_tokens=4)
    assert list(callback.envs) == ["standard", "cardinal", "hard"]
    assert callback.envs["cardinal"][0]["action_words"] == ["North", "South", "West", "East"]
    state = TrainerState()
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    callback.on_train_end(None, state, None, model=model, processing_class=tok)
    logged = state.log_history[-1]
    assert set(logged) == {"eval/success/standard", "eval/success/cardinal", "eval/success/hard", "step"}
    assert all(0.0 <= logged[k] <= 1.0 for k in logged if k != "step")
    for name in ("standard", "cardinal", "hard"):  # each row's verdict kept behind its mean (compare's interval)
        items = callback.item_values[f"eval/success/{name}"]
        assert len(items) == 2 and set(items) <= {0.0, 1.0} and logged[f"eval/success/{name}"] == sum(items) / 2
