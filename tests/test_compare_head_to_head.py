"""`trl-ext compare --head_to_head A:B`: arm A against arm B row by row on every metric (PiKa's pairwise win rate of
one arm's answers over another's, under the same judge)."""

import json
import math

import pytest

from trl_ext.cli import main
from trl_ext.cli.compare import comparison_from
from trl_ext.compare.metrics import head_to_head


def test_wins_ties_losses_by_hand():
    """Rows 0 and 3 won, 1 and 2 tied, row 4 unmeasured on A's side (dropped): 2 wins of 4; A - B = [1, 0, 0, 1]:
    mean 0.5 ± 1.96 * sqrt(1/3) / 2 = 0.565803."""
    duel = head_to_head([1.0, 0.0, 1.0, 1.0, math.nan], [0.0, 0.0, 1.0, 0.0, 1.0])
    assert {k: duel[k] for k in ("wins", "ties", "losses", "rows")} == {"wins": 2, "ties": 2, "losses": 0, "rows": 4}
    assert duel["win_rate"] == 0.5
    assert (duel["mean"], duel["ci_low"], duel["ci_high"]) == pytest.approx(
        (0.5, 0.5 - 0.565803, 0.5 + 0.565803), abs=1e-6
    )
    # lower is better (perplexity): 1.2 < 1.5 wins, 2.0 = 2.0 ties, 3.0 > 2.5 loses
    low = head_to_head([1.2, 2.0, 3.0], [1.5, 2.0, 2.5], higher_is_better=False)
    assert (low["wins"], low["ties"], low["losses"], low["win_rate"]) == (1, 1, 1, pytest.approx(1 / 3))
    assert head_to_head([1.0, 0.0], [1.0]) is None


def test_pairs_expand_per_seed_and_bad_pairs_are_refused():
    argv = ["base", "sft", "dft=sft", "--dataset_name", "builtin:arith", "--eval", "perplexity"]
    comparison = comparison_from([*argv, "--seeds", "0,1", "--head_to_head", "sft:base", "--head_to_head", "sft:dft"])
    comparison.checked_pairs()
    assert comparison.head_to_head == [
        ("sft-s0", "base"),
        ("sft-s1", "base"),
        ("sft-s0", "dft-s0"),
        ("sft-s1", "dft-s1"),
    ]
    from trl_ext.run.recipe import RecipeError

    for pair, message in (("sft:sft", "names one arm twice"), ("sft:grpo", "'grpo' is not an arm")):
        with pytest.raises(RecipeError, match=message):
            comparison_from([*argv, "--head_to_head", pair]).checked_pairs()


def test_refused_before_any_model_loads(tmp_path, no_model_load, capsys):
    argv = ["compare", "base", "sft", "--dataset_name", "builtin:arith", "--eval", "perplexity"]
    argv += ["--output_dir", str(tmp_path / "x"), "--head_to_head"]
    assert main([*argv, "sft:base:dft"]) != 0
    assert "pairs of arm labels, A:B or [A, B], got 'sft:base:dft'" in capsys.readouterr().err
    assert main([*argv, "sft:ppo"]) != 0
    assert "'ppo' is not an arm of this comparison" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text(
        "arms: [base, {method: sft, label: sft, eval_dataset_config: default}]\n"
        "dataset_name: builtin:arith\neval: perplexity\nhead_to_head: [[sft, base]]\n"
    )
    assert main(["compare", "--config", str(config), "--output_dir", str(tmp_path / "y")]) != 0
    assert "evaluated differently" in capsys.readouterr().err


def test_a_trained_arm_against_the_base_arm_through_the_cli(tiny_model_dir, tmp_path, capsys):
    """Every metric gets its duel; wins, ties and losses counted here from the two arms' per-row values."""
    out = tmp_path / "cmp"
    argv = ["compare", "base", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith"]
    argv += ["--max_steps", "1", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--eval"]
    argv += ["perplexity", "--also_eval", "numeric_match", "--eval_rows", "4", "--eval_max_new_tokens", "4"]
    argv += ["--output_dir", str(out), "--head_to_head", "sft:base"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "compare.json").read_text())
    base, sft = report["arms"]
    duels = {duel["metric"]: duel for duel in report["head_to_head"]}
    assert set(duels) == {"perplexity", "numeric_match"}
    for metric, mine, theirs, higher in (
        ("perplexity", sft["per_row"], base["per_row"], False),
        ("numeric_match", sft["also"]["numeric_match"]["per_row"], base["also"]["numeric_match"]["per_row"], True),
    ):
        wins = sum((a > b) if higher else (a < b) for a, b in zip(mine, theirs, strict=True))
        ties = sum(a == b for a, b in zip(mine, theirs, strict=True))
        duel = duels[metric]
        assert (duel["arm"], duel["against"], duel["rows"]) == ("sft", "base", 4)
        assert (duel["wins"], duel["ties"], duel["losses"]) == (wins, ties, 4 - wins - ties)
        assert duel["mean"] == pytest.approx(sum(a - b for a, b in zip(mine, theirs, strict=True)) / 4)
    assert sft["per_row"] != base["per_row"]  # the trained arm moved, so the perplexity duel is not all ties
    row = f"| sft | base | perplexity | {duels['perplexity']['wins']} |"
    assert row in (out / "compare.md").read_text()
    assert "head to head (the same rows)" in printed and f"{duels['perplexity']['wins']}/4 = " in printed
