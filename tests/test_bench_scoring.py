"""`trl-ext bench scoring`: the report flags a scoring transform below 90% of a bare forward's tokens/s. The verdict
is tested on fixed numbers and on fake scorers whose speed is never in doubt (a sleep against nothing); real timings
are printed by the bench, never asserted."""

from __future__ import annotations

import json
import time

import pytest

from trl_ext.cli import bench, bench_scoring


def test_verdict_flags_below_ninety_percent():
    slow = bench_scoring.verdict(1000, scoring_s=2.0, forward_s=1.0)
    assert slow["scoring_tokens_per_s"] == 500 and slow["forward_tokens_per_s"] == 1000
    assert slow["ratio"] == pytest.approx(0.5) and slow["defect"]
    assert not bench_scoring.verdict(1000, scoring_s=1.0, forward_s=0.9)["defect"]  # exactly 90%: the bar is met
    assert bench_scoring.verdict(1000, scoring_s=1.0, forward_s=0.89)["defect"]
    fast = bench_scoring.verdict(1000, scoring_s=0.8, forward_s=1.0)
    assert fast["ratio"] == pytest.approx(1.25) and not fast["defect"]


def test_compare_times_both_sides_and_flags_a_slow_scorer():
    calls = {"scoring": 0, "forward": 0}

    def slow_scoring():
        calls["scoring"] += 1
        time.sleep(0.05)

    def instant_forward():
        calls["forward"] += 1

    result = bench_scoring.compare(100, slow_scoring, instant_forward, repeats=3)
    assert calls == {"scoring": 3, "forward": 3}
    assert result["scoring_s"] >= 0.05 and result["defect"]
    assert "BELOW 90%" in bench_scoring.format_report(
        {
            "transform": "t",
            "model": "m",
            "dtype": "float32",
            "device": "cpu",
            "dataset": "d",
            "rows": 1,
            "batch_size": 1,
            "repeats": 3,
            **result,
        }  # fmt: skip
    )
    assert not bench_scoring.compare(100, lambda: None, lambda: time.sleep(0.02), repeats=1)["defect"]


def test_bench_scoring_flags_a_fake_slow_scorer_through_the_cli(tiny_model_dir, monkeypatch, capsys):
    """The real transform (loglik_filter) and the real bare forward on a tiny model, with the transform's scorer
    slowed by a sleep per batch: the bench counts the rendered tokens, calls the scorer on every row, and flags it."""
    from trl_ext.data import load_dataset
    from trl_ext.inference import curation
    from trl_ext.inference.scoring import tokenize_pair
    from trl_ext.models import load_tokenizer

    real = curation.loglik_scores
    scored_rows = []

    def slow_loglik_scores(model, tokenizer, prompts, completions, **kwargs):
        scored_rows.append(len(prompts))
        time.sleep(0.25)
        return real(model, tokenizer, prompts, completions, **kwargs)

    monkeypatch.setattr(curation, "loglik_scores", slow_loglik_scores)
    flags = ["--model_name_or_path", tiny_model_dir, "--rows", "6", "--batch_size", "4", "--repeats", "2"]
    assert bench.main(["scoring", *flags, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    tok = load_tokenizer(tiny_model_dir)
    rows = load_dataset("builtin:arith", form="sft")["train"].select(range(6))
    assert report["tokens"] == sum(len(tokenize_pair(tok, r["prompt"], r["completion"])[0]) for r in rows)
    assert report["rows"] == 6 and report["transform"] == "loglik_filter"
    assert scored_rows == [4] + [4, 2] * 2  # the warm-up batch, then every row in each timed run
    assert report["defect"] and report["ratio"] < 0.9
    assert report["scoring_s"] >= 0.5  # two batches, each slept 0.25 s
    bench.main(["scoring", *flags, "--repeats", "1"])
    assert "BELOW 90%: a defect to fix" in capsys.readouterr().out
