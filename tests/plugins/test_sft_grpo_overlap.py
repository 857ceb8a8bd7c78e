"""sft_grpo_overlap: the card's five tests (shared/papers/sft_grpo_overlap.md) with expected values from set
arithmetic, math.comb by hand and brute-force enumeration; the built-in task's checkers; the reward's logs; the two
transforms through `trl-ext transform`; and the SFT -> GRPO recipe through the CLI on a tiny model."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from pathlib import Path
from unittest import mock

import pytest
import yaml

import trl_ext
from trl_ext.cli import main
from trl_ext.compare.metrics import pass_at_k
from trl_ext.data.curation import curation_scope
from trl_ext_plugins.sft_grpo_overlap import (
    OverlapPassAtKCallback,
    build_formal_arith,
    compile_check,
    evaluate_pass_at_k,
    formal_checks,
    make_verifier_reward,
    normalized_key,
    overlap_metrics,
    overlap_split,
    pass_at_k_figures,
    pass_at_k_items,
    semantic_check,
)
from trl_ext_plugins.sft_grpo_overlap.split import make_grpo_rows, make_sft_rows

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "sft_grpo_overlap.yaml"


def pool(n: int) -> list[dict]:
    return [{"prompt": f"statement number {i}", "reference": f"theorem : {i} + 0 = {i}"} for i in range(n)]


def prompt_of(english: str) -> list[dict]:
    return [{"role": "user", "content": f"Formalize this.\n{english}"}]


# --- card test 1: exact overlap counts, limiting cases, determinism ------------------------------------------------
def test_card_1_overlap_counts():
    sft, grpo = overlap_split(pool(1000), n_sft=400, n_grpo=200, overlap=0.3, seed=0)
    sft_prompts = set(sft["prompt"])
    assert len(sft) == 400 and len(sft_prompts) == 400 and len(grpo) == 200 and len(set(grpo["prompt"])) == 200
    shared = [p for p in grpo["prompt"] if p in sft_prompts]
    assert len(shared) == 60 and len(grpo) - len(shared) == 140
    assert grpo["in_sft"] == [p in sft_prompts for p in grpo["prompt"]]  # the column says what the sets say

    sft0, grpo0 = overlap_split(pool(1000), 400, 200, overlap=0.0, seed=0)
    assert not set(sft0["prompt"]) & set(grpo0["prompt"]) and not any(grpo0["in_sft"])
    sft1, grpo1 = overlap_split(pool(1000), 400, 200, overlap=1.0, seed=0)
    assert set(grpo1["prompt"]) <= set(sft1["prompt"]) and all(grpo1["in_sft"])

    again = overlap_split(pool(1000), 400, 200, overlap=0.3, seed=0)
    assert again[0].to_list() == sft.to_list() and again[1].to_list() == grpo.to_list()
    other = overlap_split(pool(1000), 400, 200, overlap=0.3, seed=1)
    assert other[0]["prompt"] != sft["prompt"]


def test_shared_count_rounds_halves_up_and_overlap_is_checked():
    _, grpo = overlap_split(pool(100), n_sft=20, n_grpo=5, overlap=0.5)  # 2.5 -> 3 (Python's round gives 2)
    assert sum(grpo["in_sft"]) == 3
    with pytest.raises(ValueError, match="overlap=1.5"):
        overlap_split(pool(100), 20, 5, overlap=1.5)
    with pytest.raises(ValueError, match="n_sft=10 has fewer"):
        overlap_split(pool(100), 10, 20, overlap=1.0)  # 20 shared items from a 10-item SFT set


# --- card test 2: running out of fresh items --------------------------------------------------------------------------
def test_card_2_not_enough_fresh_items():
    with pytest.raises(ValueError, match="200 fresh GRPO prompts needed .* only 100"):
        overlap_split(pool(500), n_sft=400, n_grpo=200, overlap=0.0)
    sft, grpo = overlap_split(pool(500), n_sft=400, n_grpo=200, overlap=0.5)  # 100 fresh: exactly enough
    assert sum(grpo["in_sft"]) == 100 and len(set(grpo["prompt"]) - set(sft["prompt"])) == 100


# --- card test 3: pass@k ------------------------------------------------------------------------------------------------
def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of k-subsets of n samples (c of them correct) holding a correct one, by enumeration."""
    subsets = list(itertools.combinations([True] * c + [False] * (n - c), k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_card_3_pass_at_k_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # C(7,5)/C(10,5)
    assert pass_at_k(10, 3, 5) == pytest.approx(0.91667, abs=1e-5)
    assert pass_at_k(5, 5, 3) == 1.0 and pass_at_k(5, 0, 1) == 0.0
    for n, c, k in [(10, 3, 5), (8, 2, 3), (6, 5, 2), (7, 0, 4)]:
        assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))


