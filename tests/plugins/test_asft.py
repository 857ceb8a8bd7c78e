"""ASFT: the card's hand cases, limiting cases and gradient checks (shared/papers/asft.md, tests 1-6)."""

import json

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.losses import LMHead, dft_weight, fused_token_loss
from trl_ext.testing import (
    interrupted_and_resumed,
    logged,
    one_step_config,
    relative_grad_diff,
    tiny_model,
    tiny_tokenizer,
    trainer_loss_and_grads,
)
from trl_ext_plugins.asft import ASFTConfig, ASFTTrainer


def _config(tmp_path, cls=ASFTConfig, **kw):
    return one_step_config(cls, tmp_path, **{"learning_rate": 1e-3, **kw})


# Card test 3 and 4: vocab 3, one token, policy logits [2, 0, 0], reference logits [0, 0, 0], label 0
HAND_DFT, HAND_KL_FORWARD, HAND_KL_REVERSE, HAND_ASFT = 0.18852, 0.47427, 0.43300, 0.23595


def _hand_case(kl_coef=0.1):
    eye = torch.eye(3)
    return fused_token_loss(
        torch.tensor([[2.0, 0.0, 0.0]]),
        LMHead(eye),
        torch.tensor([0]),
        normalizer=1,
        nll_weight=dft_weight,
        ref_hidden=torch.zeros(1, 3),
        ref_head=LMHead(eye),
        kl_coef=kl_coef,
    )


def test_hand_case_values():
    loss, stats = _hand_case()
    assert stats.kl.item() == pytest.approx(HAND_KL_FORWARD, abs=1e-5)
    assert loss.item() == pytest.approx(HAND_ASFT, abs=1e-5)
    dft_only, _ = _hand_case(kl_coef=0.0)
    assert dft_only.item() == pytest.approx(HAND_DFT, abs=1e-5)


def test_kl_direction_is_reference_first():
    _, stats = _hand_case()
    assert stats.kl.item() != pytest.approx(HAND_KL_REVERSE, abs=1e-3)
    assert stats.kl.item() == pytest.approx(HAND_KL_FORWARD, abs=1e-5)


@pytest.mark.parametrize("softcap,scale,bias", [(None, 1.0, False), (None, 1.0, True), (5.0, 0.5, False)])
@pytest.mark.parametrize("nll_weight,kl_coef", [(None, 0.0), (dft_weight, 0.1), (None, 0.3)])
def test_chunked_matches_full_logits(softcap, scale, bias, nll_weight, kl_coef):
    """Card test 5: vocab 1000, 37 tokens, against F.kl_div on full logits, grads w.r.t. hidden and lm_head."""
    torch.manual_seed(0)
    n, h, v = 37, 16, 1000
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    b = torch.randn(v, requires_grad=True) if bias else None
    ref_hidden, ref_weight = torch.randn(n, h), torch.randn(v, h)
    labels = torch.randint(0, v, (n,))
    loss, stats = fused_token_loss(
        hidden,
        LMHead(weight, b, scale, softcap),
        labels,
        normalizer=n,
        nll_weight=nll_weight,
        ref_hidden=ref_hidden,
        ref_head=LMHead(ref_weight, None, scale, softcap),
        kl_coef=kl_coef,
        chunk_size=8,
    )
    inputs = [hidden, weight] + ([b] if bias else [])
    grads = torch.autograd.grad(loss, inputs)

    def full_logits(hh, ww, bb):
        z = (hh @ ww.T + (bb if bb is not None else 0)) * scale
        return softcap * torch.tanh(z / softcap) if softcap else z

    logp = F.log_softmax(full_logits(hidden, weight, b), -1)
    logq_target = F.softmax(full_logits(ref_hidden, ref_weight, None), -1)
    kl = F.kl_div(logp, logq_target, reduction="none").sum(-1)
    lp_t = logp.gather(1, labels[:, None])[:, 0]
    c = lp_t.exp().detach() if nll_weight is not None else torch.ones_like(lp_t)
    expected = ((-c * lp_t).sum() + kl_coef * kl.sum()) / n
    expected_grads = torch.autograd.grad(expected, inputs)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert torch.allclose(stats.kl, kl.detach(), atol=1e-5)
    assert torch.allclose(stats.log_probs, lp_t.detach(), atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_kl_weight_zero_reproduces_trl_dft(tmp_path, sft_rows):
    """Card test 1: asft with kl_weight=0 == SFTTrainer(loss_type='dft'), loss and grads to 1e-6."""
    sft_loss, sft_grads, *_ = trainer_loss_and_grads(
        SFTTrainer, _config(tmp_path, SFTConfig, loss_type="dft"), sft_rows
    )
    asft_loss, asft_grads, *_ = trainer_loss_and_grads(ASFTTrainer, _config(tmp_path, kl_weight=0.0), sft_rows)
    assert asft_loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, asft_grads) < 1e-5


def test_sft_mode_reproduces_trl_nll(tmp_path, sft_rows):
    sft_loss, sft_grads, *_ = trainer_loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), sft_rows)
    asft_loss, asft_grads, *_ = trainer_loss_and_grads(ASFTTrainer, _config(tmp_path, asft_loss="sft"), sft_rows)
    assert asft_loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, asft_grads) < 1e-5


