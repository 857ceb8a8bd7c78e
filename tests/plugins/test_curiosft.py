"""CurioSFT: the card's hand cases, limiting cases, a full-logit re-implementation, the EMA teacher and its
checkpoint/resume (shared/papers/curiosft.md, tests 1-7)."""

import math
import sys

import pytest
import torch
from datasets import Dataset
from sft_steps import sgd_step_trainer
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from trl_ext.losses import LMHead
from trl_ext.testing import (
    assert_same_step,
    first_batch,
    interrupted_and_resumed,
    logged,
    one_step_config,
    relative_grad_diff,
    run_layout,
    save_step_result,
    tiny_model,
    tiny_run_flags,
    tiny_tokenizer,
    tiny_trainer,
    train_argv,
    train_one_step,
    trainer_loss_and_grads,
)
from trl_ext.training.reference import TEACHER_FILE
from trl_ext_plugins.curiosft import (
    CurioSFTConfig,
    CurioSFTTrainer,
    TemperatureRule,
    entropy_guided_temperature,
    tempered_teacher_targets,
)


def _config(tmp_path, cls=CurioSFTConfig, **kw):
    return one_step_config(cls, tmp_path, **{"learning_rate": 1e-3, **kw})


def _sharp_model(seed=0):
    """A tiny model whose head is scaled up, so next-token entropies spread over the interesting range (the plain
    tiny model is near-uniform: every tau would be tau_max)."""
    model = tiny_model(seed=seed)
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)
    return model


def _trainer(tmp_path, rows, model=None, **kw):
    return tiny_trainer(CurioSFTTrainer, _config(tmp_path, **kw), rows, model or _sharp_model())


def _loss_and_grads(trainer_cls, config, rows, model=None):
    return trainer_loss_and_grads(trainer_cls, config, rows, model or _sharp_model())


# --- an independent, naive version of the official compute_tau_from_logits (float64, one row at a time) -------------
def _entropy(logits, tau=1.0):
    logp = torch.log_softmax(logits / tau, -1)
    return -(logp.exp() * logp).sum().item()


def naive_tau(row, topk=512, lo=1.1, hi=1.5, iters=20, center=1.2, delta_max=0.5, slope=2.0, threshold=0.03):
    row, tau_min = row.double(), lo
    top = torch.topk(row, min(topk, row.numel())).values
    h_now = _entropy(top)
    h_star = h_now + delta_max / (1.0 + math.exp(-slope * (h_now - center)))
    tau = lo if h_star <= _entropy(top, lo) else hi if h_star >= _entropy(top, hi) else (lo + hi) / 2
    for _ in range(iters):
        if _entropy(top, tau) < h_star:
            lo = tau
        else:
            hi = tau
        tau = (lo + hi) / 2
    return (tau_min if _entropy(row) <= threshold else tau), h_star


# --- card tests 2-5: hand values ------------------------------------------------------------------------------------
def test_hand_temperature_and_target():
    """Card test 3: logits [3, 1, 0, 0] (V=4 <= K): H_now = 0.67208, H* = 0.80113, tau = 1.14994, q(y=0) = -0.27983."""
    z = torch.tensor([[3.0, 1.0, 0.0, 0.0]])
    tau, entropy = entropy_guided_temperature(z, TemperatureRule())
    assert entropy.item() == pytest.approx(0.67208, abs=1e-5)
    assert tau.item() == pytest.approx(1.14994, abs=1e-4)
    assert _entropy(z[0], tau.item()) == pytest.approx(0.80113, abs=1e-4)  # H(tau) = H*
    targets = tempered_teacher_targets(z, LMHead(torch.eye(4)), torch.tensor([0]), TemperatureRule())
    assert targets.log_q.item() == pytest.approx(-0.27983, abs=1e-4)


def test_temperature_clamps():
    """Card test 4: a near-certain teacher (entropy < 0.03) gets tau_min; a uniform one has H* > H(1.5): tau_max."""
    tau, entropy = entropy_guided_temperature(torch.tensor([[20.0, 0, 0, 0], [0.0, 0, 0, 0]]), TemperatureRule())
    assert entropy[0].item() < 0.03
    assert tau.tolist() == pytest.approx([1.1, 1.5], abs=1e-7)


