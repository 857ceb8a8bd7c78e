"""`token_logprobs(..., prefix_lengths=...)`: a prefix shared by several sequences runs once and its KV cache serves
them all. Expected values come from one plain forward per sequence with a dense log_softmax over the full logits,
independent of the code under test; the test also checks that the shared path really ran (fewer tokens fed)."""

from __future__ import annotations

import pytest
import torch

from trl_ext.inference.scoring import token_logprobs
from trl_ext.testing import tiny_model


def dense_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1: one unpadded forward, full (T, V) logits, log_softmax in float64."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()


def expected(model, seqs, masks):
    return [
        [lp for lp, keep in zip(dense_logprobs(model, s), m[1:], strict=True) if keep]
        for s, m in zip(seqs, masks, strict=True)
    ]


class TokenCounter:
    """Counts the real tokens the model's embedding layer sees (padding is id 0; the rows' ids are >= 1)."""

    def __init__(self, model):
        self.tokens = 0
        model.get_input_embeddings().register_forward_hook(self)

    def __call__(self, module, args, output):
        self.tokens += int((args[0] != 0).sum())


def random_ids(g, n, vocab):
    return torch.randint(1, vocab, (n,), generator=g).tolist()


def grouped_rows(vocab: int, seed: int = 0):
    """Two GRPO-like groups with prefixes of different lengths (so the prefix batch is left-padded) and
    continuations of different lengths (right-padded, one of a single token), plus a sequence whose prefix nobody
    shares and one that is all prefix (both on the plain path). Masks mark every continuation token and, in the
    first group, some prefix tokens too."""
    g = torch.Generator().manual_seed(seed)
    prefixes = [random_ids(g, 23, vocab), random_ids(g, 9, vocab)]
    seqs, masks, lengths = [], [], []
    for k, prefix in enumerate(prefixes):
        for n in (6, 19, 1, 31):
            seqs.append(prefix + random_ids(g, n, vocab))
            masks.append([t >= len(prefix) or (k == 0 and t % 4 == 1) for t in range(len(seqs[-1]))])
            lengths.append(len(prefix))
    alone = random_ids(g, 14, vocab)
    seqs += [alone, prefixes[1][:]]
    masks += [[t > 5 for t in range(14)], [True] * len(prefixes[1])]
    lengths += [6, len(prefixes[1])]
    return seqs, masks, lengths


@pytest.mark.parametrize("batch_size", [2, 3, 8, 16])
def test_shared_prefix_equals_full_forwards_on_a_tiny_model(batch_size):
    model = tiny_model(vocab_size=128, seed=2)
    seqs, masks, lengths = grouped_rows(128)
    want = expected(model, seqs, masks)
    counter = TokenCounter(model)
    got = token_logprobs(model, seqs, masks, batch_size=batch_size, prefix_lengths=lengths, vocab_chunk_size=50)
    shared_tokens = counter.tokens
    counter.tokens = 0
    plain = token_logprobs(model, seqs, masks, batch_size=batch_size, vocab_chunk_size=50)
    for g_, p_, w in zip(got, plain, want, strict=True):
        assert len(g_) == len(w) and len(p_) == len(w)
        assert g_ == pytest.approx(w, abs=1e-5, rel=1e-5)
        assert p_ == pytest.approx(w, abs=1e-5, rel=1e-5)
    # The shared path ran: each group's prefix (23 and 9 tokens) was fed once (per group of <= batch_size), not once
    # per sequence. With batch_size 2 the groups split into pairs and the saving is smaller but still there.
    assert shared_tokens < counter.tokens


def test_without_groups_the_plain_path_is_taken_unchanged():
    model = tiny_model(vocab_size=128, seed=4)
    g = torch.Generator().manual_seed(1)
    seqs = [random_ids(g, n, 128) for n in (12, 30, 5)]
    masks = [[t % 2 == 0 for t in range(len(s))] for s in seqs]
    counter = TokenCounter(model)
    got = token_logprobs(model, seqs, masks, batch_size=2, prefix_lengths=[4, 4, 4])  # prefixes all differ
    assert counter.tokens == 12 + 30 + 5  # each sequence fed once, on the plain path
    for g_, w in zip(got, expected(model, seqs, masks), strict=True):
        assert g_ == pytest.approx(w, abs=1e-5, rel=1e-5)
    with pytest.raises(ValueError, match="prefix lengths"):
        token_logprobs(model, seqs, masks, prefix_lengths=[1])


def test_shared_prefix_keeps_the_training_mode_and_empty_sequences():
    model = tiny_model(vocab_size=128, seed=5)
    model.train()
    seqs = [[5, 6, 7, 8], [5, 6, 7, 9, 10], []]
    masks = [[0, 0, 1, 1], [0, 0, 1, 1, 1], []]
    got = token_logprobs(model, seqs, masks, prefix_lengths=[3, 3, 0])
    assert model.training
    assert got[2] == []
    for g_, w in zip(got[:2], expected(model, seqs[:2], masks[:2]), strict=True):
        assert g_ == pytest.approx(w, abs=1e-5, rel=1e-5)


@pytest.mark.slow
def test_shared_prefix_equals_full_forwards_on_smollm2():
    from trl_ext.inference.scoring import load_scorer
    from trl_ext_plugins.conmax.config import ConMaxConfig
    from trl_ext_plugins.conmax.scoring import build_sequence, query_text

    model, tok = load_scorer("smollm2-135m")
    cfg = ConMaxConfig()
    rows = []  # two queries, each with three compressions of different lengths
    for query, answer, traces in (
        ("Tom has 3 apples and buys 4 more. How many?", "7", ["3 + 4 = 7.", "3 plus 4 is 7, so 7 apples.", "7"]),
        ("A box holds 12 pens; 5 are taken.", "7", ["12 - 5 = 7.", "Take 5 from 12: 7 are left.", "12-5"]),
    ):
        for trace in traces:
            rows.append(build_sequence(tok, query_text(query, tok), trace, answer, cfg))
    seqs = [r.input_ids for r in rows]
    masks = [r.target_mask() for r in rows]
    lengths = [r.think_span[0] for r in rows]
    assert lengths[0] != lengths[3]  # the two queries' prefixes differ in length: the prefix batch is left-padded
    got = token_logprobs(model, seqs, masks, batch_size=8, prefix_lengths=lengths)
    for g_, w in zip(got, expected(model, seqs, masks), strict=True):
        assert len(g_) == len(w)
        assert g_ == pytest.approx(w, abs=1e-4, rel=1e-4)
