"""trl_ext.losses.gold_token: a loss f(log p_t, a_t) on the fused head, against full-logit autograd references."""

import math

import pytest
import torch
import torch.nn.functional as F

from trl_ext.losses import LMHead, fused_token_loss
from trl_ext.losses.gold_token import gold_token_loss


def squared_pull(coef):
    def token_loss(lp, a):
        return -lp + 0.5 * coef * (lp - a) ** 2, -1.0 + coef * (lp - a)

    return token_loss


def test_hand_case_value_and_logit_gradient():
    """One token, identity head: p = [0.8, 0.1, 0.1], a = ln 0.6, f = -lp + (lp - a)^2 / 2.

    f = -ln 0.8 + (ln 0.8 - ln 0.6)^2 / 2 = 0.22314 + 0.04139 = 0.26452; df/dlp = -1 + ln(4/3) = -0.71232;
    df/dz = df/dlp * (e_y - p) = -0.71232 * [0.2, -0.1, -0.1]."""
    z = torch.tensor([[math.log(0.8), math.log(0.1), math.log(0.1)]], requires_grad=True)
    loss, stats, values = gold_token_loss(
        z,
        LMHead(torch.eye(3)),
        torch.tensor([0]),
        token_loss=squared_pull(1.0),
        aux=torch.tensor([math.log(0.6)]),
        normalizer=1,
    )
    assert loss.item() == pytest.approx(0.26452, abs=1e-5)
    assert values.item() == pytest.approx(0.26452, abs=1e-5)
    assert stats.nll_weight.item() == pytest.approx(0.71232, abs=1e-5)  # c_t = -df/dlp
    (grad,) = torch.autograd.grad(loss, z)
    assert torch.allclose(grad, torch.tensor([[-0.142464, 0.071232, 0.071232]]), atol=1e-5)


@pytest.mark.parametrize("softcap,scale,bias", [(None, 1.0, False), (None, 1.0, True), (4.0, 0.5, False)])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_matches_full_logits_autograd(softcap, scale, bias, chunk_size):
    g = torch.Generator().manual_seed(3)
    n, h, v = 29, 12, 300
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    b = torch.randn(v, generator=g, requires_grad=True) if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    aux = -torch.rand(n, generator=g) * 6  # log-probs of some teacher
    loss, stats, _ = gold_token_loss(
        hidden,
        LMHead(weight, b, scale, softcap),
        labels,
        token_loss=squared_pull(0.7),
        aux=aux,
        normalizer=17,
        chunk_size=chunk_size,
    )
    inputs = [hidden, weight] + ([b] if bias else [])
    grads = torch.autograd.grad(loss, inputs)

    z = (hidden @ weight.T + (b if bias else 0)) * scale
    z = softcap * torch.tanh(z / softcap) if softcap else z
    lp = F.log_softmax(z, -1).gather(1, labels[:, None])[:, 0]
    expected = (-lp + 0.35 * (lp - aux) ** 2).sum() / 17
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert torch.allclose(stats.log_probs, lp.detach(), atol=1e-5)
    for got, want in zip(grads, torch.autograd.grad(expected, inputs), strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_plain_nll_is_fused_token_loss():
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(9, 6, generator=g), torch.randn(40, 6, generator=g)
    labels = torch.randint(0, 40, (9,), generator=g)
    ours, _, _ = gold_token_loss(
        hidden,
        LMHead(weight),
        labels,
        token_loss=lambda lp, a: (-lp, -torch.ones_like(lp)),
        aux=torch.zeros(9),
        normalizer=9,
        chunk_size=2,
    )
    plain, _ = fused_token_loss(hidden, LMHead(weight), labels, normalizer=9)
    assert ours.item() == pytest.approx(plain.item(), abs=1e-6)


def test_no_scored_tokens_gives_zero():
    loss, _, values = gold_token_loss(
        torch.zeros(0, 4, requires_grad=True),
        LMHead(torch.randn(10, 4)),
        torch.zeros(0, dtype=torch.long),
        token_loss=squared_pull(1.0),
        aux=torch.zeros(0),
        normalizer=0,
    )
    assert loss.item() == 0.0 and values.numel() == 0
