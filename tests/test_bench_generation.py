"""`trl-ext bench generation`: a sampling transform (rif_rft) against a bare `model.generate` of the same rollouts.
The verdict and the token count are tested on fixed numbers; the command end to end on a tiny model, where both
sides must sample the same rollouts; real timings are printed by the bench, never asserted."""

from __future__ import annotations

import json

import pytest

from trl_ext.cli import bench, bench_generation
from trl_ext.cli import main as cli_main
from trl_ext.cli.errors import CLIError


def test_verdict_on_tokens_and_on_prompts():
    slow = bench_generation.verdict(8, transform_s=2.0, bare_s=1.0, transform_tokens=400, bare_tokens=400)
    assert slow["transform_tokens_per_s"] == 200 and slow["bare_tokens_per_s"] == 400
    assert slow["transform_prompts_per_s"] == 4 and slow["bare_prompts_per_s"] == 8
    assert slow["basis"] == "tokens/s" and slow["ratio"] == pytest.approx(0.5) and slow["defect"]
    assert slow["cpu_ratio"] is None  # no CPU-seconds given
    cpu = bench_generation.verdict(8, 1.0, 1.0, 300, 100, transform_cpu_s=2.0, bare_cpu_s=1.0)
    assert cpu["ratio"] == pytest.approx(3.0) and cpu["cpu_ratio"] == pytest.approx(1.5)  # 150 vs 100 tokens/CPU-s
    # exactly 90% meets the bar; just under does not
    assert not bench_generation.verdict(8, 1.0, 0.9, 100, 100)["defect"]
    assert bench_generation.verdict(8, 1.0, 0.89, 100, 100)["defect"]
    # tokens/s, not time: the transform sampled twice the tokens in 1.5x the time -> 1.33
    more = bench_generation.verdict(8, 1.5, 1.0, 200, 100)
    assert more["ratio"] == pytest.approx(4 / 3) and not more["defect"]
    # the transform's tokens unseen: prompts/s
    blind = bench_generation.verdict(8, transform_s=4.0, bare_s=1.0, bare_tokens=100)
    assert blind["basis"] == "prompts/s" and blind["ratio"] == pytest.approx(0.25) and blind["defect"]
    assert blind["transform_tokens_per_s"] is None and blind["bare_tokens_per_s"] == 100
    assert "BELOW 90%: a defect to fix" in bench_generation.format_report(
        {
            "transform": "t",
            "model": "m",
            "dtype": "float32",
            "device": "cpu",
            "dataset": "d",
            "rollouts_per_prompt": 2,
            "rollouts": 16,
            "max_new_tokens": 4,
            "temperature": 1.0,
            "top_p": 1.0,
            "batch_size": 4,
            "repeats": 1,
            "generate_calls": 0,
            "same_samples": False,
            **blind,
        }  # fmt: skip
    )


def test_compare_takes_turns_and_reports_medians():
    order = []
    result = bench_generation.compare(lambda: order.append("t"), lambda: order.append("b"), repeats=3)
    assert order == ["b", "t", "t", "b", "b", "t"]
    assert set(result) == {"transform_s", "transform_cpu_s", "bare_s", "bare_cpu_s"}


def test_generated_tokens_stop_at_the_first_stop_token():
    eos, pad, stop = 2, 0, {2, 7}
    assert bench_generation.generated_tokens([[5, 6, eos, pad, pad]], stop) == 3  # EOS in the middle, padding after
    assert bench_generation.generated_tokens([[5, 6, 8, 9]], stop) == 4  # no stop token: every token
    assert bench_generation.generated_tokens([[eos, eos, eos]], stop) == 1  # pad id = EOS id: the first one counts
    assert bench_generation.generated_tokens([[4, 7, 2, 5]], stop) == 2  # any stop id ends it
    # left-padded prompts of width 3 ahead of the completions; a stop id inside the prompt is not a completion's end
    rows = [[pad, 4, eos, 5, eos, pad], [3, 4, 4, 5, 6, 8]]
    assert bench_generation.generated_tokens(rows, stop, prompt_width=3) == 2 + 3


def test_bench_generation_runs_rif_rft_against_bare_generate(tiny_model_dir, capsys):
    """rif_rft on a tiny model, 3 prompts (a partial last batch), K=2: the report counts 6 rollouts, the bare side
    samples the transform's very rollouts (same random state per batch), and the transform's defaults fill what
    was not given (temperature, top_p)."""
    flags = ["rif_rft", "--model_name_or_path", tiny_model_dir, "--dataset_config", "add", "--rows", "3"]
    flags += ["--repeats", "1", "--rewards", "rif_task_reward", "--num_rollouts", "2", "--max_new_tokens", "4"]
    flags += ["--batch_size", "2", "--drop_all_wrong", "false"]  # the tiny model solves nothing
    assert bench.main(["generation", *flags, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["transform"] == "rif_rft" and report["prompts"] == 3
    assert report["rollouts_per_prompt"] == 2 and report["rollouts"] == 3 * 2
    assert report["batch_size"] == 2 and report["generate_calls"] == 2  # 2 + 1 prompts
    assert report["temperature"] == 1.0 and report["top_p"] == 1.0  # make_rif_transform's defaults
    for side in ("transform", "bare"):
        assert 0 < report[f"{side}_tokens"] <= 3 * 2 * 4
        assert report[f"{side}_s"] > 0 and report[f"{side}_tokens_per_s"] > 0
    assert report["same_samples"] and report["transform_tokens"] == report["bare_tokens"]
    assert report["basis"] == "tokens/s" and report["defect"] == (report["ratio"] < 0.9)


def test_a_transform_that_does_not_sample_is_refused(tiny_model_dir, capsys):
    with pytest.raises(CLIError, match="does not sample rollouts with the model .*num_rollouts or max_new_tokens"):
        bench.main(["generation", "loglik_filter", "--model_name_or_path", tiny_model_dir])
    # through the command line: one line, usage exit code, before any model loads
    assert cli_main(["bench", "generation", "loglik_filter", "--model_name_or_path", tiny_model_dir]) == 2
    assert "trl-ext: error: transform 'loglik_filter' does not sample rollouts" in capsys.readouterr().err
