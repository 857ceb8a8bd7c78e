"""VLA-OPD (arXiv 2603.26666): the card's hand values, each estimator against a second, full-logit implementation,
the limiting case student == teacher, equality with TRL's DistillationTrainer (beta 1 / 0), the sampled estimator's
expected gradient, the refusals before training, and a CLI run with a saved tiny teacher."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer

from trl_ext.cli import main
from trl_ext.compat.distillation import trl_divergence_loss
from trl_ext.compat.trainer import prepare_inputs
from trl_ext.losses.divergence import divergence_stats, hard_ce_loss, sampled_reverse_kl_loss
from trl_ext.losses.token_loss import LMHead
from trl_ext.testing import save_tiny_model, tiny_model, tiny_tokenizer
from trl_ext.training.teacher import TeacherError
from trl_ext_plugins.vla_opd import VlaOpdConfig, VlaOpdTrainer, repeat_rows

LN2 = math.log(2)


def _config(tmp_path, **kwargs):
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        max_completion_length=6,
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        shuffle_dataset=False,
        save_strategy="no",
    )
    return base | kwargs


def _rows(n=4):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}]} for i in range(n)])


def _divergence(config, *tensors, completion_ids=None, **kwargs):
    """VlaOpdTrainer's per-token objective outside a trainer (it reads only `args`)."""
    holder = SimpleNamespace(args=config, _opd_sums={})
    if completion_ids is None:
        completion_ids = torch.zeros(tensors[4].shape, dtype=torch.long)
    out = VlaOpdTrainer._divergence(holder, completion_ids, *tensors, **kwargs)
    return out, holder._opd_sums


def _one_position(p, q):
    """Hidden states log p / log q through identity heads: one completion position whose distributions are p, q."""
    h_s = torch.tensor(p).log().reshape(1, 1, 3).requires_grad_()
    h_t = torch.tensor(q).log().reshape(1, 1, 3)
    eye = torch.eye(3)
    return h_s, h_t, eye, eye.clone(), torch.ones(1, 1, dtype=torch.long)


# --- card test 2: hand values (0.25 ln 2 = 0.17329; 0.34657 and 0.41589 in the asymmetric case) ------------------
HAND = [
    ([0.5, 0.25, 0.25], [0.25, 0.5, 0.25], 0.25 * LN2, 0.25 * LN2),
    # RKL = 0.8 ln 2 + 0.1 ln(1/4) + 0.1 ln(1/2) = 0.5 ln 2 = 0.34657; FKL = 0.4 ln(1/2) + 0.4 ln 4 + 0.2 ln 2 = 0.6 ln 2
    ([0.8, 0.1, 0.1], [0.4, 0.4, 0.2], 0.5 * LN2, 0.6 * LN2),
]


@pytest.mark.parametrize("p, q, rkl, fkl", HAND)
def test_hand_values_on_trl_kernel_and_on_the_trainer(tmp_path, p, q, rkl, fkl):
    assert round(rkl, 5) in (0.17329, 0.34657) and round(fkl, 5) in (0.17329, 0.41589)
    tp, tq = torch.tensor(p), torch.tensor(q)
    # torch.kl_div(input=log target-of-expectation's other side, target): KL(target || exp(input))
    assert torch.nn.functional.kl_div(tq.log(), tp, reduction="sum").item() == pytest.approx(rkl, abs=1e-6)
    assert torch.nn.functional.kl_div(tp.log(), tq, reduction="sum").item() == pytest.approx(fkl, abs=1e-6)
    h_s, h_t, w_s, w_t, mask = _one_position(p, q)
    assert trl_divergence_loss(h_s, h_t, w_s, w_t, mask, 1.0)[0].item() == pytest.approx(rkl, abs=1e-6)
    assert trl_divergence_loss(h_s, h_t, w_s, w_t, mask, 0.0)[0].item() == pytest.approx(fkl, abs=1e-6)
    for divergence, expected in [("reverse_kl", rkl), ("forward_kl", fkl)]:
        config = VlaOpdConfig(**_config(tmp_path, divergence=divergence))
        (loss, _, n), sums = _divergence(config, h_s, h_t, w_s, w_t, mask, config.beta)
        assert loss.item() == pytest.approx(expected, abs=1e-6) and n.item() == 1
        assert sums["reverse_kl"].item() == pytest.approx(rkl, abs=1e-6)  # the monitoring metrics, too
        assert sums["forward_kl"].item() == pytest.approx(fkl, abs=1e-6)


