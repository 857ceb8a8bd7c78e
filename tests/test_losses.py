"""The shared fused token loss beyond ASFT's use: fixed token weights, no-grad evaluation, argument checks."""

import pytest
import torch
import torch.nn.functional as F

from trl_ext.losses import LMHead, dft_weight, fused_token_loss, head_share


def _case(n=11, h=8, v=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    labels = torch.randint(0, v, (n,), generator=g)
    return hidden, weight, labels


def test_token_weights_scale_each_token_nll():
    hidden, weight, labels = _case()
    w = torch.linspace(0.0, 2.0, labels.numel())
    loss, stats = fused_token_loss(
        hidden, LMHead(weight), labels, normalizer=7, nll_weight=dft_weight, token_weights=w, chunk_size=3
    )
    logp = F.log_softmax(hidden @ weight.T, -1).gather(1, labels[:, None])[:, 0]
    expected = -(w * logp.exp().detach() * logp).sum() / 7
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    for got, want in zip(
        torch.autograd.grad(loss, (hidden, weight)), torch.autograd.grad(expected, (hidden, weight)), strict=True
    ):
        assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(stats.nll_weight, w * logp.exp().detach(), atol=1e-6)


def test_zero_weights_give_zero_loss_and_gradient():
    hidden, weight, labels = _case()
    loss, _ = fused_token_loss(hidden, LMHead(weight), labels, normalizer=1, token_weights=torch.zeros(labels.numel()))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().max().item() == 0.0


def test_no_grad_evaluation_matches():
    hidden, weight, labels = _case()
    with torch.no_grad():
        loss_eval, _ = fused_token_loss(hidden, LMHead(weight), labels, normalizer=labels.numel())
    loss_train, _ = fused_token_loss(hidden, LMHead(weight), labels, normalizer=labels.numel())
    expected = F.cross_entropy(hidden @ weight.T, labels)
    assert loss_eval.item() == pytest.approx(expected.item(), abs=1e-6)
    assert loss_train.item() == pytest.approx(expected.item(), abs=1e-6)
    assert not loss_eval.requires_grad


def test_reference_needs_its_head():
    hidden, weight, labels = _case()
    with pytest.raises(ValueError, match="go together"):
        fused_token_loss(hidden, LMHead(weight), labels, normalizer=1, ref_hidden=hidden.detach())


@pytest.mark.parametrize("tied", [False, True])
def test_head_share_counts_matmul_parameters_per_token(tied):
    from trl_ext.testing import tiny_model

    # hidden 32, intermediate 64, 4 heads of 8, 2 kv heads: per layer q 1024 + k 512 + v 512 + o 1024 + mlp 6144
    # + 2 norms 64 = 9280; 4 layers + final norm 32 = 37152; head 100 x 32 = 3200, counted once when tied to the
    # (lookup-only) embedding table.
    model = tiny_model(vocab_size=100, hidden_size=32, num_layers=4, tie_word_embeddings=tied)
    assert head_share(model) == pytest.approx(3200 / (37152 + 3200))
