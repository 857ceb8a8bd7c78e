"""branch_filter: every hand-computed case of the card (steps, markers, filtering, per-problem, custom classifier),
the transform on the curation runner, the eval callback, and the real CLI (`trl-ext transform branch_filter`,
`trl-ext train sft --transforms branch_filter --callbacks branch_rate`)."""

import json

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext_plugins.branch_filter import (
    BRANCH_MARKERS,
    RETURN_MARKERS,
    BranchRateCallback,
    branch_filter,
    branch_score,
    generation_metrics,
    numeric_judge,
    reasoning_part,
    select_rows,
    split_steps,
)

CARD_1 = (
    "First compute the sum of the terms.\n\nAlternatively, we can use the formula.\n\nSo the final result is x = 2."
)


# --- card test 1: n = 3, b = 1, branch_rate = 1/3; a short first step stays on its own
def test_card_steps_and_rate():
    assert all(len(s) >= 20 for s in CARD_1.split("\n\n"))
    s = branch_score(CARD_1)
    assert (s["n_steps"], s["n_branch"]) == (3, 1)
    assert s["branch_rate"] == pytest.approx(1 / 3)
    assert s["markers"] == ["alternatively"]
    assert split_steps("Step one.\n\nNext step is long enough here.") == [
        "Step one.",
        "Next step is long enough here.",
    ]
    assert branch_score("Step one.\n\nNext step is long enough here.")["n_steps"] == 2


def test_short_steps_merge_into_the_previous_one():
    text = "This first step is long enough.\n\nok.\n\nAnd this third step is long too."
    assert split_steps(text) == ["This first step is long enough.\n\nok.", "And this third step is long too."]
    # a branch marker in a merged short step is not a step start any more
    assert branch_score("This first step is long enough.\n\nAlternatively, x.")["n_branch"] == 0


# --- card test 2: markers only at the start of a step
def test_card_marker_only_at_step_start():
    text = "We could, alternatively, use the formula here.\n\nThat gives the answer quickly enough."
    assert branch_score(text)["n_branch"] == 0
    assert branch_score("**Alternatively**, use the formula here.")["n_branch"] == 1  # leading punctuation stripped
    assert branch_score("x" * 60 + " alternatively, more")["n_branch"] == 0


# --- card test 3: no blank lines = 1 step; a leading "Wait, maybe" gives 1.0
def test_card_single_step():
    s = branch_score("Wait, maybe the answer is 4 because 2 + 2 = 4.\nYes, it is 4.")
    assert s["n_steps"] == 1 and s["branch_rate"] == 1.0


def test_every_marker_and_returns_flag():
    for marker in BRANCH_MARKERS:
        assert branch_score(marker.capitalize() + " something long enough follows.")["n_branch"] == 1, marker
    for marker in RETURN_MARKERS:
        text = marker.capitalize() + " the first plan, which works."
        assert branch_score(text)["n_branch"] == 1
        assert branch_score(text, count_returns=False)["n_branch"] == 0


def test_reasoning_part_and_adversarial_inputs():
    text = "<think>Plain reasoning that is long.\n\nMore plain reasoning here.</think>\n\nAlternatively, the answer."
    assert reasoning_part(text) == "Plain reasoning that is long.\n\nMore plain reasoning here."
    assert branch_score(text)["n_branch"] == 0  # the answer section is not scored
    assert branch_score("<think>Alternatively, unclosed reasoning goes on.")["branch_rate"] == 1.0
    assert branch_score([{"role": "assistant", "content": CARD_1}])["n_branch"] == 1
    for bad in ("", None, 3, [], [{"role": "user"}], "\n\n\n\n", "<think></think>"):
        s = branch_score(bad)
        assert s["n_steps"] == 0 and s["branch_rate"] == 0.0 and s["b_per_1k"] == 0.0
    huge = ("Alternatively, a long detour step.\n\n" + "A convergent deductive step.\n\n") * 5000
    assert branch_score(huge)["branch_rate"] == pytest.approx(0.5)
    # b_per_1k: 1 branch in 7 + 6 + 8 = 21 whitespace tokens; an explicit token count overrides
    assert branch_score(CARD_1)["b_per_1k"] == pytest.approx(1000 / 21)
    assert branch_score(CARD_1, num_tokens=40)["b_per_1k"] == pytest.approx(25.0)


