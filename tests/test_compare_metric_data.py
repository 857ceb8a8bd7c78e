"""A compare metric measured on other data than the comparison's evaluation split (`dataset=`, `dataset_config=`,
`split=`): general ability on data unrelated to the training mix, as ReDone's seesaw check and a forgetting
measurement need."""

import csv
import json
import math

import pytest

from trl_ext.cli import main
from trl_ext.testing import full_logits_perplexities

GENERAL = [
    {"prompt": f"Name a colour number {i}.", "completion": f" Colour {i} is {c}."}
    for i, c in enumerate(["red", "green", "blue", "amber", "violet"])
]


@pytest.fixture
def general_file(tmp_path):
    path = tmp_path / "general.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in GENERAL))
    return str(path)


def test_a_metric_on_its_own_dataset_reads_those_rows_and_is_paired_with_the_base_arm(
    tiny_model_dir, general_file, tmp_path
):
    """The main metric reads builtin:arith's test split cut to 2 rows by --eval_transforms; the also-metric reads the
    5 rows of a user file's train split whole, and its per-row perplexities equal a full-logits forward of each
    arm's model on those rows (the base arm: the starting model); the trained arm's difference from the base arm on
    them has its paired interval in compare.json, compare.md and compare.csv."""
    from trl_ext.models import load_tokenizer, load_trained

    out = tmp_path / "cmp"
    argv = ["compare", "base", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith"]
    argv += ["--max_steps", "1", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--eval"]
    argv += ["perplexity", "--eval_transforms", "take_rows:n=2", "--eval_max_new_tokens", "4", "--output_dir"]
    argv += [str(out), "--also_eval", f"perplexity:dataset='{general_file}':split=train:label=general"]
    assert main(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    tokenizer = load_tokenizer(tiny_model_dir)
    for arm in report["arms"]:
        assert len(arm["per_row"]) == 2
        source = tiny_model_dir if arm["arm"] == "base" else str(out / arm["arm"])
        expected = full_logits_perplexities(load_trained(source).eval(), tokenizer, GENERAL)
        assert arm["also"]["general"]["per_row"] == pytest.approx(expected, rel=1e-5)
    base, sft = report["arms"]
    assert base["also"]["general"]["per_row"] != pytest.approx(sft["also"]["general"]["per_row"], rel=1e-5)

    # the also-metric's paired difference from the base arm, by hand: mean of the row differences ± 1.96 s / sqrt(n)
    trained, untrained = sft["also"]["general"]["per_row"], base["also"]["general"]["per_row"]
    diffs = [a - b for a, b in zip(trained, untrained, strict=True)]
    mean = sum(diffs) / 5
    half = 1.96 * math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4) / math.sqrt(5)
    delta = sft["also"]["general"]["vs_base"]
    assert (delta["mean"], delta["ci_low"], delta["ci_high"]) == pytest.approx((mean, mean - half, mean + half))
    assert delta["rows"] == 5 and delta["base"] == "base" and "vs_base" not in base["also"]["general"]
    markdown = (out / "compare.md").read_text()
    assert "| arm | general Δ vs base |" in markdown
    assert f"| sft | {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] |" in markdown
    with (out / "compare.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[1]["general_vs_base"]) == pytest.approx(mean) and rows[0]["general_vs_base"] == ""


def test_a_metric_naming_a_missing_split_or_column_is_refused_before_any_arm_trains(
    tiny_model_dir, general_file, tmp_path, capsys, no_model_load
):
    base = ["compare", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith", "--eval"]
    base += ["perplexity", "--output_dir", str(tmp_path / "x"), "--also_eval"]
    assert main([*base, f"perplexity:dataset='{general_file}'"]) != 0
    assert "asked for twice (--eval, --also_eval); to measure it twice" in capsys.readouterr().err
    assert main([*base, f"perplexity:dataset='{general_file}':split=validation:label=general"]) != 0
    assert "has no split 'validation' to evaluate general on (splits: train)" in capsys.readouterr().err
    assert main([*base, f"exact_match:dataset='{general_file}':split=train"]) != 0
    assert "lack answer" in capsys.readouterr().err


def test_metrics_reading_the_same_greedy_answers_generate_them_once(tiny_model_dir, monkeypatch):
    """exact_match, contains, length and a reward on the same rows and settings share one generation per model; each
    metric's values equal its measurement without the shared answers."""
    import trl_ext.inference.generation as generation
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.compare.metrics import measure, parse_metric
    from trl_ext.models import load_tokenizer, load_trained

    model, tokenizer = load_trained(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    names = ["exact_match", "contains", "length", "reward:chord_answer"]
    rows = eval_rows(Comparison(arms=[], metric=parse_metric("exact_match"), eval_rows=4), "builtin:arith")
    alone = [measure(parse_metric(name), model, tokenizer, rows, max_new_tokens=6)[0] for name in names]

    calls = []
    real = generation.generate_completions
    monkeypatch.setattr(generation, "generate_completions", lambda *a, **k: calls.append(1) or real(*a, **k))
    shared: dict = {}
    together = [measure(parse_metric(n), model, tokenizer, rows, max_new_tokens=6, memo=shared)[0] for n in names]
    assert together == alone and len(calls) == 1
    measure(parse_metric("length"), model, tokenizer, rows, max_new_tokens=7, memo=shared)  # other settings
    assert len(calls) == 2


def test_a_callback_metric_reads_its_own_data_so_the_rows_need_no_prompt(tiny_model_dir):
    """maskft's knowledge documents have a `text` column and no prompt: a callback metric (which asks its own
    questions) is measured on them (it read `row["prompt"]` after training: a KeyError once every arm had trained);
    a generating metric on the same rows is still refused by column."""
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.compare.metrics import measure, metric_columns, parse_metric

    callback = parse_metric("callback:maskft_qa_eval:n=4:figure=eval/qa_acc_forward")
    assert metric_columns(callback) == []
    comparison = Comparison(arms=[], metric=callback, eval_rows=3, eval_dataset_config="knowledge")
    rows = eval_rows(comparison, "builtin:maskft_bios")
    assert len(rows) == 3 and "prompt" not in rows[0]
    from trl_ext.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    callback = parse_metric("callback:maskft_qa_eval:n=4:max_new_tokens=4:figure=eval/qa_acc_forward:label=fwd")
    values, figures = measure(callback, model, tokenizer, rows)
    (accuracy,) = figures.values()  # the callback's forward-QA accuracy on its own 4 questions
    assert 0.0 <= accuracy <= 1.0
    with pytest.raises(ValueError, match="lack prompt"):
        eval_rows(comparison, "builtin:maskft_bios", parse_metric("exact_match:gold_column=text"))


def test_several_figures_of_one_callback_evaluate_it_once_per_model(tiny_model_dir, monkeypatch):
    """Two figures of maskft_qa_eval with the same options (the figure and label apart) share one evaluation, and
    each equals its figure measured alone; other options evaluate again."""
    from trl_ext.compare.metrics import measure, parse_metric
    from trl_ext.models import load_model, load_tokenizer
    from trl_ext_plugins.maskft.evaluation import QAAccuracyCallback

    model, tokenizer = load_model(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    names = [
        f"callback:maskft_qa_eval:n=3:max_new_tokens=3:figure=eval/qa_acc_{d}:label={d}"
        for d in ("forward", "backward")
    ]
    alone = [measure(parse_metric(name), model, tokenizer, []) for name in names]
    calls = []
    real = QAAccuracyCallback.evaluate
    monkeypatch.setattr(QAAccuracyCallback, "evaluate", lambda self, *a: calls.append(1) or real(self, *a))
    memo: dict = {}
    together = [measure(parse_metric(name), model, tokenizer, [], memo=memo) for name in names]
    assert together == alone and len(calls) == 1
    measure(
        parse_metric("callback:maskft_qa_eval:n=2:max_new_tokens=3:figure=eval/qa_acc_forward"),
        model,
        tokenizer,
        [],
        memo=memo,
    )
    assert len(calls) == 2


def test_an_untrained_arms_kept_measurement_is_reused_only_for_the_same_model(tmp_path):
    """The base arm's folder keeps its measurements; a rerun in the same folder from another starting model measures
    that model (before, the first model's figures were reused: the key named the metric and rows, not the model)."""
    from trl_ext.compare.arms import parse_arms
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import arm_result, checked_evaluations, eval_rows
    from trl_ext.compare.metrics import parse_metric
    from trl_ext.testing import save_tiny_model

    first, second = save_tiny_model(tmp_path / "a", seed=0), save_tiny_model(tmp_path / "b", seed=1)
    arms = parse_arms(["base", "sft"])
    comparison = Comparison(arms=arms, metric=parse_metric("perplexity"), eval_rows=3, output_dir=str(tmp_path / "o"))
    rows = eval_rows(comparison, "builtin:arith")
    evaluations = checked_evaluations(comparison, "builtin:arith", rows)
    a = arm_result(comparison, arms[0], None, evaluations, str(first))["per_row"]
    b = arm_result(comparison, arms[0], None, evaluations, str(second))["per_row"]
    again = arm_result(comparison, arms[0], None, evaluations, str(first))["per_row"]
    assert a != b and again == a
