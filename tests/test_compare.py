"""`trl-ext compare`: arms, metrics, and the table, CSV and plot of a run that was interrupted after its second arm
and resumed (the same table as an unbroken run, finished arms not retrained)."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from trl_ext.cli import main
from trl_ext.compare.arms import parse_arm, parse_arms
from trl_ext.compare.metrics import mean_and_interval, measure, parse_metric, pass_at_k
from trl_ext.compare.report import COLUMNS, table_rows
from trl_ext.run import stage as stage_module
from trl_ext.run.recipe import RecipeError
from trl_ext.testing import full_logits_perplexities


def test_arms_name_a_method_or_are_labelled_by_the_one_method_whose_config_has_their_keys():
    assert parse_arm("sft").method == "sft" and parse_arm("sft").label == "sft"
    arm = parse_arm("dft:asft_loss=dft")  # the form: asft_loss is a field of ASFT's config only
    assert (arm.label, arm.method, arm.options) == ("dft", "asft", {"asft_loss": "dft"})
    arm = parse_arm("base_dft=sft:loss_type=dft")
    assert (arm.label, arm.method, arm.options) == ("base_dft", "sft", {"loss_type": "dft"})
    assert parse_arm({"label": "x", "method": "otr"}).method == "otr"
    with pytest.raises(RecipeError, match="do not pick one"):
        parse_arm("mystery:learning_rate=0.1")  # every method's config has it
    with pytest.raises(RecipeError, match="not a method"):
        parse_arm("a=nosuchmethod")
    with pytest.raises(RecipeError, match="repeated: sft"):
        parse_arms(["sft", "sft:learning_rate=1e-4"])


def test_pass_at_k_is_the_unbiased_estimator():
    # 1 - C(n-c, k) / C(n, k), by hand
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # fewer failures than k: some draw of k always passes


def test_mean_and_interval_by_hand():
    mean, low, high = mean_and_interval([0.0, 1.0, 1.0, 0.0, math.nan])
    half = 1.96 * math.sqrt(1 / 3) / 2  # sample std sqrt(4 * 0.25 / 3), n = 4
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    assert mean_and_interval([0.3]) == (0.3, 0.3, 0.3)


def test_metric_specs_and_errors():
    assert parse_metric("pass@k:k=4:samples=8").label == "pass@4"
    assert parse_metric("reward:json_validity").name == "reward:json_validity"
    assert not parse_metric("perplexity").higher_is_better
    with pytest.raises(RecipeError, match="Unknown --eval metric"):
        parse_metric("bleu")


def test_a_method_training_in_phases_gets_one_record_covering_every_phase(tmp_path, monkeypatch):
    """LT-SFT calls train() once per phase, each from step 0 and with args.output_dir on the phase's folder: the arm's
    record (in the arm's folder) sums the phases' steps, and its history continues their step count."""
    from types import SimpleNamespace

    from trl_ext.compare import callback as callback_module
    from trl_ext.compare.callback import TRAIN_RECORD, CompareEvalCallback

    arm = tmp_path / "arm"
    recorder = CompareEvalCallback(parse_metric("perplexity"), rows=[], eval_every=0, output_dir=str(arm))
    monkeypatch.setattr(callback_module, "measure", lambda *a, **k: ([], {"perplexity": 1.0}))  # no real model
    model = torch.nn.Linear(3, 2)  # 8 trainable parameters
    # TRL logs num_tokens as the trainer's running total, which goes on across train() calls: 1000, then 1700
    for phase, (steps, tokens, loss) in enumerate([(30, 1000.0, 0.5), (20, 1700.0, 0.25)]):
        args = SimpleNamespace(output_dir=str(tmp_path / f"phase{phase}"), device="cpu", world_size=1)
        state = SimpleNamespace(global_step=0, is_world_process_zero=True, log_history=[])
        recorder.on_train_begin(args, state, None, model=model)
        state.global_step = steps
        recorder._measure(state, model, tokenizer=object())  # the real recorder: offset by the earlier phases
        state.log_history = [{"loss": 1.0, "entropy": 2.0}, {"loss": loss, "num_tokens": tokens, "entropy": loss / 10}]
        recorder.on_train_end(args, state, None)
    record = json.loads((arm / TRAIN_RECORD).read_text())
    assert (record["steps"], record["steps_timed"], record["num_tokens"]) == (50, 50, 1700.0)
    assert record["train_loss"] == 0.25 and record["trainable_params"] == 8
    assert record["train_entropy"] == 0.025  # the last logged entropy
    # both phases' logs, in order, tagged with the arm's stage
    assert [(e["stage"], e["loss"]) for e in record["log_history"]] == [(0, 1.0), (0, 0.5), (0, 1.0), (0, 0.25)]
    assert [h["step"] for h in record["history"]] == [30, 50]
    assert not (tmp_path / "phase1" / TRAIN_RECORD).exists()


def test_perplexity_per_row_equals_a_full_logits_computation(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    rows = [{"prompt": "2+2=", "completion": " 4"}, {"prompt": "What is 3 times 5?", "completion": " It is 15."}]
    values, figures = measure(parse_metric("perplexity"), model, tokenizer, rows)
    assert values == pytest.approx(full_logits_perplexities(model, tokenizer, rows), rel=1e-5)
    assert figures["perplexity"] == pytest.approx(sum(values) / 2)


def _argv(model_dir, out):
    return [
        "compare",
        "sft",
        "dft:asft_loss=dft",
        "otr",
        "--model_name_or_path",
        model_dir,
        "--dataset_name",
        "builtin:arith",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-3",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--logging_steps",
        "1",
        "--eval",
        "perplexity",
        "--eval_rows",
        "6",
        "--eval_every",
        "1",
        "--output_dir",
        str(out),
    ]


# Columns that measure this machine at this moment, not the arms: left out of the equality.
_TIMING = {"s/step", "CPU-s", "peak MiB"}


def _table(out: Path):
    report = json.loads((out / "compare.json").read_text())
    header, rows = table_rows(report)
    keep = [i for i, title in enumerate(header) if title not in _TIMING]
    return report, [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


@pytest.mark.slow
def test_interrupted_after_the_second_arm_and_resumed_gives_the_unbroken_runs_table(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    assert main(_argv(tiny_model_dir, tmp_path / "unbroken")) == 0
    _, header, unbroken = _table(tmp_path / "unbroken")

    out = tmp_path / "broken"
    build = stage_module.build_trainer

    def killed_in_arm_3(stage, dataset):
        if stage.config.output_dir.endswith("otr"):
            raise KeyboardInterrupt("killed before the third arm trained")
        return build(stage, dataset)

    monkeypatch.setattr(stage_module, "build_trainer", killed_in_arm_3)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(tiny_model_dir, out))
    assert not (out / "compare.json").exists()
    first_arm = (out / "sft" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(stage_module, "build_trainer", build)
    capsys.readouterr()

    assert main(_argv(tiny_model_dir, out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("kept") == 2  # sft and dft were not retrained
    assert (out / "sft" / "model.safetensors").stat().st_mtime_ns == first_arm
    report, resumed_header, resumed = _table(out)
    assert resumed_header == header and resumed == unbroken
    assert [arm["arm"] for arm in report["arms"]] == ["sft", "dft", "otr"]
    assert all([step for step, _ in arm["history"]] == [0, 1, 2] for arm in report["arms"])  # every step, then final
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The CSV holds the table's numbers, unformatted.
    with (out / "compare.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    header_all, table = table_rows(report)
    for csv_row, table_row in zip(csv_rows, table, strict=True):
        cells = dict(zip(header_all, table_row, strict=True))
        assert cells["perplexity"] == f"{float(csv_row['perplexity']):.4f}"
        assert cells["95% CI"] == f"[{float(csv_row['ci_low']):.4f}, {float(csv_row['ci_high']):.4f}]"
        assert cells["train loss"] == f"{float(csv_row['train_loss']):.4f}"
        assert cells["entropy"] == f"{float(csv_row['train_entropy']):.3f}"  # SFTTrainer logs its token entropy
        assert cells["trainable"] == f"{int(csv_row['trainable_params']):,}"
        assert cells["steps"] == csv_row["steps"] == "2"
    assert len(COLUMNS) == len(header_all)


def _chain_config(tmp_path: Path, model_dir: str, out: Path) -> str:
    """Plain SFT for 2 steps against an arm of two 1-step SFT stages at different learning rates (the second trains
    the first's model), every arm evaluated each step."""
    import yaml

    config = {
        "arms": [
            "sft",
            {
                "label": "two_stage",
                "stages": [
                    {"method": "sft", "max_steps": 1, "learning_rate": 1e-3},
                    {"method": "sft", "max_steps": 1, "learning_rate": 3e-4},
                ],
            },
        ],
        "eval": "perplexity",
        "eval_rows": 6,
        "eval_every": 1,
        "model_name_or_path": model_dir,
        "dataset_name": "builtin:arith",
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "output_dir": str(out),
    }
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_chained_arm_trains_its_stages_in_turn_and_reports_them_as_one(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    from safetensors.torch import load_file

    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.compare.metrics import measure as measure_metric
    from trl_ext.models import load_tokenizer, load_trained

    assert parse_arm({"label": "x", "stages": [{"method": "sft"}, {"method": "asft"}]}).methods == "sft -> asft"
    with pytest.raises(RecipeError, match="drop its model_name_or_path"):
        parse_arm({"label": "x", "stages": [{"method": "sft"}, {"method": "sft", "model_name_or_path": "m"}]})

    out = tmp_path / "unbroken"
    assert main(["compare", "--config", _chain_config(tmp_path, tiny_model_dir, out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    chain = next(arm for arm in report["arms"] if arm["arm"] == "two_stage")
    assert chain["method"] == "sft -> sft" and chain["steps"] == 2
    # each stage states its own budget; both stages draw the same seeded first batch, so trained the same tokens
    stages = chain["per_stage"]
    assert [stage["steps"] for stage in stages] == [1, 1]
    assert [e["stage"] for e in chain["log_history"] if "loss" in e] == [0, 1]  # one logged step per stage
    assert stages[0]["trained_tokens"] == stages[1]["trained_tokens"] > 0
    assert stages[0]["trained_tokens"] + stages[1]["trained_tokens"] == chain["num_tokens"]
    header_all, table = table_rows(report)
    cells = dict(zip(header_all, table[[arm["arm"] for arm in report["arms"]].index("two_stage")], strict=True))
    tokens = f"{stages[0]['trained_tokens']:,.0f}"
    assert (cells["steps"], cells["tokens"]) == ("1 + 1", f"{tokens} + {tokens}")
    first_stage = out / "two_stage" / "stage-1-sft"
    assert [step for step, _ in chain["history"]] == [0, 1, 2]
    # the point at step 1 is the first stage's final model, measured on its own here
    metric = parse_metric("perplexity")
    rows = eval_rows(Comparison(arms=[], metric=metric, eval_rows=6), "builtin:arith")
    _, figures = measure_metric(metric, load_trained(first_stage), load_tokenizer(str(first_stage)), rows)
    assert chain["history"][1][1] == pytest.approx(figures["perplexity"], rel=1e-5)

    # the same two stages as a plain recipe end with the same model
    import yaml

    recipe = {
        "model_name_or_path": tiny_model_dir,
        "dataset_name": "builtin:arith",
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "output_dir": str(tmp_path / "recipe"),
        "stages": [
            {"method": "sft", "max_steps": 1, "learning_rate": 1e-3},
            {"method": "sft", "max_steps": 1, "learning_rate": 3e-4},
        ],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(tmp_path / "recipe.yaml")]) == 0
    arm_weights = load_file(str(out / "two_stage" / "model.safetensors"))
    recipe_weights = load_file(str(tmp_path / "recipe" / "stage-2-sft" / "model.safetensors"))
    assert max((arm_weights[k] - recipe_weights[k]).abs().max().item() for k in arm_weights) < 1e-6

    # killed as the second stage starts; the rerun keeps stage 1 and reports the unbroken run's table
    broken = tmp_path / "broken"
    build = stage_module.build_trainer

    def killed_in_stage_2(stage, dataset):
        if stage.config.output_dir.endswith("two_stage"):
            raise KeyboardInterrupt("killed before the chain's second stage trained")
        return build(stage, dataset)

    monkeypatch.setattr(stage_module, "build_trainer", killed_in_stage_2)
    with pytest.raises(KeyboardInterrupt):
        main(["compare", "--config", _chain_config(tmp_path, tiny_model_dir, broken)])
    monkeypatch.setattr(stage_module, "build_trainer", build)
    capsys.readouterr()
    assert main(["compare", "--config", _chain_config(tmp_path, tiny_model_dir, broken)]) == 0
    assert capsys.readouterr().out.count("kept") == 2  # the sft arm and the chain's first stage
    _, header, unbroken = _table(out)
    _, resumed_header, resumed = _table(broken)
    assert resumed_header == header and resumed == unbroken


def test_choice_is_rank_classification_against_a_full_logits_computation(tiny_model_dir):
    """Each row scores both options by a plain full-vocabulary forward here; the gold is set to the more likely
    option on rows 0-1 and to the other on row 2, so the metric must give [1, 1, 0]."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    options = [" yes", " no"]
    prompts = ["Is 2 even?", "Is 7 odd?", "Is 4 odd?"]

    def loglik(prompt: str, option: str) -> float:
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        o_ids = tokenizer(option, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + o_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        return sum(logp[len(p_ids) + i - 1, t].item() for i, t in enumerate(o_ids))

    best = [max(options, key=lambda o, p=p: loglik(p, o)) for p in prompts]
    gold = [best[0], best[1], next(o for o in options if o != best[2])]
    rows = [{"prompt": p, "completion": g.strip()} for p, g in zip(prompts, gold, strict=True)]
    values, figures = measure(parse_metric("choice:options=[' yes',' no']"), model, tokenizer, rows)
    assert values == [1.0, 1.0, 0.0] and figures["choice"] == pytest.approx(2 / 3)
    per_row = [{**row, "choices": options, "label": row["completion"]} for row in rows]
    values, _ = measure(parse_metric("choice:options_column=choices:gold_column=label"), model, tokenizer, per_row)
    assert values == [1.0, 1.0, 0.0]
    with pytest.raises(RecipeError, match="give the options once"):
        parse_metric("choice")


def test_a_callback_figure_that_keeps_its_items_gets_them_as_row_values(tiny_model_dir):
    """branch_rate's figures are means over its generations: compare reads the items behind the chosen figure (so the
    table has an interval); here eval/len, each item the generated token count of one held-out prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_ext.data import load_dataset
    from trl_ext.inference.generation import generate_completions

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = parse_metric("callback:branch_rate:num_samples=3:max_new_tokens=6:figure=eval/len")
    values, figures = measure(spec, model, tokenizer, rows=[])
    prompts = load_dataset("builtin:branch_traces")["test"]["prompt"][:3]
    lengths = [g.num_tokens for g in generate_completions(model, tokenizer, prompts, 6, 8, progress=False)]
    assert values == [float(n) for n in lengths] and len(values) == 3
    assert figures == {"branch_rate/eval/len": pytest.approx(sum(lengths) / 3)}
    mean, low, high = mean_and_interval(values)
    assert low <= mean <= high


def test_a_recipe_arm_is_the_registered_recipes_stages():
    """`{recipe: redone2}` expands to the recipe file's stages (read here with yaml), its shared keys in each, less
    the keys the comparison owns; the arm's own keys go on every stage."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    recipe = yaml.safe_load((root / "plugins" / "redone2" / "recipes" / "redone2.yaml").read_text())
    arm = parse_arm({"label": "rl_sft_rl", "recipe": "redone2", "max_completion_length": 32})
    stages = arm.stages()
    assert arm.label == "rl_sft_rl" and arm.methods == "grpo -> sft -> grpo"
    assert [stage["method"] for stage in stages] == [stage["method"] for stage in recipe["stages"]]
    for stage, original in zip(stages, recipe["stages"], strict=True):
        assert stage["dataset_name"] == recipe["dataset_name"] and stage["max_completion_length"] == 32
        assert stage.get("transforms") == original.get("transforms")
        assert not {"model_name_or_path", "output_dir", "report_to", "save_strategy", "logging_steps"} & set(stage)
    with pytest.raises(RecipeError, match="not a registered recipe"):
        parse_arm({"recipe": "no_such_recipe"})
    with pytest.raises(RecipeError, match="takes its stages and methods from the recipe"):
        parse_arm({"recipe": "redone2", "method": "sft"})


def test_a_recipe_arm_trains_what_trl_ext_train_trains(tiny_model_dir, tmp_path):
    """fewshot_sfda's LP -> FT recipe as a compare arm ends with the weights `trl-ext train fewshot_sfda` gives."""
    import yaml
    from safetensors.torch import load_file

    split = "few_shot_split:part=test:k=3:seed=0:test_ratio=0.2:val_per_class=1:label_column=label"
    config = {
        "arms": [{"label": "lp_ft", "recipe": "fewshot_sfda", "max_steps": 1}],
        "eval": {"name": "choice", "options": [" positive", " negative", " neutral"]},
        "eval_split": "train",
        "eval_transforms": split,
        "eval_rows": 4,
        "model_name_or_path": tiny_model_dir,
        "dataset_name": "builtin:fewshot_sentiment",
        "output_dir": str(tmp_path / "compare"),
        "report_to": "none",
    }
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(config))
    assert main(["compare", "--config", str(tmp_path / "compare.yaml")]) == 0
    report = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert report["arms"][0]["method"] == "sft -> sft" and report["arms"][0]["steps"] == 2
    argv = ["train", "fewshot_sfda", "--model_name_or_path", tiny_model_dir, "--max_steps", "1"]
    assert main([*argv, "--output_dir", str(tmp_path / "recipe")]) == 0
    arm = load_file(str(tmp_path / "compare" / "lp_ft" / "model.safetensors"))
    trained = load_file(str(tmp_path / "recipe" / "stage-2-sft" / "model.safetensors"))
    assert max((arm[k] - trained[k]).abs().max().item() for k in arm) < 1e-6


def test_seeds_train_each_arm_once_per_seed_and_summarise_them(tiny_model_dir, tmp_path, capsys):
    """`--seeds 0,1`: rows sft-s0 and sft-s1 (each stage of a chained arm seeded too), and an over-seeds row whose mean
    and sample standard deviation are computed here from the two rows; a command-line --seed beside it is refused."""

    from trl_ext.compare.arms import with_seeds

    chained = parse_arm({"label": "c", "stages": [{"method": "sft"}, {"method": "sft", "max_steps": 2}]})
    seeded = with_seeds([chained], [3, 4])
    assert [arm.label for arm in seeded] == ["c-s3", "c-s4"] and {arm.group for arm in seeded} == {"c"}
    assert [[stage["seed"] for stage in arm.stages()] for arm in seeded] == [[3, 3], [4, 4]]
    assert seeded[0].stages()[1]["max_steps"] == 2

    out = tmp_path / "seeds"
    argv = ["compare", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith"]
    argv += [
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "1e-2",
        "--eval",
        "perplexity",
    ]
    argv += ["--eval_rows", "4", "--report_to", "none", "--save_strategy", "no", "--output_dir", str(out)]
    assert main([*argv, "--seeds", "0,1"]) == 0
    report = json.loads((out / "compare.json").read_text())
    runs = {arm["arm"]: arm["perplexity"] for arm in report["arms"]}
    assert set(runs) == {"sft-s0", "sft-s1"} and runs["sft-s0"] != runs["sft-s1"]  # the seed reached training
    (summary,) = report["over_seeds"]
    assert summary["arm"] == "sft" and summary["seeds"] == 2
    assert summary["perplexity"] == pytest.approx((runs["sft-s0"] + runs["sft-s1"]) / 2)
    assert summary["sd"] == pytest.approx(abs(runs["sft-s0"] - runs["sft-s1"]) / 2**0.5)
    assert "over seeds" in capsys.readouterr().out and "Over seeds:" in (out / "compare.md").read_text()
    assert main([*argv, "--seeds", "0,1", "--seed", "3"]) != 0
    assert "either --seed or --seeds" in capsys.readouterr().err


def test_eval_transforms_pick_the_rows_a_split_transform_holds_out():
    """builtin:fewshot_sentiment has one split of 180 rows; few_shot_split's test part is its seeded 20%: 36 rows."""
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows

    metric = parse_metric("choice:options=[' positive',' negative',' neutral']")
    comparison = Comparison(
        arms=[], metric=metric, eval_split="train", eval_rows=1000, eval_transforms="few_shot_split:part=test:k=3"
    )
    rows = eval_rows(comparison, "builtin:fewshot_sentiment")
    assert len(rows) == 36 and {row["completion"] for row in rows} <= {" positive", " negative", " neutral"}
    comparison.eval_transforms = [{"name": "loglik_filter", "keep_fraction": 0.5}]
    with pytest.raises(ValueError, match="needs a model"):
        eval_rows(comparison, "builtin:fewshot_sentiment")


def test_the_untrained_base_arm_measures_the_starting_model(tiny_model_dir, tmp_path, capsys):
    """`trl-ext compare base sft --seeds 0,1`: the base row is the starting model's perplexity, computed here from a
    plain full-logits forward of the tiny model on the same rows; it is measured once (no seeds), at step 0, and has
    no training costs. An arm list with nothing to train is refused."""
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.models import load_model, load_tokenizer

    with pytest.raises(RecipeError, match="at least one arm that trains"):
        parse_arms(["base"])
    with pytest.raises(RecipeError, match="takes no options"):
        parse_arms(["base:learning_rate=1e-3", "sft"])

    out = tmp_path / "with-base"
    argv = _argv(tiny_model_dir, out)
    argv[1:4] = ["base", "sft"]
    argv[argv.index("--max_steps") + 1] = "1"
    assert main([*argv, "--seeds", "0,1"]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert [arm["arm"] for arm in report["arms"]] == ["base", "sft-s0", "sft-s1"]
    base = report["arms"][0]
    assert base["method"] == "none (untrained)" and base["steps"] == 0 and base["history"] == [[0, base["perplexity"]]]
    assert base.get("cpu_s") is None and base.get("trainable_params") is None
    assert [summary["arm"] for summary in report["over_seeds"]] == ["sft"]

    model, tokenizer = load_model(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    rows = eval_rows(Comparison(arms=[], metric=parse_metric("perplexity"), eval_rows=6), "builtin:arith")
    assert base["per_row"] == pytest.approx(full_logits_perplexities(model, tokenizer, rows), rel=1e-5)
    # the trained arms' step-0 point is the same starting model
    assert report["arms"][1]["history"][0][1] == pytest.approx(base["perplexity"], rel=1e-5)


def test_also_eval_adds_metric_columns_each_on_its_own_rows(tiny_model_dir, tmp_path, capsys):
    """`--eval exact_match --also_eval perplexity`: the perplexity column reads the completion form of the rows (the
    generating metric the prompt form), its per-row values equal a plain full-logits forward of the trained arm, the
    table and CSV carry it after the main interval, and a rerun with `--eval perplexity` keeps the arm and reuses the
    measurement."""
    from trl_ext.compare.comparison import FINAL_RECORD, Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.models import load_tokenizer, load_trained

    out = tmp_path / "also"
    argv = _argv(tiny_model_dir, out)
    argv[1:4] = ["sft"]
    argv[argv.index("--max_steps") + 1] = "1"
    argv[argv.index("--eval") + 1] = "exact_match"
    assert main([*argv, "--also_eval", "perplexity"]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["metric"] == "exact_match" and report["also_metrics"] == ["perplexity"]
    arm = report["arms"][0]
    rows = eval_rows(Comparison(arms=[], metric=parse_metric("perplexity"), eval_rows=6), "builtin:arith")
    model, tokenizer = load_trained(out / "sft").eval(), load_tokenizer(str(out / "sft"))
    expected = full_logits_perplexities(model, tokenizer, rows)
    assert arm["also"]["perplexity"]["per_row"] == pytest.approx(expected, rel=1e-5)
    assert arm["also"]["perplexity"]["mean"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)

    header, table = table_rows(report)
    assert header[header.index("95% CI") + 1] == "perplexity" and len(header) == len(COLUMNS) + 1
    low, high = arm["also"]["perplexity"]["ci_low"], arm["also"]["perplexity"]["ci_high"]
    mean = arm["also"]["perplexity"]["mean"]
    assert table[0][header.index("perplexity")] == f"{mean:.4f} [{low:.4f}, {high:.4f}]"
    with (out / "compare.csv").open() as handle:
        csv_row = next(csv.DictReader(handle))
    assert float(csv_row["perplexity"]) == pytest.approx(mean) and float(csv_row["perplexity_ci_high"]) == high

    capsys.readouterr()
    rerun = [*argv]
    rerun[rerun.index("--eval") + 1] = "perplexity"
    assert main(rerun) == 0
    assert "kept" in capsys.readouterr().out
    again = json.loads((out / "compare.json").read_text())
    assert again["arms"][0]["per_row"] == arm["also"]["perplexity"]["per_row"]
    assert len(json.loads((out / "sft" / FINAL_RECORD).read_text())["finals"]) == 2  # exact_match and perplexity

    assert main([*rerun, "--also_eval", "perplexity"]) == 2
    assert "the metric perplexity is asked for twice" in capsys.readouterr().err