def _rows(rates_texts):
    return Dataset.from_list([{"completion": t, "problem_id": p} for t, p in rates_texts])


def _text_with_rate(b: int, n: int) -> str:
    steps = ["Alternatively, a detour that is long enough." if j < b else "A convergent step that is long." for j in
             range(n)]  # fmt: skip
    return "\n\n".join(steps)


# --- card test 4: rates [0, .1, .5, .9], drop_frac 0.5 keeps the first two; 0 keeps all
def test_card_filtering():
    assert [k for k, _ in select_rows([0.0, 0.1, 0.5, 0.9], 0.5)] == [True, True, False, False]
    assert all(k for k, _ in select_rows([0.0, 0.1, 0.5, 0.9], 0.0))
    texts = [_text_with_rate(0, 10), _text_with_rate(1, 10), _text_with_rate(5, 10), _text_with_rate(9, 10)]
    ds = Dataset.from_list([{"completion": t, "i": i} for i, t in enumerate(texts)])
    out = branch_filter(ds, drop_frac=0.5)
    assert out["i"] == [0, 1] and out["branch_rate"] == pytest.approx([0.0, 0.1])
    assert out["n_branch"] == [0, 1] and out["n_steps"] == [10, 10]
    assert branch_filter(ds, drop_frac=0.0)["i"] == [0, 1, 2, 3]
    assert branch_filter(ds, mode="threshold", max_rate=0.5)["i"] == [0, 1, 2]
    assert branch_filter(ds, drop_frac=0.5, metric="n_branch")["i"] == [0, 1]


# --- card test 5: per_problem keeps problem 7's 0.2 trajectory
def test_card_per_problem():
    assert [k for k, _ in select_rows([0.4, 0.2], per_problem=True, problems=[7, 7])] == [False, True]
    ds = _rows([(_text_with_rate(2, 5), 7), (_text_with_rate(1, 5), 7), (_text_with_rate(3, 5), 8)])
    out = branch_filter(ds, per_problem=True)
    assert out["problem_id"] == [7, 8] and out["branch_rate"] == pytest.approx([0.2, 0.6])


# --- card test 6: a classifier that always says False -> rate 0, stable order keeps the first half
def test_card_custom_classifier():
    texts = [_text_with_rate(b, 4) for b in (3, 2, 1, 0, 4, 2)]
    ds = Dataset.from_list([{"completion": t, "i": i} for i, t in enumerate(texts)])
    seen = []

    def never(step, context):
        seen.append(len(context))
        return False

    out = branch_filter(ds, classifier=never)
    assert out["i"] == [0, 1, 2] and set(out["branch_rate"]) == {0.0}
    assert seen[:4] == [0, 1, 2, 3]  # the context is the previous steps


def test_transform_records_scores_and_summary(tmp_path):
    from trl_ext_plugins.branch_filter import make_branch_filter_transform

    ds = _rows([(_text_with_rate(b, 4), b) for b in (0, 1, 2, 3)])
    fn = make_branch_filter_transform(drop_frac=0.25, curation_dir=str(tmp_path), batch_size=2)
    out = fn(ds)
    assert len(out) == 3
    scores = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [s["kept"] for s in scores] == [True, True, True, False]
    assert scores[3]["markers"] == ["alternatively"] * 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows_in"] == 4 and summary["rows_out"] == 3
    assert fn.summary["branch_filter/problems_kept"] == 3
    assert fn.summary["branch_filter/marker_hits/alternatively"] == 6
    with pytest.raises(ValueError):
        make_branch_filter_transform(drop_frac=1.5)
    with pytest.raises(ValueError):
        make_branch_filter_transform(mode="threshold")
    empty = make_branch_filter_transform(drop_frac=1.0)(ds)
    assert len(empty) == 0 and "branch_rate" in empty.column_names


