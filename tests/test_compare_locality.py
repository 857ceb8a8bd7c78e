"""`trl-ext compare` metrics relative to the untrained model and on other prompt columns: `unchanged` (locality: the
arm's greedy answer is the starting model's), and the options every metric takes (`prompt_column`, `rows`, `label`),
which LocFT-BF's three edit figures (reliability, generalisation on the paraphrase, locality on unrelated prompts)
need in one table."""

import csv
import json
import math

import pytest
import torch

from trl_ext.cli import main
from trl_ext.compare.metrics import MetricSpec, measure, metric_columns, metric_rows, paired_difference, parse_metric
from trl_ext.evaluation.judges import normalize_text
from trl_ext.run.recipe import RecipeError

ROWS = [{"prompt": f"p{i}", "paraphrase": f"q{i}", "answer": str(i)} for i in range(5)]


def test_prompt_column_and_rows_pick_what_a_metric_measures():
    spec = parse_metric("exact_match:prompt_column=paraphrase:rows=3:label=generalisation")
    assert spec.label == "generalisation"
    assert metric_columns(spec) == ["paraphrase", "answer"]
    picked = metric_rows(spec, ROWS)
    assert [row["prompt"] for row in picked] == ["q0", "q1", "q2"]
    assert [row["answer"] for row in picked] == ["0", "1", "2"]
    assert metric_rows(parse_metric("exact_match"), ROWS) == ROWS

    holes = [*ROWS[:2], {**ROWS[2], "paraphrase": None}]
    with pytest.raises(RecipeError, match="1 of the 3 rows have no 'paraphrase'"):
        metric_rows(spec, holes)
    assert len(metric_rows(parse_metric("exact_match:prompt_column=paraphrase:rows=2"), holes)) == 2
    with pytest.raises(RecipeError, match="rows= takes a positive number"):
        parse_metric("unchanged:rows=0")
    assert parse_metric("unchanged").label == "unchanged"


def test_paired_difference_by_hand():
    """Deltas [1, 0, 0, 1]: mean 0.5, sample sd sqrt(1/3), half-width 1.96 * sqrt(1/3) / 2 = 0.565803; a row
    either side left unmeasured (NaN) is dropped; different row counts have no pairing."""
    delta = paired_difference([1.0, 0.0, 1.0, 1.0, math.nan], [0.0, 0.0, 1.0, 0.0, 1.0])
    assert delta["rows"] == 4 and delta["mean"] == pytest.approx(0.5)
    assert delta["ci_low"] == pytest.approx(0.5 - 0.565803, abs=1e-6)
    assert delta["ci_high"] == pytest.approx(0.5 + 0.565803, abs=1e-6)
    assert paired_difference([1.0, 0.0], [1.0]) is None
    assert paired_difference([], []) is None