def test_step_zero_kl_is_zero_and_grads_equal_dft(tmp_path, sft_rows):
    """Card test 2: reference = copy of the policy, so KL_t = 0 and its gradient is 0 at step 0."""
    dft_loss, dft_grads, *_ = trainer_loss_and_grads(ASFTTrainer, _config(tmp_path, asft_loss="dft"), sft_rows)
    asft_loss, asft_grads, trainer, _ = trainer_loss_and_grads(ASFTTrainer, _config(tmp_path, kl_weight=0.1), sft_rows)
    assert trainer._metrics["train"]["asft/kl"][-1] == pytest.approx(0.0, abs=1e-6)
    assert asft_loss.item() == pytest.approx(dft_loss.item(), abs=1e-6)
    assert relative_grad_diff(dft_grads, asft_grads) < 1e-5


def test_masked_positions_contribute_nothing(tmp_path, sft_rows):
    """Card test 6: changing the policy's outputs where the next label is -100 leaves the loss unchanged."""
    config = _config(tmp_path, kl_weight=0.1)
    loss, _, trainer, batch = trainer_loss_and_grads(ASFTTrainer, config, sft_rows)
    policy = trainer._policy
    original = policy.forward
    masked = batch["labels"][:, 1:] == -100

    def noisy_forward(*args, return_backbone_hidden=False, **kwargs):
        out = original(*args, return_backbone_hidden=return_backbone_hidden, **kwargs)
        if return_backbone_hidden:
            out = out.clone()
            out[:, :-1][masked] += 100.0 * torch.randn_like(out[:, :-1][masked])
            out[:, -1] += 100.0  # the last position predicts nothing
        return out

    policy.forward = noisy_forward
    perturbed = trainer.compute_loss(trainer.model, batch, num_items_in_batch=(~masked).sum())
    assert perturbed.item() == pytest.approx(loss.item(), abs=1e-6)


def test_reference_is_a_true_copy_with_tied_embeddings(tmp_path, sft_rows):
    model = tiny_model(tie_word_embeddings=True)
    trainer = ASFTTrainer(
        model=model,
        args=_config(tmp_path, max_steps=2),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    ref_embed = trainer.ref_model.get_input_embeddings().weight
    assert ref_embed.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert ref_embed.data_ptr() == trainer.ref_model.get_output_embeddings().weight.data_ptr()  # tied in the copy
    before = ref_embed.detach().clone()
    trainer.train()
    assert torch.equal(trainer.ref_model.get_input_embeddings().weight, before)
    assert not torch.equal(model.get_input_embeddings().weight, before)


def test_peft_reference_is_adapter_disabled_base(tmp_path, sft_rows):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    loss, grads, trainer, _ = trainer_loss_and_grads(ASFTTrainer, _config(tmp_path), sft_rows, peft_config=peft_config)
    assert trainer.ref_model is None
    assert trainer._metrics["train"]["asft/kl"][-1] == pytest.approx(0.0, abs=1e-7)  # LoRA B starts at zero
    assert grads and all("lora_" in name for name in grads)


def test_metrics_logged(tmp_path, sft_rows):
    trainer = ASFTTrainer(
        model=tiny_model(),
        args=_config(tmp_path, max_steps=2),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"asft/kl", "asft/dft_loss", "asft/mean_p", "entropy", "mean_token_accuracy", "loss"} <= logged


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("asft_loss", "rl", "asft_loss"),
        ("kl_weight", -0.1, "kl_weight"),
        ("kl_chunk_size", 0, "kl_chunk_size"),
        ("loss_type", "dft", "loss_type"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **{field: value})


def test_resume_continues_from_same_state(tmp_path, sft_rows):
    """Checkpoint at step 2 and resume: same reference, same next losses and final weights as an unbroken run."""
    rows = sft_rows * 2

    def make(out, **kw):
        cfg = _config(
            out,
            max_steps=4,
            per_device_train_batch_size=2,
            save_strategy="steps",
            save_steps=2,
            learning_rate=5e-2,
            **kw,
        )
        return ASFTTrainer(
            model=tiny_model(), args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
        )

    # same schedule as the full run, killed after step 2, then resumed from checkpoint-2
    full, _, resumed = interrupted_and_resumed(make, tmp_path, 2)
    state = json.loads((tmp_path / "cut" / "checkpoint-2" / "trl_ext_asft.json").read_text())
    assert state["reference"].startswith("initial copy")
    assert logged(resumed, "loss")[3] == pytest.approx(logged(full, "loss")[3], rel=1e-5)
    assert logged(resumed, "loss")[4] == pytest.approx(logged(full, "loss")[4], rel=1e-5)
    for (name, p_full), (_, p_res) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.allclose(p_full, p_res, atol=1e-6), name
    # the reference stayed the initial model, not the resumed policy
    for p_ref, p_init in zip(resumed.ref_model.parameters(), tiny_model().parameters(), strict=True):
        assert torch.equal(p_ref, p_init)