def test_builtin_dataset_separates_the_styles():
    from trl_ext.data import load_dataset

    data = load_dataset("builtin:branch_traces")
    train = data["train"]
    assert len(train) == 400 and len(data["test"]) == 50
    assert train.to_list() == load_dataset("builtin:branch_traces")["train"].to_list()
    for row in train.to_list():
        s = branch_score(row["completion"])
        if row["style"] == "convergent":
            assert s["n_branch"] == 0
        else:  # each detour: one branch step and one return step
            assert s["n_branch"] == 2 * row["n_detours"] and 1 <= row["n_detours"] <= 3
        assert numeric_judge(row["completion"][0]["content"], row["answer"])
    kept = branch_filter(train, drop_frac=0.5)
    assert set(kept["style"]) == {"convergent"} and len(set(kept["problem_id"])) == 200


def test_generation_metrics_and_judge():
    texts = ["<think>A step that is long enough.\n\nAlternatively, a detour here.</think>The answer is 12.",
             "<think>A single convergent step.</think>\nSo 7 apples.", "no number"]  # fmt: skip
    m = generation_metrics(texts, ["12", "8", "1"], lengths=[10, 20, 30])
    assert m["eval/branch_rate"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert m["eval/accuracy"] == pytest.approx(1 / 3) and m["eval/len"] == 20
    assert numeric_judge("<think>3 + 4 = 7</think>The answer is 1,440.", "1440")
    assert not numeric_judge("<think>The answer is 1440</think>So it is 12.", "1440")  # the answer part decides
    with pytest.raises(ValueError):
        BranchRateCallback(max_new_tokens=0)


def test_cli_transform_and_training_with_the_callback(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "kept.jsonl"
    argv = ["transform", "branch_filter", "--dataset_name", "builtin:branch_traces", "--split", "train",
            "--drop_frac", "0.5", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == 200 and {r["style"] for r in kept} == {"convergent"}
    assert {"branch_rate", "n_branch", "n_steps"} <= set(kept[0])
    record = tmp_path / "kept.jsonl.curation" / "branch_filter" / "train"
    summary = json.loads((record / "summary.json").read_text())
    assert summary["kept_per_source"] == {
        "branchy": {"kept": 0, "total": 200},
        "convergent": {"kept": 200, "total": 200},
    }
    printed = capsys.readouterr().out
    assert "branch_filter/problems_kept: 200" in printed and "marker_hits" in printed

    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:branch_traces",
                 "--transforms", "branch_filter:drop_frac=0.5", "--callbacks",
                 "branch_rate:num_samples=2:max_new_tokens=8:batch_size=2",
                 "--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2",
                 "--max_length", "256", "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0
    assert "branch_rate at step 1: eval/branch_rate=" in capsys.readouterr().out


def test_interrupted_filter_resumes_to_the_same_output(tmp_path):
    from trl_ext_plugins.branch_filter import make_branch_filter_transform

    ds = _rows([(_text_with_rate(b % 4, 4), b) for b in range(7)])  # batches of 3: rows 0-2, 3-5, 6
    ref = make_branch_filter_transform(batch_size=3, curation_dir=str(tmp_path / "ref"))(ds)
    calls = []

    def flaky(step, context):
        calls.append(step)
        if len(calls) > 12:  # dies inside the second batch (3 rows x 4 steps per batch)
            raise KeyboardInterrupt
        return step.startswith("Alternatively")

    with pytest.raises(KeyboardInterrupt):
        make_branch_filter_transform(batch_size=3, classifier=flaky, curation_dir=str(tmp_path / "run"))(ds)
    assert sorted(p.name for p in (tmp_path / "run" / "batches").iterdir()) == ["000000.json"]
    calls.clear()

    def counted(step, context):
        calls.append(step)
        return step.startswith("Alternatively")

    counted.__qualname__ = flaky.__qualname__  # the same classifier name: the same run key
    out = make_branch_filter_transform(batch_size=3, classifier=counted, curation_dir=str(tmp_path / "run"))(ds)
    assert len(calls) == 4 * 4, "only the unfinished batches (rows 3-6) are scored again"
    assert out.to_list() == ref.to_list()  # the same branch steps as the lexical markers here
