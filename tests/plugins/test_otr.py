"""OTR: the card's hand cases and statistical checks (shared/papers/otr.md, tests 1-7), the chunked loss against a
naive full-logits implementation, limiting cases against TRL's own DFT loss, and the trainer end to end."""

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.cli import main
from trl_ext.data.arith import is_correct
from trl_ext.losses import LMHead
from trl_ext.losses.distribution import sample_tokens
from trl_ext.testing import (
    check_same_step_in_every_layout,
    first_batch,
    interrupted_and_resumed,
    logged,
    one_step_config,
    relative_grad_diff,
    tiny_model,
    tiny_run_flags,
    tiny_tokenizer,
    train_argv,
    trainer_loss_and_grads,
)
from trl_ext.training.rng import step_seed
from trl_ext_plugins.otr import OTRConfig, OTRTrainer, otr_loss
from trl_ext_plugins.otr.data import build as build_arith_ood

EYE3 = LMHead(torch.eye(3))
P_HAND = torch.tensor([[math.log(4.0), 0.0, 0.0]])  # softmax -> [2/3, 1/6, 1/6]


def _logits(requires_grad=True):
    return P_HAND.clone().requires_grad_(requires_grad)


# --- card test 1: hand case ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dedupe", [True, False])
def test_hand_case_mc(dedupe):
    """p = [2/3, 1/6, 1/6], y = 0, samples [0, 0, 1, 2], beta = -0.1:
    l = -(1/4)[2 ln(2/3) - 0.1 ln(1/6) - 0.1 ln(1/6)] = 0.11314."""
    loss, stats = otr_loss(
        _logits(),
        EYE3,
        torch.tensor([0]),
        normalizer=1,
        beta=-0.1,
        samples=torch.tensor([[0, 0, 1, 2]]),
        dedupe=dedupe,
    )
    assert loss.item() == pytest.approx(0.11314, abs=1e-5)
    assert stats.hit_rate.item() == 0.5 and stats.unique.item() == 3
    assert stats.mean_reward.item() == pytest.approx(0.5 * 1 + 0.5 * -0.1)
    assert stats.gt_logp.item() == pytest.approx(math.log(2 / 3), abs=1e-6)


# --- card test 2: expected mode --------------------------------------------------------------------------------------
def test_expected_hand_case_and_scaled_dft_gradient():
    """tau = 1, beta = -0.1: l = -[1.1 (2/3) ln(2/3) - 0.1 sum_a p_a ln p_a] = 0.21058; d l / d z = 1.1 x DFT's."""
    z = _logits()
    loss, _ = otr_loss(z, EYE3, torch.tensor([0]), normalizer=1, beta=-0.1, temperature=1.0, estimator="expected")
    assert loss.item() == pytest.approx(0.21058, abs=1e-5)
    (grad,) = torch.autograd.grad(loss, z)
    z_dft = _logits()
    logp_y = F.log_softmax(z_dft, -1)[0, 0]
    (grad_dft,) = torch.autograd.grad(-logp_y.exp().detach() * logp_y, z_dft)
    assert torch.allclose(grad, 1.1 * grad_dft, atol=1e-6)


# --- card test 3: MC averages to the expected gradient ---------------------------------------------------------------
def test_mc_gradient_averages_to_expected_gradient():
    """4000 independent MC estimates (K = 64, vocab 5, tau = 1.3): their mean is within 3 sigma of the expected-mode
    gradient, component by component. Each row is one estimate: with normalizer 1 its gradient is its own."""
    n, vocab = 4000, 5
    z0 = torch.tensor([1.0, 0.2, -0.5, 0.7, -1.2])
    head, y = LMHead(torch.eye(vocab)), torch.full((n,), 3)
    z = z0.expand(n, vocab).clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(11)
    loss, _ = otr_loss(
        z, head, y, normalizer=1, num_samples=64, temperature=1.3, beta=-0.1, generator=gen, chunk_size=512
    )
    (per_row,) = torch.autograd.grad(loss, z)
    z1 = z0[None].clone().requires_grad_(True)
    expected_loss, _ = otr_loss(z1, head, y[:1], normalizer=1, temperature=1.3, beta=-0.1, estimator="expected")
    (expected,) = torch.autograd.grad(expected_loss, z1)
    mean, sem = per_row.mean(0), per_row.std(0) / math.sqrt(n)
    assert expected.abs().max() > 10 * sem.max()  # the test has power: the gradient is far from zero
    assert ((mean - expected[0]).abs() <= 3 * sem + 1e-7).all(), (mean, expected, sem)


