"""redone2: the card's tests 1-3 by hand (general mixing share, weak-task selection, reward routing), the rule
rewards and transforms on small inputs, and card test 4: the recipe GRPO -> SFT -> GRPO on a tiny model through the
CLI (three outputs, the diagnosis written, stage 2 starting from stage 1's weights)."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from safetensors.torch import load_file

from trl_ext.cli import main
from trl_ext.run import stage as stage_module
from trl_ext.run.recipe import load_recipe
from trl_ext_plugins.redone2 import (
    WeakSelection,
    build_redone_sns,
    general_count,
    make_sns_reward,
    mix_general,
    route_rewards,
    select_weak_tasks,
    upsample_rows,
)
from trl_ext_plugins.redone2.rewards import hashtag_f1, sentiment_match, tone_reply
from trl_ext_plugins.redone2.transforms import RefineUpsample

ROOT = Path(__file__).resolve().parents[2]


def _rows(n: int, tag: str) -> Dataset:
    return Dataset.from_list([{"task": tag, "prompt": f"{tag} {i}", "completion": f"c{i}"} for i in range(n)])


# --- card test 1: mix_general


def test_general_rows_are_the_share_r_of_the_mixture():
    mixed = mix_general(_rows(90, "a"), _rows(200, "general"), ratio=0.1, seed=3)
    assert len(mixed) == 100
    assert mixed["source"].count("general") == 10 and mixed["source"].count("general") / len(mixed) == 0.1
    assert sorted(mixed["prompt"][i] for i in range(100) if mixed["source"][i] == "domain") == sorted(
        f"a {i}" for i in range(90)
    )
    assert general_count(90, 0.1) == 10 and general_count(30, 0.25) == 10  # r|S|/(1-r) by hand


def test_no_ratio_adds_nothing_and_the_same_seed_draws_the_same_rows():
    assert mix_general(_rows(90, "a"), _rows(200, "general"), 0.0, 3)["source"] == ["domain"] * 90
    first = mix_general(_rows(90, "a"), _rows(200, "general"), 0.1, 3)
    again = mix_general(_rows(90, "a"), _rows(200, "general"), 0.1, 3)
    other = mix_general(_rows(90, "a"), _rows(200, "general"), 0.1, 4)
    assert first["prompt"] == again["prompt"] and first["prompt"] != other["prompt"]


def test_a_general_pool_too_small_is_refused():
    with pytest.raises(ValueError, match="general rows needed"):
        mix_general(_rows(90, "a"), _rows(5, "general"), 0.1)


# --- card test 2: select_weak_tasks

SCORES = {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.2}


def test_the_bottom_half_by_score_is_weak():
    assert select_weak_tasks(SCORES, None, WeakSelection(weak_frac=0.5)) == ["b", "d"]


def test_threshold_mode_uses_the_task_threshold_else_the_default():
    cfg = WeakSelection("threshold", weak_thresholds={"a": 0.95}, default_threshold=0.5)
    assert select_weak_tasks(SCORES, None, cfg) == ["a", "b", "d"]


def test_gain_mode_ranks_by_gain_over_the_base():
    base = {"a": 0.2, "b": 0.35, "c": 0.1, "d": 0.0}  # gains a .7, b .05, c .5, d .2
    assert select_weak_tasks(SCORES, base, WeakSelection("gain")) == ["b", "d"]
    assert select_weak_tasks(SCORES, base, WeakSelection("gain", gain_delta=0.1)) == ["b"]
    with pytest.raises(ValueError, match="base model"):
        select_weak_tasks(SCORES, None, WeakSelection("gain"))


# --- card test 3: route_rewards


def test_each_task_reward_sees_only_its_rows_and_others_get_none():
    calls = {}

    def reward_for(task, value):
        def reward(prompts, completions, **columns):
            calls[task] = (list(prompts), list(completions), list(columns["extra"]))
            return [value + len(c) for c in completions]

        return reward

    routed = route_rewards({"a": reward_for("a", 1.0), "b": reward_for("b", 10.0)})
    out = routed(
        prompts=["p0", "p1", "p2", "p3"],
        completions=["x", "yy", "zzz", "w"],
        task=["a", "b", "a", "c"],
        extra=[0, 1, 2, 3],
    )
    assert out == [2.0, 12.0, 4.0, None]  # order kept; no reward for c: None, not 0
    assert calls["a"] == (["p0", "p2"], ["x", "zzz"], [0, 2])
    assert calls["b"] == (["p1"], ["yy"], [1])


# --- the toy tasks' rule rewards and data


def test_the_rule_rewards_by_hand():
    assert hashtag_f1("#Coffee #yoga", "#coffee #garden") == pytest.approx(0.5)  # p = r = 1/2
    assert hashtag_f1("no tags", "#coffee") == 0.0
    assert sentiment_match("Negative, not positive.", "negative") == 1.0
    assert sentiment_match("positive", "neutral") == 0.0
    assert tone_reply("So glad you liked it! Cheers!") == 1.0
    assert tone_reply(" ".join(["word"] * 30) + " Cheers!") == 0.5
    assert tone_reply("") == 0.0


def test_the_builtin_data_and_its_routed_reward_agree():
    rl, sft, general = build_redone_sns("rl"), build_redone_sns("sft"), build_redone_sns("general")
    assert (len(rl["train"]), len(rl["test"]), len(general["train"]) + len(general["test"])) == (360, 90, 200)
    assert set(rl["train"]["task"]) == {"hashtags", "sentiment", "tone_reply"}
    seen = {m[0]["content"] for m in general["train"]["prompt"]}
    assert not seen & {m[0]["content"] for m in general["test"]["prompt"]}  # held-out general pairs are new
    rows = sft["train"].select(range(9))
    reward = make_sns_reward()
    assert reward.__name__ == "redone_sns_reward"
    gold = reward(prompts=rows["prompt"], completions=rows["completion"], task=rows["task"], answer=rows["answer"])
    assert gold == [1.0] * 9  # the demonstrations are perfect answers
    assert reward(prompts=["p"], completions=["#a"], task=["general"], answer=["#a"]) == [None]


def test_unusable_gold_scores_none_never_raises():
    reward = make_sns_reward()
    cases = {  # task: (completion, a valid gold and its reward, bad golds)
        "hashtags": ("#a #b", ("#a #b", 1.0), [None, 5, ["#a"]]),
        "sentiment": ("positive", ("positive", 1.0), [None, 1, "", "happy", ["positive"]]),
        "tone_reply": ("Great! Cheers!", ("Cheers!", 1.0), [None, 3, "", "   "]),
    }
    for task, (completion, (gold, value), bad) in cases.items():
        logged = {}
        n = 1 + len(bad)
        out = reward(
            prompts=["p"] * n,
            completions=[completion] * n,
            completion_ids=[[1]] * n,
            task=[task] * n,
            answer=[gold, *bad],
            log_metric=lambda k, v, logged=logged: logged.__setitem__(k, v),
        )
        assert out == [value] + [None] * len(bad), task
        assert logged[f"redone/gold_error_rate/{task}"] == pytest.approx(len(bad) / n)
    # a hashtag gold without hashtags is the empty set (both empty: 1), not an error
    assert reward(prompts=["p"], completions=["none"], task=["hashtags"], answer=[""]) == [1.0]


def test_upsampling_repeats_weak_rows_and_one_changes_nothing(tmp_path):
    tasks = ["a", "b", "a", "c"]
    assert upsample_rows(tasks, ["a"], 1.0) == [0, 1, 2, 3]
    assert sorted(upsample_rows(tasks, ["a"], 2.0)) == [0, 0, 1, 2, 2, 3]
    assert len(upsample_rows(tasks, ["a"], 1.5)) == 5  # one of the two weak rows once more
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"weak_tasks": ["a"]}))
    ds = Dataset.from_list([{"task": t, "prompt": str(i)} for i, t in enumerate(tasks)])
    out = RefineUpsample(refine_weak_upsample=3.0, diagnosis_path=str(path))(ds)
    assert sorted(out["prompt"]) == ["0", "0", "0", "1", "2", "2", "2", "3"]


# --- card test 4: the recipe on a tiny model through the CLI


def test_the_shipped_recipe_is_rl_then_sft_then_rl():
    recipe = load_recipe(ROOT / "examples" / "recipes" / "redone2.yaml")
    assert [s["method"] for s in recipe["stages"]] == ["grpo", "sft", "grpo"]
    assert recipe["stages"][1]["transforms"][0]["general_mix_ratio"] == 0.1
    assert (ROOT / "plugins" / "redone2" / "recipes" / "redone2.yaml").read_text() == (
        ROOT / "examples" / "recipes" / "redone2.yaml"
    ).read_text()


def test_the_recipe_runs_three_stages_and_stage_two_starts_from_stage_one(tiny_model_dir, tmp_path, monkeypatch):
    built = {}
    build = stage_module.build_trainer

    def recording(stage, dataset):
        trainer, tokenizer = build(stage, dataset)
        key = f"{len(built) + 1}-{stage.method.name}"
        built[key] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, dataset, trainer
        return trainer, tokenizer

    monkeypatch.setattr(stage_module, "build_trainer", recording)
    recipe = load_recipe(ROOT / "examples" / "recipes" / "redone2.yaml")
    recipe.update(model_name_or_path=tiny_model_dir, output_dir=str(tmp_path / "run"), logging_steps=1)
    for stage in recipe["stages"]:
        stage.update(max_steps=1, per_device_train_batch_size=4, learning_rate=1e-3)
        if stage["method"] == "grpo":
            stage.update(num_generations=2, max_completion_length=6)
    for stage in recipe["stages"]:
        stage["callbacks"][0].update(
            base_model_name_or_path=tiny_model_dir, num_eval=1, max_new_tokens=4, num_general=4
        )
    diagnose = recipe["stages"][1]["transforms"][0]
    diagnose.update(base_model_name_or_path=tiny_model_dir, num_eval=2, max_new_tokens=4)
    recipe["stages"][2]["transforms"][0]["refine_weak_upsample"] = 2.0
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0

    root = tmp_path / "run"
    dirs = [root / "stage-1-grpo", root / "stage-2-sft", root / "stage-3-grpo"]
    assert all((d / "model.safetensors").exists() for d in dirs)
    diagnosis = json.loads((root / "redone_diagnosis.json").read_text())
    assert set(diagnosis["scores"]) == set(diagnosis["baseline"]) == {"hashtags", "sentiment", "tone_reply"}
    assert len(diagnosis["weak_tasks"]) == 2  # round(0.5 * 3)
    assert diagnosis["model"] == str(dirs[0])
    # Stage 2 starts from stage 1's saved weights.
    saved = load_file(str(dirs[0] / "model.safetensors"))
    start, data, _ = built["2-sft"]
    for key, value in saved.items():
        torch.testing.assert_close(start[key], value, rtol=0, atol=0, msg=key)
    train = data["train"]
    weak = set(diagnosis["weak_tasks"])
    assert set(train["task"]) <= weak | {"general"}
    n_domain = train["source"].count("domain")
    assert n_domain == 240 and train["source"].count("general") == general_count(n_domain, 0.1)
    tokens = diagnosis["sft_tokens"]
    assert tokens["domain"] > 0 and tokens["general"] > 0
    assert tokens["general_share"] == pytest.approx(tokens["general"] / (tokens["domain"] + tokens["general"]))
    # Stage 3 trains from stage 2's output with the weak tasks' rows doubled.
    _, data3, _ = built["3-grpo"]
    tasks = list(data3["train"]["task"])
    assert len(tasks) == 360 + 240 and all(tasks.count(t) == 240 for t in weak)
    # Each stage reports its per-task scores and the general NLL against the base (the first stage's input).
    for key, (_, _, trainer) in built.items():
        name = dirs[int(key[0]) - 1].name
        logged = {k: v for entry in trainer.state.log_history for k, v in entry.items() if k.startswith("redone/")}
        assert {f"redone/{name}/{t}" for t in ("hashtags", "sentiment", "tone_reply", "mean")} <= set(logged)
        assert "redone/general_nll" in logged and "redone/general_delta" in logged
    assert json.loads((root / "redone_diagnosis.json").read_text())["weak_tasks"] == diagnosis["weak_tasks"]
