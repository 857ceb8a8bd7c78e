"""The curation runner (`trl_ext.data.curation`): batched scoring that resumes without recomputing finished batches,
the per-row record and summary written next to the data, and a 2-process `torchrun trl-ext transform` equal to one
process; and the core `loglik_filter` transform built on it."""

import json
import subprocess
from pathlib import Path

import pytest
from datasets import Dataset

from trl_ext.data.curation import Decision, run_curation, summarize
from trl_ext.testing import run_cli, uneven_rows


class Interrupt(RuntimeError):
    pass


class CountingScorer:
    """score = len(text) and parity; raises after `fail_after` batches to simulate a killed run."""

    def __init__(self, fail_after: int | None = None):
        self.calls = 0
        self.rows_scored: list[str] = []
        self.fail_after = fail_after

    def __call__(self, rows):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise Interrupt("killed")
        self.calls += 1
        self.rows_scored += [r["text"] for r in rows]
        return [{"length": len(r["text"]), "odd": len(r["text"]) % 2 == 1} for r in rows]


def keep_short(rows, scores):
    return [Decision(s["length"] <= 5, "kept" if s["length"] <= 5 else "longer than 5") for s in scores]


def _data(n=10):
    return Dataset.from_list([{"text": "x" * (i % 8 + 1), "source": "ab"[i % 2]} for i in range(n)])


def _files(directory: Path) -> dict[str, str]:
    return {name: (directory / name).read_text() for name in ("scores.jsonl", "summary.json")}


def test_interrupted_run_resumes_to_the_same_output_without_rescoring(tmp_path):
    data = _data(10)  # batch_size 3: batches of rows 0-2, 3-5, 6-8, 9
    ref_scorer = CountingScorer()
    ref = run_curation(data, ref_scorer, keep_short, key="k", batch_size=3, directory=tmp_path / "ref",
                       source_column="source", progress=False)  # fmt: skip
    assert ref_scorer.calls == 4

    killed = CountingScorer(fail_after=2)
    with pytest.raises(Interrupt):
        run_curation(data, killed, keep_short, key="k", batch_size=3, directory=tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "batches").iterdir()) == ["000000.json", "000001.json"]
    assert not (tmp_path / "run" / "scores.jsonl").exists()

    resumed = CountingScorer()
    out = run_curation(data, resumed, keep_short, key="k", batch_size=3, directory=tmp_path / "run",
                       source_column="source", progress=False)  # fmt: skip
    assert resumed.calls == 2, "only the two unfinished batches are scored again"
    assert resumed.rows_scored == [data[i]["text"] for i in range(6, 10)]
    assert out.computed_batches == 2
    assert out.dataset.to_list() == ref.dataset.to_list()
    assert out.scores == ref.scores
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")

    again = CountingScorer()
    run_curation(data, again, keep_short, key="k", batch_size=3, directory=tmp_path / "run", progress=False)
    assert again.calls == 0, "a finished run is not scored again"


def test_changed_rows_or_key_are_scored_again(tmp_path):
    data = _data(6)
    run_curation(data, CountingScorer(), keep_short, key="k", batch_size=3, directory=tmp_path, progress=False)
    changed = Dataset.from_list(
        [{**r, "text": r["text"] + "!"} if i == 4 else r for i, r in enumerate(data.to_list())]
    )
    scorer = CountingScorer()
    out = run_curation(changed, scorer, keep_short, key="k", batch_size=3, directory=tmp_path, progress=False)
    assert scorer.calls == 1 and scorer.rows_scored == [data[i]["text"] + "!" * (i == 4) for i in range(3, 6)]
    assert out.scores[4]["length"] == len(data[4]["text"]) + 1
    other_key = CountingScorer()
    run_curation(changed, other_key, keep_short, key="k2", batch_size=3, directory=tmp_path, progress=False)
    assert other_key.calls == 2


def test_record_and_summary_written_next_to_the_data(tmp_path):
    data = _data(4)  # texts x, xx, xxx, xxxx; sources a, b, a, b
    rows = [{"text": "x" * 7, "source": "a"}] + data.to_list()  # lengths 7, 1, 2, 3, 4
    out = run_curation(Dataset.from_list(rows), CountingScorer(), keep_short, key="k", batch_size=2,
                       directory=tmp_path, source_column="source", progress=False)  # fmt: skip
    assert [r["text"] for r in out.dataset] == ["x", "xx", "xxx", "xxxx"]
    records = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert records[0] == {
        "index": 0,
        "source": "a",
        "length": 7,
        "odd": True,
        "kept": False,
        "reason": "longer than 5",
    }
    assert [r["kept"] for r in records] == [False, True, True, True, True]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows_in"] == 5 and summary["rows_out"] == 4
    assert summary["kept_per_source"] == {"a": {"kept": 2, "total": 3}, "b": {"kept": 2, "total": 2}}
    assert summary["drop_reasons"] == {"longer than 5": 1}
    hist = summary["score_histograms"]["length"]["all"]
    # lengths 7,1,2,3,4 over [1, 7] in 10 bins of width 0.6: bins 0 (1), 1 (2), 3 (3), 5 (4), 9 (7)
    assert hist["min"] == 1 and hist["max"] == 7 and hist["counts"] == [1, 1, 0, 1, 0, 1, 0, 0, 0, 1]
    assert summary["score_histograms"]["length"]["kept"]["max"] == 4
    assert "odd" not in summary["score_histograms"], "booleans are not histogrammed"