# --- card test 4: dedupe on/off --------------------------------------------------------------------------------------
def test_dedupe_changes_nothing():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 8, generator=g, requires_grad=True)
    weight = torch.randn(40, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 40, (23,), generator=g)
    samples = torch.randint(0, 40, (23, 16), generator=g)
    samples[:, :5] = labels[:, None]  # repeated samples, some equal to y
    out = {}
    for dedupe in (True, False):
        loss, _ = otr_loss(hidden, LMHead(weight), labels, normalizer=23, samples=samples, dedupe=dedupe, chunk_size=5)
        out[dedupe] = (loss, *torch.autograd.grad(loss, (hidden, weight)))
    for a, b in zip(out[True], out[False], strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# --- card test 5: sampling frequencies -------------------------------------------------------------------------------
def _chi2_sf_df3(x: float) -> float:
    """Survival function of the chi-square distribution with 3 degrees of freedom, in closed form."""
    return math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_sample_frequencies_follow_tempered_softmax():
    z = torch.tensor([[1.5, 0.3, -0.4, 0.9]])
    tau = 1.7
    draws = sample_tokens(z, 100_000, temperature=tau, generator=torch.Generator().manual_seed(5))
    counts = torch.bincount(draws[0], minlength=4).double()
    assert _chi2_sf_df3(_chi2(counts, torch.softmax(z[0].double() / tau, -1))) > 1e-3
    assert _chi2_sf_df3(_chi2(counts, torch.softmax(z[0].double(), -1))) < 1e-3  # tau is really applied


def test_temperature_applies_only_to_sampling():
    """With the same samples the loss does not depend on tau: the trained log-probs are at temperature 1."""
    samples = torch.tensor([[0, 1, 1, 2, 0]])
    losses = [
        otr_loss(_logits(), EYE3, torch.tensor([0]), normalizer=1, temperature=t, samples=samples)[0].item()
        for t in (0.5, 1.0, 3.0)
    ]
    assert losses[0] == losses[1] == losses[2]
    _, stats = otr_loss(_logits(), EYE3, torch.tensor([0]), normalizer=1, temperature=3.0, samples=samples)
    assert stats.gt_logp.item() == pytest.approx(math.log(2 / 3), abs=1e-6)


# --- card test 6: beta = 1 is the score-function identity ------------------------------------------------------------
def test_beta_one_gives_zero_gradient_in_expectation():
    n, vocab = 4000, 6
    z0 = torch.tensor([0.5, 2.0, -1.0, 0.0, 1.0, -0.3])
    head, y = LMHead(torch.eye(vocab)), torch.full((n,), 1)

    def mean_and_sem(beta):
        z = z0.expand(n, vocab).clone().requires_grad_(True)
        loss, _ = otr_loss(
            z,
            head,
            y,
            normalizer=1,
            num_samples=32,
            temperature=1.0,
            beta=beta,
            generator=torch.Generator().manual_seed(2),
        )
        (g,) = torch.autograd.grad(loss, z)
        return g.mean(0), g.std(0) / math.sqrt(n)

    mean, sem = mean_and_sem(1.0)
    assert (mean.abs() <= 4 * sem + 1e-7).all(), (mean, sem)
    mean_neg, sem_neg = mean_and_sem(-0.1)
    assert (mean_neg.abs() > 10 * sem_neg).any()  # a real reward signal is detected at this sample size


# --- card test 7: no gradient through the sampling path --------------------------------------------------------------
def test_no_gradient_through_sampling():
    z = _logits()
    draws = sample_tokens(z, 8, temperature=1.2, generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.long and not draws.requires_grad and draws.grad_fn is None
    # the gradient with samples drawn inside the loss equals autograd's with the same samples held constant
    loss, _ = otr_loss(
        z,
        EYE3,
        torch.tensor([0]),
        normalizer=1,
        num_samples=8,
        temperature=1.2,
        generator=torch.Generator().manual_seed(0),
    )
    (grad,) = torch.autograd.grad(loss, z)
    z2 = _logits()
    r = torch.where(draws[0] == 0, 1.0, -0.1)
    naive = -(r * F.log_softmax(z2, -1)[0, draws[0]]).mean()
    (grad_naive,) = torch.autograd.grad(naive, z2)
    assert loss.item() == pytest.approx(naive.item(), abs=1e-6)
    assert torch.allclose(grad, grad_naive, atol=1e-6)


# --- the chunked loss against a naive full-logits implementation -----------------------------------------------------
@pytest.mark.parametrize("estimator", ["mc", "expected"])
@pytest.mark.parametrize("softcap,scale,bias", [(None, 1.0, False), (4.0, 0.7, True)])
def test_chunked_matches_naive_full_logits(estimator, softcap, scale, bias):
    g = torch.Generator().manual_seed(3)
    n, h, v, k, tau, beta = 29, 12, 300, 10, 1.4, -0.2
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g, requires_grad=True)
    b = torch.randn(v, generator=g, requires_grad=True) if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    samples = torch.randint(0, v, (n, k), generator=g)
    samples[::3, 0] = labels[::3]
    u = torch.rand(n, generator=g)
    loss, _ = otr_loss(
        hidden,
        LMHead(weight, b, scale, softcap),
        labels,
        normalizer=7.0,
        num_samples=k,
        temperature=tau,
        beta=beta,
        estimator=estimator,
        samples=samples,
        token_weights=u,
        chunk_size=6,
    )
    inputs = [hidden, weight] + ([b] if bias else [])
    grads = torch.autograd.grad(loss, inputs)

    z = (hidden @ weight.T + (b if bias else 0)) * scale
    z = softcap * torch.tanh(z / softcap) if softcap else z
    logp = F.log_softmax(z, -1)
    if estimator == "mc":
        reward = torch.where(samples == labels[:, None], 1.0, beta)
        per_token = -(reward * logp.gather(1, samples)).mean(1)
    else:
        explore = torch.softmax(z.detach() / tau, -1)
        reward = torch.full_like(explore, beta)
        reward[torch.arange(n), labels] = 1.0
        per_token = -(explore * reward * logp).sum(1)
    expected = (u * per_token).sum() / 7.0
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    for got, want in zip(grads, torch.autograd.grad(expected, inputs), strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


# --- the trainer -----------------------------------------------------------------------------------------------------
def _config(tmp_path, cls=OTRConfig, **kw):
    return one_step_config(cls, tmp_path, **{"learning_rate": 1e-3, **kw})


def test_expected_tau1_beta0_reproduces_trl_dft(tmp_path, sft_rows):
    """Limiting case: expected mode at tau = 1, beta = 0 is -sg(p_t) log p_t, TRL's loss_type='dft' (1e-6)."""
    dft_loss, dft_grads, *_ = trainer_loss_and_grads(
        SFTTrainer, _config(tmp_path, SFTConfig, loss_type="dft"), sft_rows
    )
    otr_l, otr_grads, *_ = trainer_loss_and_grads(
        OTRTrainer, _config(tmp_path, otr_estimator="expected", otr_temperature=1.0, otr_beta=0.0), sft_rows
    )
    assert otr_l.item() == pytest.approx(dft_loss.item(), abs=1e-6)
    assert relative_grad_diff(otr_grads, dft_grads) < 1e-5


def test_expected_tau1_gradient_is_scaled_dft(tmp_path, sft_rows):
    _, dft_grads, *_ = trainer_loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig, loss_type="dft"), sft_rows)
    _, otr_grads, *_ = trainer_loss_and_grads(
        OTRTrainer, _config(tmp_path, otr_estimator="expected", otr_temperature=1.0, otr_beta=-0.1), sft_rows
    )
    assert relative_grad_diff(otr_grads, dft_grads, scale=1.1) < 1e-5