def test_hard_ce_hand_value_and_metrics(tmp_path):
    p, q = [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]  # argmax q = 1: -ln p(1) = ln 4
    config = VlaOpdConfig(**_config(tmp_path, divergence="hard_ce"))
    (loss, entropy, _), sums = _divergence(config, *_one_position(p, q), config.beta)
    assert loss.item() == pytest.approx(2 * LN2, abs=1e-6)
    assert entropy.item() == pytest.approx(1.5 * LN2, abs=1e-6)  # H(p) = 0.5 ln 2 + 2 * 0.25 ln 4
    assert sums["teacher_entropy"].item() == pytest.approx(1.5 * LN2, abs=1e-6)
    assert sums["teacher_top1_agreement"].item() == 0.0  # argmax p = 0, argmax q = 1


# --- card tests 1 and 3: each estimator against a full-logit implementation -------------------------------------
def _naive(h_s, w_s, h_t, w_t, mask, tokens, divergence, estimator, temperature):
    """Full (B, K, V) logits, written independently of the chunked code: loss summed over valid positions / count."""
    logp = torch.log_softmax(h_s @ w_s.T / temperature, -1)
    logq = torch.log_softmax(h_t @ w_t.T / temperature, -1)
    p, q = logp.exp(), logq.exp()
    if divergence == "reverse_kl" and estimator == "full":
        per_token = (p * (logp - logq)).sum(-1)
    elif divergence == "forward_kl":
        per_token = (q * (logq - logp)).sum(-1)
    elif divergence == "hard_ce":
        per_token = -logp.gather(-1, logq.argmax(-1, keepdim=True))[..., 0]
    else:
        lp_y = logp.gather(-1, tokens[..., None])[..., 0]
        advantage = (logq.gather(-1, tokens[..., None])[..., 0] - lp_y).detach()
        per_token = -advantage * lp_y
    m = mask.float()
    return (per_token * m).sum() / m.sum()


ESTIMATORS = [("reverse_kl", "full"), ("forward_kl", "full"), ("hard_ce", "full"), ("reverse_kl", "sampled")]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("divergence, estimator", ESTIMATORS)
def test_each_estimator_equals_full_logits(tmp_path, divergence, estimator, temperature):
    """Card test 3 on V=97, T=8 (B=3, ragged mask): loss and gradients (hidden states and the student head)."""
    torch.manual_seed(0)
    b, k, h, v = 3, 8, 16, 97
    h_s, w_s = torch.randn(b, k, h, requires_grad=True), torch.randn(v, h, requires_grad=True)
    h_t, w_t = torch.randn(b, k, h), torch.randn(v, h)
    mask = torch.ones(b, k, dtype=torch.long)
    mask[0, 5:], mask[2, 2:] = 0, 0
    tokens = torch.randint(0, v, (b, k))
    config = VlaOpdConfig(**_config(tmp_path, divergence=divergence, estimator=estimator, temperature=temperature))
    (loss, _, _), _ = _divergence(
        config, h_s, h_t, w_s, w_t, mask, config.beta, completion_ids=tokens, temperature=temperature
    )
    grads = torch.autograd.grad(loss, (h_s, w_s))
    expected = _naive(h_s, w_s, h_t, w_t, mask, tokens, divergence, estimator, temperature)
    expected_grads = torch.autograd.grad(expected, (h_s, w_s))
    if estimator == "sampled":  # the value is the k1 estimate sum(log p - log q)(y) / N; the gradient the surrogate's
        lp = torch.log_softmax(h_s @ w_s.T / temperature, -1).gather(-1, tokens[..., None])[..., 0]
        lq = torch.log_softmax(h_t @ w_t.T / temperature, -1).gather(-1, tokens[..., None])[..., 0]
        expected = ((lp - lq) * mask).sum() / mask.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), (got - want).abs().max()