def test_pass_at_k_figures_average_over_problems_and_give_the_gap():
    verdicts = {
        "compile": [[True] * 3 + [False] * 7, [True] * 10],
        "semantic": [[True] + [False] * 9, [False] * 10],
    }
    figures = pass_at_k_figures(verdicts, (1, 5))
    assert figures["eval/compile_pass@1"] == pytest.approx((0.3 + 1.0) / 2)
    assert figures["eval/semantic_pass@1"] == pytest.approx(0.1 / 2)
    assert figures["eval/compile_pass@5"] == pytest.approx((brute_pass_at_k(10, 3, 5) + 1.0) / 2)
    assert figures["eval/semantic_pass@5"] == pytest.approx(brute_pass_at_k(10, 1, 5) / 2)  # 0.5 / 2
    assert figures["eval/compile_semantic_gap@5"] == pytest.approx(
        figures["eval/compile_pass@5"] - figures["eval/semantic_pass@5"]
    )
    with pytest.raises(ValueError, match="n >= k"):
        pass_at_k_figures({"compile": [[True, False]]}, (3,))
    # the per-problem values behind the means (compare's interval over the problems)
    items = pass_at_k_items(verdicts, (1,))
    assert items["eval/compile_pass@1"] == pytest.approx([0.3, 1.0])
    assert items["eval/semantic_pass@1"] == pytest.approx([0.1, 0.0])
    assert items["eval/compile_semantic_gap@1"] == pytest.approx([0.2, 1.0])


def test_evaluate_pass_at_k_judges_each_problem_s_samples(monkeypatch):
    prompts = [prompt_of("the sum of 3 and 4 is 7"), prompt_of("5 minus 2 equals 3")]
    samples = [
        ["theorem : 4 + 3 = 7", "theorem : 3 + 4 = 8", "nonsense", "theorem : 3 + 4 = 7"],  # 3 compile, 2 faithful
        ["theorem : 2 - 5 = 3", "theorem : 5 - 2 = 3", "theorem 5-2=3", "theorem : 5 - 2 = 3"],  # 3 compile, 2
    ]
    calls = {}

    def fake_generate(model, tokenizer, ps, **kwargs):
        calls.update(kwargs)
        return [mock.Mock(text=t) for row in samples for t in row]

    monkeypatch.setattr("trl_ext.inference.generation.generate_completions", fake_generate)
    figures = evaluate_pass_at_k(mock.Mock(device="cpu"), None, prompts, k_list=(1, 2), n=4)
    assert calls["num_return_sequences"] == 4 and calls["do_sample"] is True
    assert figures["eval/compile_pass@1"] == pytest.approx(0.75)
    assert figures["eval/semantic_pass@1"] == pytest.approx(0.5)
    assert figures["eval/compile_pass@2"] == pytest.approx(1 - 0 / 6)  # 1 failure: C(1,2) = 0
    assert figures["eval/semantic_pass@2"] == pytest.approx(1 - math.comb(2, 2) / math.comb(4, 2))
    assert figures["eval/compile_semantic_gap@1"] == pytest.approx(0.25)
    # the callback logs the same figures and keeps each problem's value: 3 of 4 compile, 2 of 4 faithful, per problem
    from trl_ext import get

    callback = get("callback", "overlap_pass_at_k").build(n=4, k_list="1+2")
    callback._prompts = prompts
    logged_figures = callback.evaluate(mock.Mock(device="cpu"), None)
    assert logged_figures == pytest.approx(figures)
    assert callback.item_values["eval/compile_pass@1"] == pytest.approx([0.75, 0.75])
    assert callback.item_values["eval/semantic_pass@1"] == pytest.approx([0.5, 0.5])