def test_sequence_normalization_is_mean_of_sequence_means(tmp_path, sft_rows):
    """otr_normalization='sequence' against a per-sequence-mean DFT loss computed here from the full logits."""
    rows = [
        dict(r, completion=[{"role": "assistant", "content": r["completion"][0]["content"] + " ok" * i}])
        for i, r in enumerate(sft_rows[:4])
    ]  # different completion lengths
    loss, grads, trainer, batch = trainer_loss_and_grads(
        OTRTrainer,
        _config(tmp_path, otr_estimator="expected", otr_temperature=1.0, otr_beta=0.0, otr_normalization="sequence"),
        rows,
    )
    model = tiny_model()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    logp = F.log_softmax(logits, -1).gather(2, labels.clamp(min=0)[..., None])[..., 0]
    per_token = -(logp.exp().detach() * logp) * mask
    naive = (per_token.sum(1) / mask.sum(1)).mean()
    naive.backward()
    assert len(set(mask.sum(1).tolist())) > 1
    assert loss.item() == pytest.approx(naive.item(), abs=1e-6)
    naive_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert relative_grad_diff(grads, naive_grads) < 1e-5


def test_mc_training_logs_metrics_and_updates(tmp_path, sft_rows):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = OTRTrainer(
        model=model,
        args=_config(tmp_path, max_steps=2, otr_num_samples=16),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    logged = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert {
        "otr/hit_rate",
        "otr/mean_reward",
        "otr/unique_per_token",
        "otr/gt_logp",
        "entropy",
        "mean_token_accuracy",
        "loss",
    } <= set(logged)
    assert 0.0 <= logged["otr/hit_rate"] <= 1.0 and 1.0 <= logged["otr/unique_per_token"] <= 16
    # mean reward is hit + (1 - hit) * beta, token by token, so also on average
    assert logged["otr/mean_reward"] == pytest.approx(logged["otr/hit_rate"] * 1.1 - 0.1, abs=1e-5)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_rollouts_reproducible_and_vary_with_step(tmp_path, sft_rows):
    def loss_at(step, seed=0):
        cfg = _config(tmp_path, otr_num_samples=4, seed=seed)
        trainer = OTRTrainer(
            model=tiny_model(), args=cfg, train_dataset=Dataset.from_list(sft_rows), processing_class=tiny_tokenizer()
        )
        trainer.state.global_step = step
        batch = first_batch(trainer)
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, batch).item()

    assert loss_at(3) == loss_at(3)
    assert loss_at(3) != loss_at(4)
    assert loss_at(3) != loss_at(3, seed=1)
    assert step_seed(0, 3, 0, 0, "train", "otr") != step_seed(0, 3, 1, 0, "train", "otr")  # processes differ


