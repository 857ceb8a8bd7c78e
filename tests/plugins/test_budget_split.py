"""budget_split: the card's allocation cases by hand, the disjoint seeded draw, the stage transforms on the built-in
pool, and the recipe end to end on a tiny model through the CLI (SFT -> DPO with the SFT model as DPO's reference;
the whole budget on SFT skips DPO; f = 0 skips SFT)."""

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from trl_ext import get
from trl_ext.cli import main
from trl_ext.run import stage as stage_module
from trl_ext.run.progress import MARKER
from trl_ext.run.recipe import load_recipe
from trl_ext.run.stage import apply_transforms
from trl_ext_plugins.budget_split import (
    BudgetOptions,
    allocate_budget,
    budget_recipe,
    build_budget_arith,
    run_budgeted_pipeline,
    select_budget_rows,
)
from trl_ext_plugins.budget_split.allocation import prompt_key

ROOT = Path(__file__).resolve().parents[2]

# --- the allocator: the card's cases (tests 1-3), by hand


def test_a_budget_under_a_thousand_examples_goes_all_to_sft():
    plan = allocate_budget(800)  # card test 1
    assert (plan.f, plan.n_sft, plan.n_pref) == (1.0, 800, 0)
    assert plan.cost_used == 800 and plan.warnings == ()


def test_a_large_general_budget_puts_a_quarter_on_sft_and_pays_pairs_at_their_cost():
    plan = allocate_budget(10_000)  # card test 2: 0.25 * 10000 = 2500; 0.75 * 10000 = 7500
    assert (plan.f, plan.n_sft, plan.n_pref) == (0.25, 2500, 7500)
    costly = allocate_budget(10_000, cost_pref=2.0)  # 7500 / 2 = 3750 pairs
    assert (costly.n_sft, costly.n_pref, costly.cost_used) == (2500, 3750, 10_000)


def test_reasoning_keeps_the_minimum_sft_share_and_warns_about_a_cold_start():
    cold = allocate_budget(10_000, sft_fraction=0.0, task_type="reasoning")  # card test 3
    assert (cold.n_sft, cold.n_pref) == (0, 10_000)
    assert len(cold.warnings) == 1 and "cold start" in cold.warnings[0]
    assert allocate_budget(10_000, sft_fraction=0.0).warnings == ()  # general task: no warning
    raised = allocate_budget(10_000, task_type="reasoning", f_large=0.05)  # auto: max(0.05, 0.1)
    assert (raised.f, raised.n_sft, raised.n_pref) == (0.1, 1000, 9000)
    assert allocate_budget(10_000, task_type="reasoning").f == 0.25  # already above f_min_sft