def test_interior_rows_hit_the_target_entropy():
    """Card test 5, on random rows over V=2000 > K=512: interior rows satisfy |H(tau) - H*| < 1e-4 over the top-K
    logits; the others sit at the clamp the naive version picks. Rows the teacher is near-certain of (full entropy
    <= 0.03) are not interior whatever H* is: the override gives them tau_min."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 2000, generator=g) * torch.linspace(0.5, 12.0, 300)[:, None]
    tau, _ = entropy_guided_temperature(logits, TemperatureRule())
    interior = 0
    for row, t in zip(logits, tau.tolist(), strict=True):
        top = torch.topk(row.double(), 512).values
        want, h_star = naive_tau(row)
        if _entropy(top, 1.1) < h_star < _entropy(top, 1.5) and _entropy(row.double()) > 0.03:
            interior += 1
            assert abs(_entropy(top, t) - h_star) < 1e-4
        assert t == pytest.approx(want, abs=1e-4)
    assert 30 < interior < 300  # the sample covers interior and clamped rows


@pytest.mark.parametrize("softcap", [None, 6.0])
def test_chunked_teacher_pass_matches_full_logits(softcap):
    """Card test 7: the chunked teacher pass (7 rows a chunk) equals the naive version on full logits."""
    g = torch.Generator().manual_seed(1)
    n, h, v = 37, 16, 700
    hidden, weight = torch.randn(n, h, generator=g), torch.randn(v, h, generator=g)
    bias = torch.randn(v, generator=g)
    labels = torch.randint(0, v, (n,), generator=g)
    head = LMHead(weight, bias, 0.8, softcap)
    out = tempered_teacher_targets(hidden, head, labels, TemperatureRule(), chunk_rows=7)
    z = (hidden @ weight.T + bias) * 0.8
    z = softcap * torch.tanh(z / softcap) if softcap else z
    taus = torch.tensor([naive_tau(row)[0] for row in z], dtype=torch.float32)
    log_q = torch.log_softmax(z / taus[:, None], -1).gather(1, labels[:, None])[:, 0]
    assert torch.allclose(out.tau, taus, atol=1e-4)
    assert torch.allclose(out.log_q, log_q, atol=1e-5)
    assert torch.allclose(out.entropy, -(z.softmax(-1) * z.log_softmax(-1)).sum(-1), atol=1e-5)


# --- card test 1: the neutral setting ---------------------------------------------------------------------------------
def test_kd_coef_zero_reproduces_trl_nll(tmp_path, sft_rows):
    sft_loss, sft_grads, *_ = _loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), sft_rows)
    loss, grads, trainer, _ = _loss_and_grads(CurioSFTTrainer, _config(tmp_path, curio_kd_coef=0.0), sft_rows)
    assert trainer.teacher is None
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5


# --- the whole loss against a naive full-logit re-implementation ------------------------------------------------------
@pytest.mark.parametrize("kd_form,coef", [("gt_token_sq", 1.0), ("gt_token_sq", 0.3), ("full_kl", 0.5)])
def test_loss_and_grads_match_full_logit_reference(tmp_path, sft_rows, kd_form, coef):
    config = _config(tmp_path, curio_kd_form=kd_form, curio_kd_coef=coef, curio_teacher_chunk_rows=16)
    trainer = _trainer(tmp_path, sft_rows)
    trainer = CurioSFTTrainer(
        model=_sharp_model(), args=config, train_dataset=Dataset.from_list(sft_rows), processing_class=tiny_tokenizer()
    )
    with torch.no_grad():  # a teacher that has drifted from the policy
        for p in trainer.teacher.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    batch = first_batch(trainer)
    trainer.model.train()
    mask = batch["labels"][:, 1:] != -100
    loss = trainer.compute_loss(trainer.model, batch, num_items_in_batch=mask.sum())
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)

    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    z = trainer.model(**inputs).logits[:, :-1][mask]
    with torch.no_grad():
        zt = trainer.teacher(**inputs).logits[:, :-1][mask]
    y = batch["labels"][:, 1:][mask]
    taus = torch.tensor([naive_tau(row)[0] for row in zt], dtype=torch.float32)
    assert ((taus > 1.1001) & (taus < 1.4999)).float().mean() > 0.3  # mostly interior temperatures, not one clamp
    log_q = torch.log_softmax(zt / taus[:, None], -1)
    logp = torch.log_softmax(z, -1)
    lp = logp.gather(1, y[:, None])[:, 0]
    if kd_form == "gt_token_sq":
        per_token = -lp + 0.5 * coef * (lp - log_q.gather(1, y[:, None])[:, 0]) ** 2
    else:
        per_token = -lp + coef * (log_q.exp() * (log_q - logp)).sum(-1)
    expected = per_token.sum() / mask.sum()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    for got, want in zip(grads, torch.autograd.grad(expected, params), strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    logged = trainer._metrics["train"]
    assert logged["curio/tau_mean"][-1] == pytest.approx(taus.mean().item(), abs=1e-4)
    assert logged["curio/sft_nll"][-1] == pytest.approx(-lp.mean().item(), abs=1e-5)


# --- card test 6: the EMA teacher -------------------------------------------------------------------------------------
class _Snapshots(TrainerCallback):
    def __init__(self, trainer):
        self.trainer, self.steps = trainer, {}

    def on_step_end(self, args, state, control, **kwargs):  # runs after the EMA callback (added first)
        self.steps[state.global_step] = (
            [p.detach().clone() for p in self.trainer.teacher.parameters()],
            [p.detach().clone() for p in self.trainer._policy.parameters()],
        )


def test_ema_teacher_syncs_every_s_steps(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, max_steps=3, per_device_train_batch_size=2, ref_model_sync_steps=3)
    initial = [p.detach().clone() for p in trainer.teacher.parameters()]
    snaps = _Snapshots(trainer)
    trainer.add_callback(snaps)
    trainer.train()
    teacher_2, policy_2 = snaps.steps[2]
    assert all(torch.equal(t, o) for t, o in zip(teacher_2, initial, strict=True))  # untouched before step S
    assert any(not torch.equal(p, o) for p, o in zip(policy_2, initial, strict=True))
    teacher_3, policy_3 = snaps.steps[3]
    for t, o, p in zip(teacher_3, initial, policy_3, strict=True):
        assert torch.allclose(t, 0.01 * o + 0.99 * p, atol=1e-6)


def test_resume_restores_the_ema_teacher(tmp_path, sft_rows):
    """Checkpoint at step 3 (after the step-2 EMA update) and resume: same losses, policy and teacher as an unbroken
    run. The saved teacher is neither the initial model nor the step-3 policy, so only restoring it gives this."""
    rows = sft_rows * 2

    def make(out):
        cfg = _config(
            out,
            max_steps=6,
            per_device_train_batch_size=2,
            save_strategy="steps",
            save_steps=3,
            learning_rate=5e-2,
            ref_model_sync_steps=2,
            ref_model_mixup_alpha=0.5,
        )
        return CurioSFTTrainer(
            model=_sharp_model(), args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
        )

    full, cut, resumed = interrupted_and_resumed(make, tmp_path, 3)
    checkpoint = tmp_path / "cut" / "checkpoint-3"
    assert (checkpoint / TEACHER_FILE).exists()
    saved = [p.detach().clone() for p in cut.teacher.parameters()]  # the teacher the stopped run saved
    assert any(not torch.equal(s, p) for s, p in zip(saved, _sharp_model().parameters(), strict=True))
    assert any(not torch.equal(s, p) for s, p in zip(saved, cut._policy.parameters(), strict=True))

    for step in (4, 5, 6):
        assert logged(resumed, "loss")[step] == pytest.approx(logged(full, "loss")[step], rel=1e-5)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(full.teacher.parameters(), resumed.teacher.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_without_teacher_file_is_refused(tmp_path, sft_rows):
    (tmp_path / "checkpoint-1").mkdir()
    trainer = _trainer(tmp_path, sft_rows)
    with pytest.raises(FileNotFoundError, match=TEACHER_FILE):
        trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))


# --- normalisation under gradient accumulation ------------------------------------------------------------------------
def _step_trainer(out, per_device, accumulation, **kw):
    return sgd_step_trainer(CurioSFTTrainer, CurioSFTConfig, _sharp_model(), out, per_device, accumulation, **kw)


def _one_sgd_step(out, per_device, accumulation, **kw):
    return train_one_step(_step_trainer(out, per_device, accumulation, **kw))


def test_gradient_accumulation_gives_the_same_step(tmp_path):
    assert_same_step(_one_sgd_step(tmp_path / "a", 4, 1), _one_sgd_step(tmp_path / "b", 2, 2))


@pytest.mark.slow
def test_two_processes_give_the_same_step(tmp_path):
    """torchrun, 2 CPU processes (gloo), batch 2 each, against one process with batch 4."""
    ddp = run_layout(__file__, tmp_path / "ddp.json", 2, 1, nproc=2)
    assert_same_step(_one_sgd_step(tmp_path / "single", 4, 1), ddp)


# --- PEFT, metrics, validation, CLI -----------------------------------------------------------------------------------
def test_peft_teacher_tracks_the_adapters(tmp_path, sft_rows):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = CurioSFTTrainer(
        model=_sharp_model(),
        args=_config(tmp_path, max_steps=2, ref_model_sync_steps=1, ref_model_mixup_alpha=0.5),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
        peft_config=peft_config,
    )
    trainer.train()
    teacher = dict(trainer.teacher.named_parameters())
    policy = dict(trainer._policy.named_parameters())
    assert teacher.keys() == policy.keys()
    lora_b = [n for n in teacher if "lora_B" in n]
    assert lora_b and all(teacher[n].abs().max() > 0 for n in lora_b)  # LoRA B starts at 0: the EMA moved it
    assert all(torch.equal(teacher[n], policy[n]) for n in teacher if "lora_" not in n)  # frozen base, alpha 0.5


def test_metrics_logged(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, max_steps=2)
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "curio/sft_nll",
        "curio/kd",
        "curio/tau_mean",
        "curio/frac_tau_min",
        "curio/teacher_entropy",
        "entropy",
        "mean_token_accuracy",
        "loss",
    } <= logged


@pytest.mark.parametrize(
    "field,value",
    [
        ("curio_kd_coef", -1.0),
        ("curio_tau_min", 0.0),
        ("curio_tau_max", 1.0),
        ("curio_topk", 0),
        ("curio_bisect_iters", -1),
        ("curio_kd_form", "kl"),
        ("ref_model_sync_steps", 0),
        ("ref_model_mixup_alpha", 1.5),
        ("curio_teacher_chunk_rows", 0),
        ("curio_delta_max", float("nan")),
        ("loss_type", "dft"),
    ],
)
def test_config_validation(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_cli_train(tiny_model_dir, tmp_path):
    from trl_ext.cli import main

    out = tmp_path / "run"
    assert (
        main(
            train_argv(
                "curiosft",
                tiny_model_dir,
                str(out),
                *tiny_run_flags(2, 4),
                "--curio_kd_form",
                "full_kl",
                "--ref_model_sync_steps",
                "1",
            )
        )
        == 0
    )
    assert (out / "model.safetensors").exists()
    assert "2602.02244" in (out / "README.md").read_text()


if __name__ == "__main__":  # one DDP step for test_two_processes_give_the_same_step (run_layout under torchrun)
    import tempfile

    trainer = _step_trainer(tempfile.mkdtemp(), int(sys.argv[2]), int(sys.argv[3]))
    save_step_result(trainer, train_one_step(trainer), sys.argv[1])