@pytest.mark.parametrize(
    "field,value",
    [
        ("otr_num_samples", 0),
        ("otr_temperature", 0.0),
        ("otr_beta", 1.5),
        ("otr_estimator", "exact"),
        ("otr_normalization", "batch"),
        ("otr_sample_chunk_rows", 0),
        ("loss_type", "dft"),
    ],
)
def test_config_validation(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_resume_draws_the_same_rollouts(tmp_path, sft_rows):
    """The rollout RNG is derived from global_step: a run resumed at step 2 continues exactly as an unbroken one."""
    rows = sft_rows * 2

    def make(out):
        cfg = _config(
            out,
            max_steps=4,
            per_device_train_batch_size=2,
            save_strategy="steps",
            save_steps=2,
            learning_rate=5e-2,
            otr_num_samples=8,
        )
        return OTRTrainer(
            model=tiny_model(), args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
        )

    full, _, resumed = interrupted_and_resumed(make, tmp_path, 2)

    for key in ("loss", "otr/hit_rate"):
        assert logged(resumed, key)[3] == pytest.approx(logged(full, key)[3], rel=1e-5)
        assert logged(resumed, key)[4] == pytest.approx(logged(full, key)[4], rel=1e-5)
    for (name, p_full), (_, p_res) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.allclose(p_full, p_res, atol=1e-6), name


def test_cli_train_on_builtin_arith_ood(tiny_model_dir, tmp_path):
    out = tmp_path / "otr"
    code = main(
        train_argv(
            "otr",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            "builtin:arith_ood",
            "--otr_num_samples",
            "8",
            *tiny_run_flags(2, 4, logging_steps=1),
        )
    )
    assert code == 0
    assert (out / "model.safetensors").exists()


# --- the built-in dataset --------------------------------------------------------------------------------------------
def test_arith_ood_splits_ranges_and_answers():
    ds = build_arith_ood(n_train=300, n_test=50, n_ood=50, seed=1)
    assert ds["train"].to_list() == build_arith_ood(n_train=300, n_test=50, n_ood=50, seed=1)["train"].to_list()
    questions = {split: {r["prompt"][0]["content"] for r in ds[split]} for split in ds}
    assert not questions["train"] & questions["test"] and len(questions["test"]) == 50
    for split in ds:
        for row in ds[split]:
            question, text = row["prompt"][0]["content"], row["completion"][0]["content"]
            assert is_correct(text, row["answer"])
            numbers = [int(x) for x in re.findall(r"\d+", question)]
            if split == "ood":
                assert any(x >= 100 for x in numbers) and all(x < 1000 for x in numbers), question
            else:
                assert all(x < 100 for x in numbers), question
            for a, op, b, c in re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", text):
                assert {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}[op](
                    int(a), int(b)
                ) == int(c)
                assert op != "/" or int(a) % int(b) == 0


# --- gradient accumulation and 2 processes ---------------------------------------------------------------------------
DDP_SCRIPT = Path(__file__).parents[1] / "distributed" / "otr_ddp.py"


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["token", "sequence"])
def test_same_update_on_one_process_accumulation_and_two_processes(tmp_path, normalization):
    check_same_step_in_every_layout(DDP_SCRIPT, tmp_path, normalization)