def test_unchanged_needs_the_reference_answers_of_its_rows(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    rows = [{"prompt": "1 + 1 ="}, {"prompt": "2 + 2 ="}]
    spec = MetricSpec("unchanged")
    with pytest.raises(RecipeError, match="untrained model's answers were not measured"):
        measure(spec, model, tokenizer, rows, max_new_tokens=4)
    from trl_ext.inference.generation import generate

    own = generate(model, tokenizer, [row["prompt"] for row in rows], 4, 16)
    spec.reference = [own[0], own[1] + " changed"]
    values, figures = measure(spec, model, tokenizer, rows, max_new_tokens=4)
    assert values == [1.0, 0.0] and figures == {"unchanged": 0.5}


@pytest.mark.slow
def test_locality_generalisation_and_reliability_in_one_table(tiny_model_dir, tmp_path):
    """base and a 2-step SFT arm on builtin:locft_edits: reliability (exact match of the edit prompt's answer to the
    new target), generalisation (the same on the paraphrase) and locality (`unchanged` on the first 4 unrelated
    prompts), each per-row value equal to answers generated here from the saved models; the base row's locality is 1
    by definition, and the reference answers are kept for a rerun."""
    from trl_ext.compare.comparison import REFERENCE_RECORD
    from trl_ext.compare.report import table_rows
    from trl_ext.data import load_dataset
    from trl_ext.inference.generation import generate
    from trl_ext.models import load_tokenizer, load_trained

    out = tmp_path / "edits"
    argv = [
        "compare", "base", "sft",
        "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:locft_edits",
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "5e-3",
        "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
        "--eval_split", "train", "--eval_rows", "6", "--eval_max_new_tokens", "6",
        "--eval", "exact_match:gold_column=target_new",
        "--also_eval", "exact_match:prompt_column=rephrase_prompt:gold_column=target_new:label=generalisation",
        "--also_eval", "unchanged:prompt_column=locality_prompt:rows=4:label=locality",
        "--output_dir", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["also_metrics"] == ["generalisation", "locality"]
    base, sft = report["arms"]
    assert base["also"]["locality"]["per_row"] == [1.0] * 4

    rows = load_dataset("builtin:locft_edits", form="sft")["train"].select(range(6)).to_list()
    tokenizer = load_tokenizer(tiny_model_dir)
    start = load_trained(tiny_model_dir).eval()
    trained = load_trained(str(out / "sft")).eval()
    with torch.no_grad():
        before = generate(start, tokenizer, [r["locality_prompt"] for r in rows[:4]], 6, 16)
        after = generate(trained, tokenizer, [r["locality_prompt"] for r in rows[:4]], 6, 16)
        edit = generate(trained, tokenizer, [r["prompt"] for r in rows], 6, 16)
        paraphrase = generate(trained, tokenizer, [r["rephrase_prompt"] for r in rows], 6, 16)
    locality = [float(a == b) for a, b in zip(after, before, strict=True)]
    assert locality != [1.0] * 4, "the 2 steps left every unrelated answer alone: raise the learning rate"
    assert sft["also"]["locality"]["per_row"] == locality
    targets = [normalize_text(r["target_new"]) for r in rows]
    assert sft["per_row"] == [float(normalize_text(e) == t) for e, t in zip(edit, targets, strict=True)]
    assert sft["also"]["generalisation"]["per_row"] == [
        float(normalize_text(p) == t) for p, t in zip(paraphrase, targets, strict=True)
    ]
    kept = json.loads((out / REFERENCE_RECORD).read_text())
    assert list(kept.values()) == [before]

    # the trained arm against the base row, row by row, as a column after the main interval and in the CSV
    assert report["paired_with"] == "base" and "vs_base" not in base
    deltas = [a - b for a, b in zip(sft["per_row"], base["per_row"], strict=True)]
    assert sft["vs_base"]["mean"] == pytest.approx(sum(deltas) / len(deltas))
    header, table = table_rows(report)
    assert header[header.index("95% CI") + 1 :][:3] == ["Δ vs base", "generalisation", "locality"]
    assert table[0][header.index("Δ vs base")] == "-"
    assert table[1][header.index("Δ vs base")].startswith(f"{sft['vs_base']['mean']:+.4f} [")
    with (out / "compare.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert csv_rows[0]["vs_base"] == "" and float(csv_rows[1]["vs_base"]) == pytest.approx(sft["vs_base"]["mean"])


@pytest.mark.slow
def test_an_arm_evaluated_its_own_way_gets_its_rows_and_generation_length(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    """`short=sft:eval_max_new_tokens=2` with `eval_transforms: take_rows:n=3` (YAML) is measured on the first 3 rows
    with 2 new tokens, the values generated here from its saved model; the other arm keeps the shared 6 rows and 64
    tokens; a chained arm takes the keys on the arm, not in a stage."""
    from trl_ext.compare.arms import parse_arm
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.evaluation.judges import numeric_match
    from trl_ext.inference.generation import generate
    from trl_ext.models import load_tokenizer, load_trained

    with pytest.raises(RecipeError, match="give it next to `stages`"):
        parse_arm({"label": "c", "stages": [{"method": "sft", "eval_max_new_tokens": 4}]})
    assert parse_arm("dft:asft_loss=dft:eval_max_new_tokens=8").evaluation == {"eval_max_new_tokens": 8}

    config = tmp_path / "own.yaml"
    config.write_text(
        "arms:\n  - sft\n  - {label: short, method: sft, eval_transforms: 'take_rows:n=3', eval_max_new_tokens: 2}\n"
        f"model_name_or_path: {tiny_model_dir}\ndataset_name: builtin:arith\nmax_steps: 1\n"
        "per_device_train_batch_size: 2\nlearning_rate: 1.0e-3\nreport_to: none\nsave_strategy: 'no'\n"
        "eval: numeric_match\neval_rows: 6\neval_max_new_tokens: 64\n"
    )
    out = tmp_path / "own"
    assert main(["compare", "--config", str(config), "--output_dir", str(out), "--dry_run"]) == 0
    assert "short is evaluated its own way: eval_transforms=take_rows:n=3, eval_max_new_tokens=2 (3 rows)" in (
        capsys.readouterr().out
    )
    import trl_ext.inference.generation as generation

    calls, real_generate = [], generation.generate_completions

    def recorded(model, tokenizer, prompts, *args, **kwargs):
        calls.append((len(prompts), kwargs["max_new_tokens"]))
        return real_generate(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(generation, "generate_completions", recorded)
    assert main(["compare", "--config", str(config), "--output_dir", str(out)]) == 0
    assert sorted(calls) == [(3, 2), (6, 64)]  # each arm's final measurement
    monkeypatch.setattr(generation, "generate_completions", real_generate)
    report = json.loads((out / "compare.json").read_text())
    shared, short = report["arms"]
    assert len(shared["per_row"]) == 6 and "evaluation" not in shared
    assert short["evaluation"] == {"eval_transforms": "take_rows:n=3", "eval_max_new_tokens": 2}

    rows = eval_rows(Comparison(arms=[], metric=parse_metric("numeric_match"), eval_rows=3), "builtin:arith")
    model, tokenizer = load_trained(str(out / "short")).eval(), load_tokenizer(str(out / "short"))
    with torch.no_grad():
        answers = generate(model, tokenizer, [row["prompt"] for row in rows], 2, 16)
    expected = [float(numeric_match(None, a, row["answer"])) for a, row in zip(answers, rows, strict=True)]
    assert short["per_row"] == expected


def test_an_arms_eval_dataset_config_picks_its_form_of_the_rows():
    """OncoReason's answer-only arm is measured on the `sft_plain` form's prompts, its rationale arms on the `grpo`
    form's: the same cases, each prompted the way the arm was trained (as load_dataset gives them)."""
    from trl_ext.compare.arms import parse_arm
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.data import load_dataset

    comparison = Comparison(arms=[], metric=parse_metric("reward:onco_status_reward"), eval_rows=3)
    plain = comparison.for_arm(parse_arm({"label": "p", "method": "base", "eval_dataset_config": "sft_plain"}))
    assert plain.eval_dataset_config == "sft_plain" and plain.metric is not comparison.metric
    for view, form in ((plain, "sft_plain"), (comparison.for_arm(parse_arm("sft")), "grpo")):
        rows = eval_rows(view, "builtin:oncoreason")
        expected = load_dataset("builtin:oncoreason", form)["test"].select(range(3))
        assert [row["prompt"] for row in rows] == expected["prompt"]
    assert comparison.for_arm(parse_arm("sft")) is comparison
    prompts = {
        form: eval_rows(comparison.for_arm(parse_arm(arm)), "builtin:oncoreason")[0]["prompt"]
        for form, arm in (
            ("plain", {"label": "p", "method": "base", "eval_dataset_config": "sft_plain"}),
            ("shared", "sft"),
        )
    }
    assert prompts["plain"] != prompts["shared"]  # the answer-only instruction, not the reasoning one
