"""trl_ext.training.perturbation: the normalised ascent step, the functional forward at phi + sg(c), and the emulation of
weights moved in place between forward and backward, each against a hand computation or a naive in-place run."""

import pytest
import torch
import torch.nn.functional as F

from trl_ext.training.perturbation import (
    PerturbationRef,
    ascent_perturbation,
    backward_reads_perturbed,
    perturbed_forward,
    trainable_parameters,
)


def test_ascent_step_by_hand():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0], requires_grad=True)
    loss = (a * torch.tensor([3.0, 0.0])).sum() + 2.0 * b.sum()  # g_a = [3, 0], g_b = [2], ||g|| = sqrt(13)
    c, norm = ascent_perturbation(loss, {"a": a, "b": b}, alpha=0.5)
    assert norm.item() == pytest.approx(13**0.5)
    assert torch.allclose(c["a"], torch.tensor([1.5, 0.0]) / 13**0.5)
    assert torch.allclose(c["b"], torch.tensor([1.0]) / 13**0.5)
    assert a.grad is None and b.grad is None  # no .grad written
    total = torch.sqrt(sum(v.pow(2).sum() for v in c.values()))
    assert total.item() == pytest.approx(0.5, abs=1e-7)


def test_a_parameter_without_gradient_is_an_error_not_a_zero():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    unused = torch.tensor([5.0, 5.0], requires_grad=True)
    with pytest.raises(ValueError, match="does not reach unused"):
        ascent_perturbation((3.0 * a).sum(), {"a": a, "unused": unused}, alpha=0.5)


def test_zero_gradient_gives_zero_step():
    w = torch.ones(3, requires_grad=True)
    c, norm = ascent_perturbation((w * 0.0).sum(), {"w": w}, alpha=0.1)
    assert norm.item() == 0.0 and torch.equal(c["w"], torch.zeros(3))


def test_perturbed_forward_evaluates_at_phi_plus_c_and_trains_phi():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    params = trainable_parameters(layer)
    c = {n: 0.1 * torch.randn_like(p) for n, p in params.items()}
    before = {n: p.detach().clone() for n, p in params.items()}
    out = perturbed_forward(layer, params, c, x)
    expected = F.linear(x, before["weight"] + c["weight"], before["bias"] + c["bias"])
    assert torch.allclose(out, expected)
    out.pow(2).sum().backward()
    w = (before["weight"] + c["weight"]).requires_grad_()
    F.linear(x, w, before["bias"] + c["bias"]).pow(2).sum().backward()
    assert torch.allclose(layer.weight.grad, w.grad)  # d/d phi of L(phi + c) = L'(phi + c)
    assert all(torch.equal(p, before[n]) for n, p in params.items())


def test_trainable_parameters_skip_frozen():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].requires_grad_(False)
    assert set(trainable_parameters(model)) == {"1.weight", "1.bias"}


def _two_layers():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


def test_backward_reads_perturbed_equals_moving_weights_in_place():
    x = torch.randn(5, 4)
    model = _two_layers()
    params = trainable_parameters(model)
    c = {n: 0.2 * torch.randn_like(p) for n, p in params.items()}

    # the official code: forward at phi, move the weights in place, backward, move them back
    reference = _two_layers()
    loss = reference(x).pow(2).sum()
    for n, p in reference.named_parameters():
        p.data.add_(c[n])  # `.data`: autograd does not see the move, as in the official code
    loss.backward()
    expected = {n: p.grad.clone() for n, p in reference.named_parameters()}

    ref = PerturbationRef()
    with backward_reads_perturbed(params, ref):
        loss = model(x).pow(2).sum()
    ref.value = c
    loss.backward()
    for n, p in params.items():
        assert torch.allclose(p.grad, expected[n], atol=1e-6), n

    plain = _two_layers()
    plain(x).pow(2).sum().backward()
    assert any(not torch.allclose(p.grad, expected[n]) for n, p in plain.named_parameters())  # it matters


def test_backward_reads_phi_without_a_perturbation():
    x = torch.randn(5, 4)
    model, plain = _two_layers(), _two_layers()
    with backward_reads_perturbed(trainable_parameters(model), PerturbationRef()):
        loss = model(x).pow(2).sum()
    loss.backward()
    plain(x).pow(2).sum().backward()
    for (n, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), n