def test_summary_of_nothing_kept_and_rewritten_rows():
    rows = [{"a": 1}, {"a": 2}]
    scores = [{"s": 0.5}, {"s": float("-inf")}]
    decisions = [Decision(True, row={"a": 10}), Decision(False, "bad")]
    summary = summarize(rows, scores, decisions)
    assert summary["rows_out"] == 1 and summary["score_histograms"]["s"]["all"]["non_finite"] == 1
    # a score that is a number on some rows and None on others (a kept row's None included) is histogrammed over
    # the numbers only
    mixed = summarize(rows, [{"s": None}, {"s": 2}], [Decision(True), Decision(True)])
    assert mixed["score_histograms"]["s"]["all"]["count"] == 1 and mixed["score_histograms"]["s"]["kept"]["max"] == 2
    out = run_curation(Dataset.from_list(rows), lambda r: [{"s": 0.0}] * len(r), lambda r, s: decisions,
                       key="k", progress=False)  # fmt: skip
    assert out.dataset.to_list() == [{"a": 10}] and out.directory is None
    none = run_curation(Dataset.from_list(rows), lambda r: [{}] * len(r), lambda r, s: [Decision(False)] * 2,
                        key="k", progress=False)  # fmt: skip
    assert len(none.dataset) == 0 and none.dataset.column_names == ["a"]


def test_loglik_filter_keeps_the_most_likely_rows(tiny_model_dir, tmp_path):
    from trl_ext.inference.curation import loglik_filter
    from trl_ext.inference.scoring import sequence_logprobs
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    rows = uneven_rows()
    data = Dataset.from_list(rows)
    fn = loglik_filter(model, tok, keep_fraction=0.5, batch_size=3, curation_dir=str(tmp_path))
    kept = fn(data)
    # Independently: score all rows in one call and keep the two highest means.
    means = [r["mean_logprob"] for r in sequence_logprobs(model, tok, [r["prompt"] for r in rows],
                                                          [r["completion"] for r in rows], progress=False)]  # fmt: skip
    best = sorted(range(4), key=lambda i: -means[i])[:2]
    assert kept.to_list() == [rows[i] for i in sorted(best)]
    records = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["mean_logprob"] for r in records] == pytest.approx(means, abs=1e-5)
    assert fn.summary["rows_out"] == 2


def _transform(model_dir: str, data: Path, out: Path, nproc: int) -> subprocess.CompletedProcess:
    cmd = ["transform", "loglik_filter", "--model_name_or_path", model_dir, "--dataset_name", data, "--output", out]
    return run_cli(*cmd, "--keep_fraction", "0.5", "--batch_size", "3", nproc=nproc)


@pytest.mark.slow
def test_torchrun_transform_equals_one_process(tiny_model_dir, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in uneven_rows() * 2))  # 8 rows: batches 3, 3, 2
    _transform(tiny_model_dir, data, tmp_path / "one" / "kept.jsonl", nproc=1)
    _transform(tiny_model_dir, data, tmp_path / "two" / "kept.jsonl", nproc=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "kept.jsonl").read_text() == (one / "kept.jsonl").read_text()
    assert len((one / "kept.jsonl").read_text().splitlines()) == 4
    record = Path("kept.jsonl.curation/loglik_filter/train")
    for name in ("scores.jsonl", "summary.json", "manifest.json"):
        assert (two / record / name).read_text() == (one / record / name).read_text(), name
    assert len(list((two / record / "batches").iterdir())) == 3


def test_scoring_throughput_reports_both_rates(tiny_model_dir):
    from trl_ext.inference.curation import scoring_throughput
    from trl_ext.models import load_model, load_tokenizer

    rows = uneven_rows()
    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    model.train()
    out = scoring_throughput(model, tok, [r["prompt"] for r in rows], [r["completion"] for r in rows], batch_size=2)
    assert out["tokens"] > 0 and out["scoring_tokens_per_s"] > 0 and out["forward_tokens_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["scoring_tokens_per_s"] / out["forward_tokens_per_s"])
    assert model.training, "the model's mode is restored"


def test_current_split_names_the_split_apply_transforms_is_on():
    from datasets import DatasetDict

    from trl_ext import Transform
    from trl_ext.data.curation import current_split
    from trl_ext.run.stage import apply_transforms

    seen = []

    def factory():
        def fn(dataset):
            seen.append((current_split(), len(dataset)))
            return dataset

        return fn

    record = Transform(name="probe", factory=factory)
    data = DatasetDict({"train": Dataset.from_list([{"x": 1}] * 3), "test": Dataset.from_list([{"x": 2}])})
    apply_transforms([(record, {})], data, "probe-data")
    assert seen == [("train", 3), ("test", 1)] and current_split() is None
