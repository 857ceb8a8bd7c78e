"""BLEU and BERTScore of generated text (trl_ext.evaluation.text_metrics): expected values by hand."""

import math

import pytest
import torch

from trl_ext.evaluation.text_metrics import bertscore, corpus_bleu, greedy_match


def test_bleu_of_an_identical_corpus_is_100():
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)


def test_bleu_of_a_short_exact_prefix_is_the_brevity_penalty():
    # Every n-gram of the 4-token hypothesis is in the 5-token reference: precisions 1, BP = exp(1 - 5/4).
    assert corpus_bleu(["a b c d"], ["a b c d e"]) == pytest.approx(100 * math.exp(1 - 5 / 4), abs=1e-3)


def test_bleu_without_a_shared_word_is_0():
    assert corpus_bleu(["x y z w"], ["a b c d"]) == pytest.approx(0.0)


def test_bleu_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_greedy_match_hand_values():
    e1, e2 = torch.eye(2)
    # Candidate tokens {e1, e2}, reference {e1}: P = (1 + 0) / 2, R = 1, F1 = 2·0.5·1 / 1.5.
    p, r, f = greedy_match(torch.stack([e1, e2]), torch.stack([e1]))
    assert (p, r, f) == pytest.approx((0.5, 1.0, 2 / 3))
    # Scale does not matter (cosine), and (1, 1) vs e1 is 45 degrees: cos = 1/sqrt(2).
    p, r, f = greedy_match(torch.tensor([[3.0, 3.0]]), torch.stack([2 * e1]))
    assert (p, r, f) == pytest.approx((1 / math.sqrt(2),) * 3)
    assert greedy_match(torch.zeros(0, 2), torch.stack([e1])) == (0.0, 0.0, 0.0)


def test_bertscore_with_the_builtin_encoder():
    a = "The tumour has spread to distant organs, so the risk is high."
    b = "Distant metastases mean a poor prognosis."
    score = bertscore([a, a, b], [a, b, a])
    assert score.f1[0] == pytest.approx(1.0, abs=1e-5)  # a text against itself
    assert score.precision[1] == pytest.approx(score.recall[2], abs=1e-5)  # P(a, b) = R(b, a)
    assert score.f1[1] == pytest.approx(score.f1[2], abs=1e-5) and score.f1[1] < 0.99
    assert score.mean()["bertscore_f1"] == pytest.approx(sum(score.f1) / 3)


def test_distinct_n_pools_the_ngrams_of_every_text():
    from trl_ext.evaluation.diversity import distinct_n

    # bigrams: (a b), (b a), (a b) | (a b) -> 2 unique of 4
    assert distinct_n(["a b a b", "a b"], 2) == 0.5
    assert distinct_n(["x", "y"], 2) == 0.0  # no bigram at all
    assert distinct_n(["a,b a"], 1, split=lambda t: t.replace(",", " ").split()) == 2 / 3
    with pytest.raises(ValueError, match="n=0"):
        distinct_n(["a"], 0)