def test_core_losses_in_small_chunks_equal_one_chunk():
    torch.manual_seed(1)
    h_s, h_t = torch.randn(11, 8), torch.randn(11, 8)
    head_s, head_t = LMHead(torch.randn(29, 8)), LMHead(torch.randn(29, 8), torch.randn(29))
    tokens = torch.randint(0, 29, (11,))
    for chunk in (3, None):
        stats = divergence_stats(h_s, head_s, h_t, head_t, chunk_size=chunk)
        ce, _ = hard_ce_loss(h_s, head_s, h_t, head_t, normalizer=11, chunk_size=chunk)
        sampled, _ = sampled_reverse_kl_loss(h_s, head_s, h_t, head_t, tokens, normalizer=11, chunk_size=chunk)
        if chunk == 3:
            first = (stats.reverse_kl, stats.forward_kl, stats.top1_agreement, ce, sampled)
    for a, b in zip(first, (stats.reverse_kl, stats.forward_kl, stats.top1_agreement, ce, sampled), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# --- card test 5: the sampled estimator's expected gradient ------------------------------------------------------
@pytest.mark.parametrize("p, q", [(h[0], h[1]) for h in HAND])
def test_sampled_gradient_matches_reverse_kl_gradient_on_average(p, q):
    """20k tokens drawn from p at one state (20k identical rows): the mean gradient w.r.t. the logits is within 2% of
    the analytic reverse-KL gradient p_k (log p_k/q_k - KL(p||q))."""
    n = 20_000
    tp, tq = torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
    rkl = (tp * (tp / tq).log()).sum()
    analytic = (tp * ((tp / tq).log() - rkl)).float()
    tokens = torch.multinomial(tp, n, replacement=True, generator=torch.Generator().manual_seed(0))
    h_s = tp.log().float().expand(n, 3).clone().requires_grad_()
    h_t = tq.log().float().expand(n, 3).clone()
    loss, _ = sampled_reverse_kl_loss(h_s, LMHead(torch.eye(3)), h_t, LMHead(torch.eye(3)), tokens, normalizer=n)
    (grad,) = torch.autograd.grad(loss, h_s)
    estimate = grad.sum(0)  # the mean over the n samples of each one's logit gradient
    assert (estimate - analytic).norm() / analytic.norm() < 0.02
    assert loss.item() == pytest.approx(rkl.item(), rel=0.05)  # the logged value: the k1 estimate of the KL


# --- through the trainer ---------------------------------------------------------------------------------------
def _trainer(tmp_path, teacher, cls=VlaOpdTrainer, config_cls=VlaOpdConfig, model=None, **kwargs):
    return cls(
        model=model if model is not None else tiny_model(),
        teacher_model=teacher,
        args=config_cls(**_config(tmp_path, **kwargs)),
        train_dataset=_rows(),
        processing_class=tiny_tokenizer(),
    )


def _loss_and_grads(trainer, batch):
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def _batch(trainer):
    trainer.model.train()
    return prepare_inputs(trainer, next(iter(trainer.get_train_dataloader())))


@pytest.mark.parametrize("divergence, estimator", [e for e in ESTIMATORS if e[0] != "hard_ce"])
def test_student_equal_to_teacher_gives_zero_loss_and_gradient(tmp_path, divergence, estimator):
    """Card test 1 (every divergence but hard_ce): the teacher is a copy of the student's weights."""
    student = tiny_model()
    trainer = _trainer(tmp_path, copy.deepcopy(student), model=student, divergence=divergence, estimator=estimator)
    loss, grads = _loss_and_grads(trainer, _batch(trainer))
    assert abs(loss.item()) < 1e-6
    assert grads and max(g.abs().max().item() for g in grads.values()) < 1e-6
    hard = _trainer(tmp_path, copy.deepcopy(student), model=copy.deepcopy(student), divergence="hard_ce")
    assert _loss_and_grads(hard, _batch(hard))[0].item() > 0.1  # hard CE is not zero at p = q (it has entropy)


@pytest.mark.parametrize("divergence, beta", [("reverse_kl", 1.0), ("forward_kl", 0.0)])
def test_full_estimator_equals_distillation_trainer(tmp_path, divergence, beta):
    """Card test 4: the same generated batch gives DistillationTrainer's loss and gradients exactly."""
    teacher = tiny_model(seed=3)
    ours = _trainer(tmp_path, teacher, divergence=divergence)
    assert ours.args.beta == beta
    trl = _trainer(tmp_path, teacher, cls=DistillationTrainer, config_cls=DistillationConfig, beta=beta)
    batch = _batch(ours)
    assert batch["completion_mask"].sum() > 0
    loss, grads = _loss_and_grads(ours, batch)
    ref_loss, ref_grads = _loss_and_grads(trl, batch)
    assert loss.item() > 1e-4 and loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    assert grads.keys() == ref_grads.keys()
    assert all(torch.allclose(grads[k], ref_grads[k], atol=1e-7, rtol=1e-5) for k in grads)
    logged = ours._metrics["train"]
    assert logged["opd/reverse_kl" if beta == 1.0 else "opd/forward_kl"][-1] == pytest.approx(loss.item(), rel=1e-4)


def test_num_generations_repeats_each_row(tmp_path):
    rows = _rows(3)
    assert repeat_rows(rows, 2)["prompt"] == [r for r in rows["prompt"] for _ in range(2)]
    trainer = _trainer(tmp_path, tiny_model(seed=1), num_generations=3)
    assert len(trainer.train_dataset) == 12


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"divergence": "jsd"}, "divergence='jsd'"),
        ({"estimator": "topk"}, "estimator='topk'"),
        ({"divergence": "forward_kl", "estimator": "sampled"}, "reverse KL only"),
        ({"divergence": "reverse_kl", "beta": 0.5}, "beta=0.5"),
        ({"num_generations": 0}, "num_generations=0"),
    ],
)
def test_config_refuses_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VlaOpdConfig(**_config(tmp_path, **kwargs))


