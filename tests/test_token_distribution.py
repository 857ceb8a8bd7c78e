"""trl_ext.losses.distribution: chunked greedy tokens, sampling, and the loss against a distribution of targets,
checked against full-logits references computed here (cross-entropy with label smoothing, argmax, log_softmax)."""

import pytest
import torch
import torch.nn.functional as F

from trl_ext.losses import LMHead
from trl_ext.losses.distribution import greedy_tokens, sample_tokens, target_distribution_loss


def _case(n=19, h=8, v=70, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    b = torch.randn(v, generator=g, requires_grad=True) if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    return hidden, weight, b, labels


def _full_logits(hidden, weight, b, scale, softcap):
    z = (hidden @ weight.T + (b if b is not None else 0)) * scale
    return softcap * torch.tanh(z / softcap) if softcap else z


@pytest.mark.parametrize("softcap,scale", [(None, 1.0), (3.0, 0.6)])
@pytest.mark.parametrize("chunk", [1, 4, None])
def test_greedy_tokens_match_full_logits(softcap, scale, chunk):
    hidden, weight, b, labels = _case()
    ids, logps = greedy_tokens(hidden, LMHead(weight, b, scale, softcap), labels, chunk_size=chunk)
    z = _full_logits(hidden, weight, b, scale, softcap)
    assert torch.equal(ids, z.argmax(-1))
    assert torch.allclose(logps, F.log_softmax(z, -1).gather(1, labels[:, None])[:, 0], atol=1e-5)
    assert not ids.requires_grad and not logps.requires_grad


@pytest.mark.parametrize("softcap,scale", [(None, 1.0), (3.0, 0.6)])
def test_dense_targets_reproduce_label_smoothing_cross_entropy(softcap, scale):
    """W = (1 - eps) e_y + eps / V is cross-entropy with label smoothing eps: loss and gradients (hidden, weight,
    bias) against F.cross_entropy on the full logits."""
    hidden, weight, b, labels = _case()
    eps, v = 0.1, weight.shape[0]

    def smoothed(rows, logp):
        w = torch.full_like(logp, eps / v)
        w[torch.arange(w.shape[0]), labels[rows]] += 1 - eps
        return w

    loss, stats = target_distribution_loss(
        hidden, LMHead(weight, b, scale, softcap), smoothed, normalizer=labels.numel(), chunk_size=4
    )
    z = _full_logits(hidden, weight, b, scale, softcap)
    expected = F.cross_entropy(z, labels, label_smoothing=eps)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    inputs = (hidden, weight, b)
    for got, want in zip(torch.autograd.grad(loss, inputs), torch.autograd.grad(expected, inputs), strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    p = F.softmax(z, -1)
    assert torch.allclose(stats.entropy, -(p * p.log()).sum(-1), atol=1e-5)
    assert torch.equal(stats.argmax, z.argmax(-1))
    assert torch.allclose(stats.target_mass, torch.ones(labels.numel()), atol=1e-6)


def test_sparse_targets_with_repeats_equal_dense_and_token_weights_scale_rows():
    hidden, weight, b, labels = _case(bias=False)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, weight.shape[0], (labels.numel(), 6), generator=g)
    ids[:, 1] = ids[:, 0]  # a repeated target id adds up
    vals = torch.randn(ids.shape, generator=g)
    u = torch.rand(labels.numel(), generator=g)

    def sparse(rows, logp):
        return ids[rows], vals[rows]

    def dense(rows, logp):
        return torch.zeros_like(logp).scatter_add_(1, ids[rows], vals[rows])

    results = []
    for fn in (sparse, dense):
        loss, stats = target_distribution_loss(
            hidden, LMHead(weight), fn, normalizer=3.0, token_weights=u, chunk_size=5
        )
        results.append((loss, *torch.autograd.grad(loss, (hidden, weight)), stats.target_mass))
    for a, c in zip(*results, strict=True):
        assert torch.allclose(a, c, atol=1e-5)
    logp = F.log_softmax(hidden @ weight.T, -1)
    expected = (u * -(vals * logp.gather(1, ids)).sum(1)).sum() / 3.0
    assert results[0][0].item() == pytest.approx(expected.item(), abs=1e-5)
    with torch.no_grad():
        loss_eval, _ = target_distribution_loss(hidden, LMHead(weight), sparse, normalizer=3.0, token_weights=u)
    assert loss_eval.item() == pytest.approx(expected.item(), abs=1e-5) and not loss_eval.requires_grad


def test_sample_tokens_shape_reproducibility_and_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
    a = sample_tokens(logits, 50, 1.3, torch.Generator().manual_seed(4))
    b = sample_tokens(logits, 50, 1.3, torch.Generator().manual_seed(4))
    assert a.shape == (2, 50) and a.dtype == torch.long and torch.equal(a, b)
    cold = sample_tokens(logits, 200, 1e-3, torch.Generator().manual_seed(0))
    assert torch.equal(cold, logits.argmax(-1, keepdim=True).expand(2, 200))