def test_the_threshold_counts_equivalent_examples_and_the_floors_are_exact():
    assert allocate_budget(999).f == 1.0 and allocate_budget(1000).f == 0.25  # "below 1,000"
    # B / c_s = 1000 / 2.5 = 400 examples < 1000: SFT only, 400 demonstrations costing the whole budget.
    plan = allocate_budget(1000, cost_sft=2.5)
    assert (plan.f, plan.n_sft, plan.n_pref, plan.cost_used) == (1.0, 400, 0, 1000)
    # 0.29 * 100 is 28.999999999999996 in floats: still 29 demonstrations, and 71 pairs.
    assert (allocate_budget(100, sft_fraction=0.29).n_sft, allocate_budget(100, sft_fraction=0.29).n_pref) == (29, 71)
    # Floors leave budget unspent, never overspend: 0.5 * 11 / 3 -> 1 demo (3), 5.5 / 2 -> 2 pairs (4); 7 <= 11.
    odd = allocate_budget(11, cost_sft=3, cost_pref=2, sft_fraction=0.5)
    assert (odd.n_sft, odd.n_pref, odd.cost_used) == (1, 2, 7)
    assert odd.metrics() == {
        "budget/budget": 11.0,
        "budget/f": 0.5,
        "budget/n_sft": 1.0,
        "budget/n_pref": 2.0,
        "budget/cost_used": 7.0,
        "budget/examples_used": 3.0,
    }


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"budget": -1}, "budget=-1"),
        ({"budget": 10, "cost_pref": 0}, "cost_pref=0"),
        ({"budget": 10, "sft_fraction": 1.5}, "sft_fraction=1.5"),
        ({"budget": 10, "sft_fraction": "half"}, "sft_fraction='half'"),
        ({"budget": 10, "task_type": "math"}, "task_type='math'"),
        ({"budget": 10, "f_large": 2}, "f_large=2"),
    ],
)
def test_bad_options_are_refused_with_the_field_named(kwargs, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        allocate_budget(**kwargs)


def test_options_without_a_budget_say_how_to_give_one():
    with pytest.raises(ValueError, match="budget_sft:budget="):
        BudgetOptions.from_options("budget_sft", {"sft_fraction": 0.5})


# --- the draw (card test 4)


def test_the_draw_shares_no_prompt_between_the_stages_and_is_seeded():
    prompts = [f"q{i // 2}" for i in range(40)]  # every prompt twice: row-disjoint is not enough
    plan = allocate_budget(20, sft_fraction=0.3)  # 6 demonstrations, 14 pairs
    draw = select_budget_rows(prompts, plan, seed=3)
    assert (len(draw.sft), len(draw.pref)) == (6, 14)
    assert not {prompts[i] for i in draw.sft} & {prompts[i] for i in draw.pref}
    assert len(set(draw.sft)) == 6 and len(set(draw.pref)) == 14
    assert plan.cost_used <= plan.budget
    assert select_budget_rows(prompts, plan, seed=3) == draw
    assert select_budget_rows(prompts, plan, seed=4) != draw
    # Without the rule the pairs come from the whole pool (here they may share prompts with SFT).
    free = select_budget_rows(prompts, allocate_budget(46, sft_fraction=0.5), disjoint_prompts=False)
    assert (len(free.sft), len(free.pref)) == (23, 23)


def test_a_pool_too_small_for_the_plan_is_refused_with_the_numbers():
    prompts = [f"q{i // 2}" for i in range(40)]  # 20 distinct prompts
    with pytest.raises(ValueError, match="needs 30 preference pairs but the pool has"):
        select_budget_rows(prompts, allocate_budget(40, sft_fraction=0.25))  # 10 demos use >= 5 prompts
    with pytest.raises(ValueError, match="needs 50 SFT examples"):
        select_budget_rows(prompts, allocate_budget(50))


def test_chat_prompts_are_told_apart_by_content():
    a = [{"role": "user", "content": "x"}]
    assert prompt_key(a) == prompt_key([{"content": "x", "role": "user"}]) != prompt_key("x")


# --- the built-in pool and the stage transforms


def test_the_pool_holds_both_annotations_of_each_problem_and_the_rejections_are_the_cards_kinds():
    data = build_budget_arith("pool", n_train=60, n_test=10)
    assert (len(data["train"]), len(data["test"])) == (60, 10)
    rows = data["train"].to_list()
    assert len({prompt_key(r["prompt"]) for r in rows}) == 60
    kinds = {r["rejected_kind"] for r in rows}
    assert kinds == {"wrong_answer", "no_steps"}
    for row in rows:
        assert row["chosen"] == row["completion"] and row["chosen"] != row["rejected"]
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert chosen.endswith(f"The answer is {row['answer']}.") and "=" in chosen
        if row["rejected_kind"] == "no_steps":
            assert rejected == f"The answer is {row['answer']}."
        else:
            assert "=" in rejected and not rejected.endswith(f"The answer is {row['answer']}.")
    assert build_budget_arith("pool", n_train=60, n_test=10)["train"].to_list() == rows  # generated, deterministic


def _transformed(name: str, **options):
    from trl_ext.plugin.registry import get

    data = build_budget_arith("pool", n_train=60, n_test=10)
    return apply_transforms([(get("transform", name), options)], data, "builtin:budget_arith")


def test_the_two_transforms_draw_disjoint_rows_of_one_plan_and_leave_the_test_split_whole():
    options = {"budget": 40, "sft_fraction": 0.25, "seed": 1}  # 10 demonstrations, 30 pairs
    sft, pref = _transformed("budget_sft", **options), _transformed("budget_pref", **options)
    assert sft["train"].column_names == ["prompt", "completion", "budget_id"]
    assert pref["train"].column_names == ["prompt", "chosen", "rejected", "budget_id"]
    assert (len(sft["train"]), len(pref["train"])) == (10, 30)
    assert (len(sft["test"]), len(pref["test"])) == (10, 10)  # held-out rows: reshaped, not cut
    assert not set(sft["train"]["budget_id"]) & set(pref["train"]["budget_id"])
    assert not {prompt_key(p) for p in sft["train"]["prompt"]} & {prompt_key(p) for p in pref["train"]["prompt"]}
    pool = build_budget_arith("pool", n_train=60, n_test=10)["train"]
    for row in pref["train"]:  # each pair is the pool row it names
        assert row["chosen"] == pool[row["budget_id"]]["chosen"]
    expected = select_budget_rows(pool["prompt"], allocate_budget(40, sft_fraction=0.25), seed=1)
    assert sft["train"]["budget_id"] == expected.sft


def test_a_plan_that_gives_a_stage_nothing_empties_its_split():
    assert len(_transformed("budget_pref", budget=30)["train"]) == 0  # 30 < 1000 examples: all SFT
    assert len(_transformed("budget_sft", budget=30, sft_fraction=0)["train"]) == 0


# --- the recipe end to end (tiny model, CLI)


def test_the_shipped_recipe_is_the_cards_pipeline():
    recipe = load_recipe(ROOT / "examples" / "recipes" / "budget_split.yaml")
    sft, dpo = recipe["stages"]
    assert (sft["method"], dpo["method"]) == ("sft", "dpo")
    assert sft["skip_if_empty"] is dpo["skip_if_empty"] is True
    shared = sft["transforms"][0]
    assert {k: v for k, v in dpo["transforms"][0].items() if k != "name"} == {
        k: v for k, v in shared.items() if k != "name"
    }
    plan = BudgetOptions(**{k: v for k, v in shared.items() if k != "name"}).plan()
    assert (plan.f, plan.n_sft, plan.n_pref) == (0.25, 300, 900)  # fits the 1,500-problem pool
    assert {c["name"] for s in (sft, dpo) for c in s["callbacks"]} == {"budget_metrics"}


def _config(tmp_path: Path, model: str, run: str, **budget) -> Path:
    """The shipped recipe on the tiny model with a small budget (every component gets the same options)."""
    recipe = load_recipe(ROOT / "examples" / "recipes" / "budget_split.yaml")
    recipe.update(model_name_or_path=model, output_dir=str(tmp_path / run), logging_steps=1)
    for stage in recipe["stages"]:
        for spec in stage["transforms"] + stage["callbacks"]:
            spec.update(budget)
        stage["callbacks"][0].update(num_samples=2, max_new_tokens=8)
    path = tmp_path / f"{run}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


_FLAGS = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3"]


def test_the_recipe_trains_sft_then_dpo_with_the_sft_model_as_reference(tiny_model_dir, tmp_path, monkeypatch, capsys):
    built = {}
    build = stage_module.build_trainer

    def recording(stage, dataset):
        trainer, tokenizer = build(stage, dataset)
        built[stage.method.name] = (trainer, dataset)
        return trainer, tokenizer

    monkeypatch.setattr(stage_module, "build_trainer", recording)
    config = _config(tmp_path, tiny_model_dir, "both", budget=24, sft_fraction=0.25, task_type="general")
    assert main(["train", "--config", str(config), *_FLAGS]) == 0
    sft_dir, dpo_dir = tmp_path / "both" / "stage-1-sft", tmp_path / "both" / "stage-2-dpo"
    assert f"Model saved to {dpo_dir}" in capsys.readouterr().out
    for folder in (sft_dir, dpo_dir):
        assert json.loads((folder / MARKER).read_text())["state"] == "finished"
        plan = json.loads((folder / "budget_plan.json").read_text())["plan"]
        assert (plan["n_sft"], plan["n_pref"], plan["cost_used"]) == (6, 18, 24)
    sft_trainer, sft_data = built["sft"]
    dpo_trainer, dpo_data = built["dpo"]
    assert (len(sft_data["train"]), len(dpo_data["train"])) == (6, 18)
    assert not set(sft_data["train"]["budget_id"]) & set(dpo_data["train"]["budget_id"])
    # Card test 5: DPO's reference is the SFT output (frozen, so it still equals the saved SFT model).
    saved = load_file(str(sft_dir / "model.safetensors"))
    reference = dpo_trainer.accelerator.unwrap_model(dpo_trainer.ref_model).state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(reference[key], value, rtol=0, atol=0, msg=key)
    assert dpo_trainer.model.config._name_or_path == str(sft_dir)
    logged = [entry for entry in dpo_trainer.state.log_history if "budget/n_pref" in entry]
    assert logged and logged[0]["budget/n_pref"] == 18 and logged[0]["budget/f"] == 0.25
    assert any("budget_eval/accuracy" in entry for entry in dpo_trainer.state.log_history)


def test_the_whole_budget_on_sft_skips_dpo(tiny_model_dir, tmp_path, capsys):
    config = _config(tmp_path, tiny_model_dir, "sft_only", budget=12)  # auto, 12 < 1000: f = 1
    assert main(["train", "--config", str(config), *_FLAGS]) == 0
    out = capsys.readouterr().out
    sft_dir, dpo_dir = tmp_path / "sft_only" / "stage-1-sft", tmp_path / "sft_only" / "stage-2-dpo"
    assert "stage 2/2: dpo" in out and "no training rows" in out and f"Model saved to {sft_dir}" in out
    assert json.loads((dpo_dir / MARKER).read_text())["state"] == "skipped"
    assert not (dpo_dir / "model.safetensors").exists()
    assert main(["train", "--config", str(config), *_FLAGS]) == 0  # a rerun keeps both
    assert "(skipped by an earlier run of this recipe: kept)" in capsys.readouterr().out


def test_no_sft_share_skips_sft_and_dpo_starts_from_the_base_model_with_a_warning(
    tiny_model_dir, tmp_path, monkeypatch, caplog
):
    trained_from = []
    build = stage_module.build_trainer

    def recording(stage, dataset):
        trained_from.append(stage.model_args.model_name_or_path)
        return build(stage, dataset)

    monkeypatch.setattr(stage_module, "build_trainer", recording)
    options = BudgetOptions(budget=10, sft_fraction=0.0, task_type="reasoning")
    with caplog.at_level(logging.WARNING):
        final = run_budgeted_pipeline(
            options,
            _FLAGS,
            model_name_or_path=tiny_model_dir,
            output_dir=str(tmp_path / "dpo_only"),
        )
    assert final == str(tmp_path / "dpo_only" / "stage-2-dpo")
    assert trained_from == [tiny_model_dir]
    assert "cold start" in caplog.text
    recipe = budget_recipe(options, model_name_or_path=tiny_model_dir)
    assert recipe["stages"][1]["transforms"][0] == {"name": "budget_pref", **vars(options)}


def test_the_sweep_runs_one_pipeline_per_fraction_and_measures_each_final_model(tiny_model_dir, tmp_path):
    from trl_ext_plugins.budget_split import sweep_sft_fraction

    rows = sweep_sft_fraction(
        [1.0, 0.0],
        BudgetOptions(budget=6),
        output_dir=str(tmp_path / "sweep"),
        eval_samples=2,
        flags=_FLAGS,
        model_name_or_path=tiny_model_dir,
    )
    assert [(r["sft_fraction"], r["budget/n_sft"], r["budget/n_pref"]) for r in rows] == [(1.0, 6, 0), (0.0, 0, 6)]
    # f = 1 ends with the SFT model (DPO skipped), f = 0 with the DPO model (SFT skipped).
    assert rows[0]["model"] == str(tmp_path / "sweep" / "f=1.0" / "stage-1-sft")
    assert rows[1]["model"] == str(tmp_path / "sweep" / "f=0.0" / "stage-2-dpo")
    for row in rows:
        assert 0.0 <= row["budget_eval/accuracy"] <= 1.0 and 0.0 <= row["budget_eval/step_rate"] <= 1.0


def test_the_accuracy_callback_keeps_each_problems_verdict(monkeypatch):
    """A worked, right answer and an unworked wrong one: accuracy and step rate 0.5, items [1, 0] each (compare's
    interval over the problems)."""
    callback = get("callback", "budget_metrics").build(budget=100, num_samples=2)
    callback._rows = [{"prompt": "12 * 4?", "answer": "48"}, {"prompt": "3 + 4?", "answer": "7"}]
    answers = ["12 * 4 = 48. The answer is 48.", "I do not know."]
    monkeypatch.setattr("trl_ext.inference.generation.generate", lambda *args, **kwargs: answers)
    assert callback.evaluate(None, None) == {"budget_eval/accuracy": 0.5, "budget_eval/step_rate": 0.5}
    assert callback.item_values == {"budget_eval/accuracy": [1.0, 0.0], "budget_eval/step_rate": [1.0, 0.0]}