def test_trainer_refuses_a_missing_teacher(tmp_path):
    with pytest.raises(TeacherError, match="teacher_model_name_or_path"):
        _trainer(tmp_path, None)


# --- the CLI: a saved tiny teacher, and refusals before training --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("teacher") / "teacher", seed=1))


def _argv(method, student, out, *extra):
    return [
        "train",
        method,
        "--model_name_or_path",
        student,
        "--dataset_name",
        "builtin:arith",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--max_completion_length",
        "8",
        "--learning_rate",
        "1e-2",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--output_dir",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize(
    "method, extra",
    [
        ("vla_opd", []),
        ("vla_opd", ["--divergence", "hard_ce"]),
        (
            "vla_opd",
            ["--estimator", "sampled", "--use_peft", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj"],
        ),
        ("distillation", []),
    ],
)
def test_cli_trains_from_a_saved_tiny_teacher(tiny_model_dir, tiny_teacher_dir, tmp_path, method, extra):
    from safetensors.torch import load_file

    out = tmp_path / method
    assert main(_argv(method, tiny_model_dir, out, "--teacher_model_name_or_path", tiny_teacher_dir, *extra)) == 0
    if "--use_peft" in extra:  # LoRA B starts at 0: a trained adapter has moved it
        adapter = load_file(out / "adapter_model.safetensors")
        assert max(v.abs().max().item() for k, v in adapter.items() if "lora_B" in k) > 1e-4
        return
    before = load_file(f"{tiny_model_dir}/model.safetensors")
    after = load_file(out / "model.safetensors")
    assert max((after[k] - before[k]).abs().max().item() for k in before) > 1e-4  # the student was trained


@pytest.mark.parametrize("method", ["vla_opd", "distillation"])
def test_cli_refuses_missing_or_mismatched_teacher(tiny_model_dir, tmp_path, capsys, method, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("transformers.Trainer.train", no_training)
    assert main(_argv(method, tiny_model_dir, tmp_path / "a")) == 2
    assert "--teacher_model_name_or_path" in capsys.readouterr().err
    assert main(_argv(method, tiny_model_dir, tmp_path / "b", "--teacher_model_name_or_path", "./no/such")) == 2
    assert "does not exist" in capsys.readouterr().err
    other = save_tiny_model(tmp_path / "big_vocab", vocab_size=400)
    assert main(_argv(method, tiny_model_dir, tmp_path / "c", "--teacher_model_name_or_path", str(other))) == 2
    assert "vocab_size 400" in capsys.readouterr().err