# --- card test 4: overlap keyed on normalised prompts ---------------------------------------------------------------
def test_card_4_whitespace_duplicates_count_as_one_item():
    base = pool(100)
    variants = [{**row, "prompt": "  " + row["prompt"].replace(" ", "   ") + "\n"} for row in base]
    mixed = [row for pair in zip(base, variants, strict=True) for row in pair]  # 200 rows, 100 distinct items
    sft, grpo = overlap_split(mixed, n_sft=50, n_grpo=50, overlap=0.0, seed=3)
    sft_keys = {normalized_key(p) for p in sft["prompt"]}
    assert len(sft_keys) == 50 and not sft_keys & {normalized_key(p) for p in grpo["prompt"]}
    with pytest.raises(ValueError, match="only 40"):  # 100 distinct items, not 200: 60 SFT leave 40 fresh
        overlap_split(mixed, n_sft=60, n_grpo=50, overlap=0.0)
    assert normalized_key(prompt_of("a  b ")) == normalized_key(prompt_of("a b"))
    assert normalized_key("a b", hashed=True) == normalized_key(" a\tb", hashed=True) != normalized_key("a c", True)


def test_overlap_key_may_name_another_column():
    rows = [{"prompt": f"p{i}", "problem_id": i // 2} for i in range(40)]  # two prompts per problem
    sft, grpo = overlap_split(rows, 10, 10, overlap=0.0, overlap_key="problem_id")
    assert not set(sft["problem_id"]) & set(grpo["problem_id"])
    with pytest.raises(ValueError, match="no 'missing' column"):
        overlap_split(rows, 10, 10, overlap_key="missing")


# --- card test 5: the verifier reward ignores the judge at w_semantic = 0 -------------------------------------------
def test_card_5_judge_never_called_with_zero_semantic_weight():
    judge = mock.Mock(return_value=True)
    reward = make_verifier_reward(compile_check, judge, w_compile=1.0, w_semantic=0.0)
    completions = ["theorem : 1 + 2 = 3", "garbage", "theorem : 9 * 9 = 80"]
    assert reward(prompts=["p"] * 3, completions=completions) == [1.0, 0.0, 1.0]
    judge.assert_not_called()


def test_verifier_reward_hand_values_with_a_judge():
    judge = mock.Mock(side_effect=lambda prompt, text: text.endswith("3"))
    reward = make_verifier_reward(compile_check, judge, w_compile=0.5, w_semantic=2.0)
    completions = ["theorem : 1 + 2 = 3", "not a theorem 3", "theorem : 1 + 2 = 4"]
    # r = c * (w_c + w_s * s): 1 * (0.5 + 2), 0 (the judge not asked: c = 0), 1 * (0.5 + 0)
    assert reward(prompts=["p"] * 3, completions=completions) == [2.5, 0.0, 0.5]
    assert judge.call_count == 2
    with pytest.raises(ValueError, match="needs a semantic_judge"):
        make_verifier_reward(compile_check, None, w_semantic=1.0)


def test_overlap_metrics_hand_values():
    # Groups of 2 (consecutive rows with one prompt): A [1, 1] zero-variance, in SFT; B [0, 1], in SFT;
    # C [0, 0] zero-variance, fresh.
    rewards = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    prompts = ["A", "A", "B", "B", "C", "C"]
    in_sft = [True, True, True, True, False, False]
    figures = overlap_metrics(rewards, prompts, in_sft)
    assert figures == {
        "grpo/zero_variance_group_fraction": pytest.approx(2 / 3),
        "overlap/actual": pytest.approx(4 / 6),
        "grpo/reward_in_sft_rows": pytest.approx(3 / 4),
        "grpo/zero_variance_group_fraction_in_sft": pytest.approx(1 / 2),
        "grpo/reward_fresh_rows": pytest.approx(0.0),
        "grpo/zero_variance_group_fraction_fresh": pytest.approx(1.0),
    }
    assert "grpo/reward_in_sft_rows" not in overlap_metrics(rewards, prompts, [False] * 6)


def test_registered_reward_logs_through_the_trainer_and_pickles():
    reward = trl_ext.get("reward", "formal_verifier").build(w_semantic=1.0)
    logged = []
    prompts = [prompt_of("the product of 6 and 7 is 42")] * 2 + [prompt_of("8 plus 1 equals 9")] * 2
    completions = ["theorem : 7 * 6 = 42", "theorem : 6 * 7 = 41", "theorem : 8 + 1 = 9", "theorem : 8 + 1 = 9"]
    values = reward(
        prompts=prompts,
        completions=[[{"role": "assistant", "content": c}] for c in completions],
        in_sft=[True, True, False, False],
        log_metric=lambda name, value: logged.append((name, value)),
    )
    assert values == [2.0, 1.0, 2.0, 2.0]
    metrics = dict(logged)
    assert metrics["grpo/compile_rate"] == 1.0 and metrics["grpo/semantic_rate"] == pytest.approx(0.75)
    assert metrics["grpo/reward_in_sft_rows"] == pytest.approx(1.5) and metrics["grpo/reward_fresh_rows"] == 2.0
    assert metrics["grpo/zero_variance_group_fraction"] == pytest.approx(0.5)
    assert reward.__name__ == "formal_verifier_w_semantic-1.0"
    assert pickle.loads(pickle.dumps(reward))(prompts=prompts, completions=completions) == values


# --- the built-in task ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("english", "text", "compiles", "faithful"),
    [
        ("the sum of 3 and 4 is 7", "theorem : 3 + 4 = 7", True, True),
        ("the sum of 3 and 4 is 7", "theorem : 4 + 3 = 7", True, True),  # + commutes
        ("the difference of 9 and 4 is 5", "theorem : 4 - 9 = 5", True, False),  # - does not
        ("12 times 3 is not 35", "theorem:12*3!=35", True, True),
        ("the sum of 3 and 4 is 7", "theorem : 3 + 4 = 8", True, False),  # compiles, says something else
        ("the sum of 3 and 4 is greater than 5", "theorem : 3 + 4 < 5", True, False),
        ("the sum of 3 and 4 is 7", "3 + 4 = 7", False, False),
        ("the sum of 3 and 4 is 7", "theorem : 3 + = 7", False, False),
    ],
)
def test_formal_checkers(english, text, compiles, faithful):
    assert compile_check(text) is compiles
    assert semantic_check(prompt_of(english), text) is faithful


def test_builtin_formal_arith():
    sft, grpo = build_formal_arith("sft"), build_formal_arith("grpo")
    assert (len(sft["train"]), len(sft["test"])) == (1000, 100)
    assert sft["train"]["prompt"] == grpo["train"]["prompt"]  # one split whatever form a stage loads
    keys = [normalized_key(p) for split in ("train", "test") for p in sft[split]["prompt"]]
    assert len(set(keys)) == len(keys)  # distinct, the test split held out
    for row in sft["train"].select(range(200)):
        assert row["completion"][0]["content"] == row["reference"]
        assert semantic_check(row["prompt"], row["reference"])
    assert trl_ext.get("dataset", "formal_arith").build(form="grpo")["train"].column_names == list(
        trl_ext.get("dataset", "formal_arith").columns["grpo"]
    )


# --- the transforms -------------------------------------------------------------------------------------------------
def test_transforms_give_both_sides_of_one_split_and_pass_held_out_rows():
    data = build_formal_arith("sft")
    options = {"n_sft": 100, "n_grpo": 40, "overlap": 0.25, "seed": 5}
    sft_rows = make_sft_rows(**options)(data["train"])
    grpo_rows = make_grpo_rows(**options)(build_formal_arith("grpo")["train"])
    assert "completion" not in grpo_rows.column_names and len(sft_rows) == 100 and len(grpo_rows) == 40
    sft_keys = {normalized_key(p) for p in sft_rows["prompt"]}
    assert [normalized_key(p) in sft_keys for p in grpo_rows["prompt"]] == grpo_rows["in_sft"]
    assert sum(grpo_rows["in_sft"]) == 10
    with curation_scope("overlap_grpo_rows", "test"):
        held_out = make_grpo_rows(**options)(data["test"])
    assert len(held_out) == 100 and not any(held_out["in_sft"]) and "completion" not in held_out.column_names
    with pytest.raises(ValueError, match="n_grpo=0"):
        make_grpo_rows(n_grpo=0)


def test_cli_transform_writes_the_grpo_side(tmp_path, capsys):
    out = {side: tmp_path / f"{side}.jsonl" for side in ("sft", "grpo")}
    flags = ["--dataset_name", "builtin:formal_arith", "--split", "train", "--n_sft", "300", "--n_grpo", "80"]
    for side in out:
        assert main(["transform", f"overlap_{side}_rows", *flags, "--overlap", "0.3", "--output", str(out[side])]) == 0
    assert "overlap/actual: 0.3" in capsys.readouterr().out
    sft = [json.loads(line) for line in out["sft"].read_text().splitlines()]
    grpo = [json.loads(line) for line in out["grpo"].read_text().splitlines()]
    sft_statements = {row["statement"] for row in sft}
    assert len(sft) == 300 and len(grpo) == 80
    assert sum(row["statement"] in sft_statements for row in grpo) == 24 == sum(row["in_sft"] for row in grpo)


# --- the callback and the recipe ---------------------------------------------------------------------------------------
def test_callback_validates_its_options():
    with pytest.raises(ValueError, match="needs n >= k"):
        OverlapPassAtKCallback(n=4, k_list="1+8")
    with pytest.raises(ValueError, match="k_list"):
        OverlapPassAtKCallback(k_list="one")
    with pytest.raises(ValueError, match="package.module:function"):
        OverlapPassAtKCallback(semantic_judge="not a path")
    callback = OverlapPassAtKCallback(compile_check="trl_ext_plugins.sft_grpo_overlap.formal:compile_check")
    assert callback.compile_check is compile_check and callback.k_list == [1, 8]
    assert set(formal_checks(compile_check)) == {"compile"}


def test_registered_recipe_is_the_example_file():
    assert trl_ext.get("recipe", "sft_grpo_overlap").load() == yaml.safe_load(RECIPE.read_text())


def test_recipe_runs_sft_then_grpo_through_the_cli(tiny_model_dir, tmp_path, capfd):
    recipe = yaml.safe_load(RECIPE.read_text())
    sft, grpo = recipe["stages"]
    split_keys = ("n_sft", "n_grpo", "overlap", "seed")
    assert {k: sft["transforms"][0][k] for k in split_keys} == {k: grpo["transforms"][0][k] for k in split_keys}
    assert grpo["transforms"][0]["overlap"] == 0.0  # the paper's advice is the default
    recipe.update(model_name_or_path=tiny_model_dir, output_dir=str(tmp_path / "runs"), logging_steps=1)
    for stage in recipe["stages"]:
        stage["transforms"][0].update(n_sft=16, n_grpo=4, overlap=1.0)  # every GRPO row from the SFT set
    assert sft["callbacks"] == grpo["callbacks"]  # SFT-only and SFT -> GRPO figures on the same problems
    callbacks = "overlap_pass_at_k:num_problems=2:n=2:k_list=1+2:max_new_tokens=6"
    sft.update(max_steps=1, per_device_train_batch_size=2, max_length=512, callbacks=callbacks)
    grpo.update(
        max_steps=1, per_device_train_batch_size=4, num_generations=2, max_completion_length=8, callbacks=callbacks
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0
    out = "".join(capfd.readouterr())
    first, second = tmp_path / "runs" / "stage-1-sft", tmp_path / "runs" / "stage-2-grpo"
    assert (first / "model.safetensors").exists() and (second / "model.safetensors").exists()
    assert f"model_name_or_path: {first}" in (second / "README.md").read_text()
    assert "'overlap/actual': '1'" in out and "grpo/reward_in_sft_rows" in out
    assert "grpo/reward_fresh_rows" not in out
    assert out.count("overlap_pass_at_k at step 1: eval/compile_pass@1=") == 2 and "eval/compile_semantic_gap@2" in out


def test_trl_ext_evaluate_runs_the_callback_on_a_saved_model(tiny_model_dir, tmp_path):
    spec = "overlap_pass_at_k:num_problems=2:n=2:k_list=1+2:max_new_tokens=4"
    argv = ["evaluate", "--model_name_or_path", tiny_model_dir, "--callbacks", spec, "--output_dir", str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "evaluate.json").read_text()
    for name in ("eval/compile_pass@1", "eval/semantic_pass@2", "eval/compile_semantic_gap@2"):
        assert name in text
