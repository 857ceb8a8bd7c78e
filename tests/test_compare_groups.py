"""`trl-ext compare --eval_groups COLUMN`: the metric per value of a column of the evaluation rows (STAT's per-skill
accuracy, a mixture's per-task score), a row holding a list counted in each of its values."""

import json

import pytest

from trl_ext.cli import main
from trl_ext.compare.report import group_breakdown, group_rows


def test_group_breakdown_by_hand():
    rows = [{"task": "add"}, {"task": "sub"}, {"task": "add"}, {"task": ["add", "sub"]}]
    groups = group_breakdown([1.0, 0.0, 0.0, 1.0], rows, "task")
    assert list(groups) == ["add", "sub"]
    assert groups["add"]["rows"] == 3 and groups["add"]["mean"] == pytest.approx(2 / 3)
    assert groups["sub"]["rows"] == 2 and groups["sub"]["mean"] == pytest.approx(0.5)
    # add: values 1, 0, 1 -> sample sd sqrt(1/3), half-width 1.96 * sqrt(1/3) / sqrt(3) = 0.653333
    assert groups["add"]["ci_high"] - groups["add"]["mean"] == pytest.approx(0.653333, abs=1e-6)
    assert group_breakdown([1.0], rows, "task") == {}  # a figure without per-row values has no breakdown
    report = {"groups_column": "task", "arms": [{"arm": "a", "by_group": groups}, {"arm": "b", "by_group": {}}]}
    assert group_rows(report) == (
        ["arm", "task=add", "task=sub"],
        [["a", "0.6667 (3)", "0.5000 (2)"], ["b", "-", "-"]],
    )


@pytest.mark.slow
def test_the_cli_gives_each_arms_metric_per_task(tiny_model_dir, tmp_path, capsys):
    """base and a 1-step SFT arm (on builtin:arith), measured on builtin:rif_tasks: each group's mean equals the mean of the arm's per-row values
    over the rows of that task; the breakdown is printed and in compare.md; a missing column fails before training."""
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.compare.metrics import parse_metric

    argv = [
        "compare", "base", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith",
        "--eval_dataset", "builtin:rif_tasks",
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no",
        "--eval", "numeric_match", "--eval_rows", "8", "--eval_max_new_tokens", "4", "--output_dir", str(tmp_path / "g"),
    ]  # fmt: skip
    assert main([*argv, "--eval_groups", "no_such_column"]) == 2
    assert "lack no_such_column" in capsys.readouterr().err
    assert not (tmp_path / "g" / "sft").exists()

    assert main([*argv, "--eval_groups", "task"]) == 0
    assert "numeric_match by task (rows)" in capsys.readouterr().out
    report = json.loads((tmp_path / "g" / "compare.json").read_text())
    rows = eval_rows(Comparison(arms=[], metric=parse_metric("numeric_match"), eval_rows=8), "builtin:rif_tasks")
    for arm in report["arms"]:
        for task, group in arm["by_group"].items():
            values = [v for v, row in zip(arm["per_row"], rows, strict=True) if row["task"] == task]
            assert group["rows"] == len(values) and group["mean"] == pytest.approx(sum(values) / len(values))
        assert sum(group["rows"] for group in arm["by_group"].values()) == 8
    assert "by task (rows):" in (tmp_path / "g" / "compare.md").read_text()


def test_length_is_the_greedy_completions_token_count_with_its_stop_token(tiny_model_dir):
    """Each prompt generated alone (no padding) by `model.generate`, cut after the first EOS: the count `length`
    gives per row; lower is better for the table."""
    import torch

    from trl_ext.compare.metrics import measure, parse_metric
    from trl_ext.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    rows = [{"prompt": text} for text in ("1 + 1 =", "Reverse 123:", "The capital of France is")]
    spec = parse_metric("length")
    assert not spec.higher_is_better
    values, figures = measure(spec, model, tokenizer, rows, max_new_tokens=12, batch_size=2)
    expected = []
    for row in rows:
        ids = tokenizer(row["prompt"], return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        stops = [i for i, token in enumerate(new) if token == tokenizer.eos_token_id]
        expected.append(float(stops[0] + 1 if stops else len(new)))
    assert values == expected and figures == {"length": sum(expected) / 3}
    # the same model made to end at once (its EOS logit raised): one token per row, the EOS counted
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id] *= 0
        model.get_output_embeddings().weight[tokenizer.eos_token_id] += 50 * model.model.norm.weight.sign()
    values, _ = measure(spec, model, tokenizer, rows, max_new_tokens=12, batch_size=2)
    assert values == [1.0, 1.0, 1.0]
