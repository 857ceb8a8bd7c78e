"""LfU: the card's tests (shared/papers/lfu.md, tests 1-7), both gradient modes against a naive re-implementation of
the official recipe (full logits, HF forward, weights moved in place), the aux batches, resume and the CLI."""

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from trl import SFTConfig, SFTTrainer

from trl_ext.cli import main
from trl_ext.testing import (
    first_batch,
    interrupted_and_resumed,
    logged,
    loss_and_grads,
    max_grad_diff,
    one_step_config,
    relative_grad_diff,
    tiny_model,
    tiny_run_flags,
    tiny_tokenizer,
    tiny_trainer,
    train_argv,
    trainer_loss_and_grads,
)
from trl_ext_plugins.lfu import LfUConfig, LfUTrainer, hidden_consistency, response_positions

LORA = dict(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")


def _config(tmp_path, cls=LfUConfig, **kw):
    return one_step_config(cls, tmp_path, **{"gradient_checkpointing": False, **kw})


def _trainer(tmp_path, rows, model=None, single_aux=True, **kw):
    """An LfUTrainer whose undesirable batch is always the same single row (so repeated calls see the same phi')."""
    if single_aux:
        config = _config(tmp_path, lfu_aux_batch_size=1, **kw)
        return tiny_trainer(LfUTrainer, config, rows, model, aux_dataset=Dataset.from_list(rows[:1]))
    return tiny_trainer(LfUTrainer, _config(tmp_path, **kw), rows, model)


def _first_batch(trainer):
    trainer.model.train()
    return first_batch(trainer)


def _loss_and_grads(trainer):
    return loss_and_grads(trainer, count_items=False)


def _sft_loss_and_grads(tmp_path, rows, model=None):
    return trainer_loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), rows, model, count_items=False)[:2]


def test_card_1_lambda_zero_is_trl_sft(tmp_path, sft_rows):
    sft_loss, sft_grads = _sft_loss_and_grads(tmp_path, sft_rows)
    trainer = _trainer(tmp_path, sft_rows, lfu_lambda=0.0)
    loss, grads, _ = _loss_and_grads(trainer)
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5
    assert "lfu/cons_loss" not in trainer._metrics["train"]  # lambda = 0 runs no extra pass


@pytest.mark.parametrize("gradient", ["official", "exact"])
def test_card_2_alpha_zero_gives_zero_consistency_and_sft_gradients(tmp_path, sft_rows, gradient):
    sft_loss, sft_grads = _sft_loss_and_grads(tmp_path, sft_rows)
    trainer = _trainer(tmp_path, sft_rows, lfu_alpha=0.0, lfu_gradient=gradient)
    loss, grads, _ = _loss_and_grads(trainer)
    assert trainer._metrics["train"]["lfu/cons_loss"][-1] == 0.0
    assert (
        trainer._metrics["train"]["lfu/ascent_grad_norm"][-1] > 0
    )  # the ascent gradient was computed, then scaled by 0
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5


@pytest.mark.parametrize("peft", [False, True])
def test_card_3_step_has_norm_alpha_and_leaves_phi_untouched(tmp_path, sft_rows, peft):
    model = get_peft_model(tiny_model(), LoraConfig(**LORA)) if peft else tiny_model()
    trainer = _trainer(tmp_path, sft_rows, model=model, lfu_alpha=0.3)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    c, grad_norm, aux_loss = trainer.ascent_perturbation(trainer.undesirable_batch())
    trainable = {n for n, p in trainer._policy.named_parameters() if p.requires_grad}
    assert set(c) == trainable and (not peft or all("lora_" in n for n in c))
    assert torch.sqrt(sum(v.double().pow(2).sum() for v in c.values())).item() == pytest.approx(0.3, abs=1e-6)
    assert grad_norm.item() > 0 and aux_loss.item() > 0
    _loss_and_grads(trainer)  # steps 1-6 and the backward
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("gradient", ["official", "exact"])
def test_card_4_accumulated_grads_survive_steps_2_to_4(tmp_path, sft_rows, gradient):
    trainer = _trainer(tmp_path, sft_rows, lfu_gradient=gradient)
    batch = _first_batch(trainer)
    fresh = trainer.compute_loss(trainer.model, batch)
    fresh.backward()
    fresh_grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    earlier = {n: torch.randn_like(p) for n, p in trainer.model.named_parameters()}  # an earlier micro-batch's
    for name, p in trainer.model.named_parameters():
        p.grad = earlier[name].clone()
    loss = trainer.compute_loss(trainer.model, batch)  # ascent gradient, perturbed pass: no .grad written
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p.grad, earlier[name]), name
    loss.backward()
    for name, p in trainer.model.named_parameters():
        assert torch.allclose(p.grad - earlier[name], fresh_grads[name], atol=1e-6), name


def test_card_5_hand_mse():
    # one response position (index 1) with h = [1, 2], h' = [1.5, 2], in two layers; prompt positions differ wildly
    positions = torch.tensor([[False, True, False]])
    clean = [torch.tensor([[[9.0, 9.0], [1.0, 2.0], [0.0, 0.0]]])] * 2
    perturbed = [torch.tensor([[[5.0, -3.0], [1.5, 2.0], [7.0, 7.0]]])] * 2
    assert hidden_consistency(clean, perturbed, positions).item() == pytest.approx(0.125, abs=1e-7)
    same_prompt = [torch.tensor([[[9.0, 9.0], [1.5, 2.0], [0.0, 0.0]]])] * 2
    assert hidden_consistency(clean, same_prompt, positions).item() == pytest.approx(0.125, abs=1e-7)
    labels = torch.tensor([[-100, -100, 5, 6, -100], [7, 8, -100, -100, -100]])
    assert response_positions(labels).tolist() == [
        [False, False, True, True, False],
        [False, True, False, False, False],
    ]


def _rms_norm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def test_card_6_consistency_gradient_matches_finite_differences(tmp_path, sft_rows, monkeypatch):
    """float64, 2 layers: d(lambda L_cons)/d phi (LfU's gradient minus SFT's) against central differences of
    phi -> L_cons(phi + c), c held fixed, computed naively (weights moved in place, HF forward)."""
    # Llama's RMSNorm computes in float32 whatever the input; keep float64 throughout so differences are exact
    monkeypatch.setattr(LlamaRMSNorm, "forward", _rms_norm_in_input_dtype)
    with_cons = _trainer(
        tmp_path, sft_rows, model=tiny_model().double(), lfu_lambda=1.0, lfu_gradient="exact", lfu_alpha=0.5
    )
    _, grads, batch = _loss_and_grads(with_cons)
    _, sft_grads, _ = _loss_and_grads(_trainer(tmp_path, sft_rows, model=tiny_model().double(), lfu_lambda=0.0))
    c, _, _ = with_cons.ascent_perturbation(with_cons.undesirable_batch())
    policy = with_cons._policy
    params = dict(policy.named_parameters())
    positions = response_positions(batch["labels"])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        clean = policy.model(**inputs, output_hidden_states=True).hidden_states

    def l_cons(name, index, eps):
        saved = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.add_(c[n])
            params[name].view(-1)[index] += eps
            moved = policy.model(**inputs, output_hidden_states=True).hidden_states
            for n, p in params.items():
                p.copy_(saved[n])
        layers = [((h_p - h)[positions] ** 2).mean() for h, h_p in zip(clean, moved, strict=True)]
        return sum(layers) / len(layers)

    generator = torch.Generator().manual_seed(0)
    checked = 0
    for name in (
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ):
        analytic = (grads[name] - sft_grads[name]).view(-1)
        for index in torch.randint(0, analytic.numel(), (2,), generator=generator).tolist():
            if name == "model.embed_tokens.weight":
                index = int(batch["input_ids"][0, 3]) * params[name].shape[1] + index % params[name].shape[1]
            eps = 1e-5
            numeric = (l_cons(name, index, eps) - l_cons(name, index, -eps)) / (2 * eps)
            assert analytic[index].item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-10), (name, index)
            checked += abs(numeric.item()) > 1e-6
    assert checked >= 5  # most of the probed coordinates have a non-trivial gradient (lm_head's is exactly 0)


def test_card_7_embedding_layer_counts_in_s_but_adds_nothing_under_lora(tmp_path, sft_rows):
    cons = {}
    for layers in (None, [1, 2], [0, 0]):
        model = get_peft_model(tiny_model(), LoraConfig(**LORA))
        trainer = _trainer(tmp_path, sft_rows, model=model, lfu_layers=layers)
        trainer.compute_loss(trainer.model, _first_batch(trainer))
        cons[str(layers)] = trainer._metrics["train"]["lfu/cons_loss"][-1]
    assert cons["[0, 0]"] == 0.0  # LoRA never touches the embeddings
    assert cons["None"] > 0
    assert cons["None"] == pytest.approx(cons["[1, 2]"] * 2 / 3, rel=1e-5)  # |S| = 3 with index 0, 2 without


def _reference_grads(model, batch, aux, alpha, lam, in_place):
    """The official recipe, written naively: full logits, HF forward with output_hidden_states, the ascent gradient
    from `aux`; `in_place` moves `param.data` to phi' after the clean forward and back after backward (yunpal/LfU),
    otherwise the perturbed pass is a functional call (the exact gradient)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    labels = batch["labels"]
    out = model(**inputs, output_hidden_states=True)
    vocab = out.logits.shape[-1]
    sft = F.cross_entropy(out.logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100)
    aux_logits = model(input_ids=aux["input_ids"], attention_mask=aux["attention_mask"]).logits
    aux_loss = F.cross_entropy(
        aux_logits[:, :-1].reshape(-1, vocab), aux["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    g = torch.autograd.grad(aux_loss, list(params.values()), allow_unused=True)
    g = [torch.zeros_like(p) if x is None else x for x, p in zip(g, params.values(), strict=True)]
    norm = torch.sqrt(sum(x.pow(2).sum() for x in g))
    c = {n: alpha * x / norm for n, x in zip(params, g, strict=True)}
    saved = {n: p.data.clone() for n, p in params.items()}
    if in_place:
        for n, p in params.items():
            p.data.add_(c[n])
        moved = model(**inputs, output_hidden_states=True).hidden_states
    else:
        moved = torch.func.functional_call(
            model, {n: p + c[n] for n, p in params.items()}, (), {**inputs, "output_hidden_states": True}
        ).hidden_states
    positions = labels != -100
    positions[:, 0] = False
    layers = [((h_p - h.detach())[positions] ** 2).mean() for h, h_p in zip(out.hidden_states, moved, strict=True)]
    (sft + lam * sum(layers) / len(layers)).backward()
    for n, p in params.items():
        p.data.copy_(saved[n])
    return {n: p.grad.detach().clone() for n, p in params.items()}


def _peft_model():
    torch.manual_seed(1)
    return get_peft_model(tiny_model(), LoraConfig(**LORA))


def test_official_and_exact_gradients_match_naive_references(tmp_path, sft_rows):
    """'official' equals the in-place recipe of yunpal/LfU; 'exact' the gradient of the loss as written; they differ."""
    got = {}
    for gradient in ("official", "exact"):
        trainer = _trainer(tmp_path, sft_rows, model=_peft_model(), lfu_gradient=gradient, lfu_alpha=0.5)
        loss, grads, batch = _loss_and_grads(trainer)
        got[gradient] = {n.replace("base_model.model.", ""): g for n, g in grads.items()}
        aux = trainer.undesirable_batch()
    for gradient, in_place in (("official", True), ("exact", False)):
        reference = _reference_grads(_peft_model(), batch, aux, alpha=0.5, lam=5.0, in_place=in_place)
        reference = {n.replace("base_model.model.", ""): g for n, g in reference.items()}
        assert max_grad_diff(reference, got[gradient]) < 2e-5, gradient
    assert max_grad_diff(got["official"], got["exact"]) > 1e-3


def test_logit_kl_variant_is_zero_at_alpha_zero_and_positive_otherwise(tmp_path, sft_rows):
    for alpha, positive in ((0.0, False), (0.5, True)):
        trainer = _trainer(tmp_path, sft_rows, lfu_consistency="logit_kl", lfu_alpha=alpha)
        _loss_and_grads(trainer)
        value = trainer._metrics["train"]["lfu/cons_loss"][-1]
        assert (value > 1e-6) if positive else value == pytest.approx(0.0, abs=1e-7)


def test_undesirable_batches_are_independent_and_reseeded_by_step(tmp_path, sft_rows):
    rows = sft_rows * 2
    a = _trainer(tmp_path, rows, single_aux=False, per_device_train_batch_size=3)
    b = _trainer(tmp_path, rows, single_aux=False, per_device_train_batch_size=3)
    first, second = a.undesirable_batch(), a.undesirable_batch()
    assert first["input_ids"].shape[0] == 3
    assert first["input_ids"].tolist() != second["input_ids"].tolist()  # each micro-batch draws its own B'
    assert torch.equal(b.undesirable_batch()["input_ids"], first["input_ids"])  # same (seed, step, micro-batch)
    a.state.global_step = b.state.global_step = 1  # a new step starts again at micro-batch 0, on both
    assert torch.equal(a.undesirable_batch()["input_ids"], b.undesirable_batch()["input_ids"])


def test_aux_dataset_from_raw_rows_and_by_name(tmp_path, sft_rows):
    raw = [
        {
            "prompt": [{"role": "user", "content": "Say something harmful."}],
            "completion": [{"role": "assistant", "content": "No, I will not do that."}],
        }
    ] * 3
    trainer = LfUTrainer(
        model=tiny_model(),
        args=_config(tmp_path, lfu_aux_batch_size=2),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
        aux_dataset=Dataset.from_list(raw),
    )
    aux = trainer.undesirable_batch()
    assert aux["input_ids"].shape[0] == 2 and (aux["labels"] == -100).any() and (aux["labels"] != -100).any()
    by_name = LfUTrainer(
        model=tiny_model(),
        args=_config(tmp_path, lfu_aux_dataset="builtin:arith"),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    assert len(by_name._aux_dataset) == 2000


def test_trains_with_lora_and_logs_metrics(tmp_path, sft_rows):
    trainer = LfUTrainer(
        model=tiny_model(),
        args=_config(tmp_path, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
        peft_config=LoraConfig(**LORA),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "lfu/cons_loss",
        "lfu/sft_loss",
        "lfu/ascent_grad_norm",
        "lfu/aux_sft_loss",
        "entropy",
        "mean_token_accuracy",
        "loss",
    } <= logged
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if n in before)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("lfu_alpha", -0.1, "lfu_alpha"),
        ("lfu_lambda", float("nan"), "lfu_lambda"),
        ("lfu_layers", [3, 1], "lfu_layers"),
        ("lfu_layers", [1], "lfu_layers"),
        ("lfu_consistency", "cosine", "lfu_consistency"),
        ("lfu_gradient", "sam", "lfu_gradient"),
        ("lfu_cons_normalization", "token", "lfu_cons_normalization"),
        ("lfu_aux_batch_size", 0, "lfu_aux_batch_size"),
        ("loss_type", "dft", "loss_type"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **{field: value})


def test_layers_out_of_range_refused(tmp_path, sft_rows):
    with pytest.raises(ValueError, match="lfu_layers"):
        _trainer(tmp_path, sft_rows, lfu_layers=[5, 9])


@pytest.mark.slow
def test_resume_draws_the_same_undesirable_batches(tmp_path, sft_rows):
    """Checkpoint at step 2 and resume: the undesirable batches are re-drawn from (seed, step), so the resumed run's
    losses and weights equal an unbroken run's."""
    rows = sft_rows * 2

    def make(out):
        cfg = _config(
            out, max_steps=4, per_device_train_batch_size=2, save_strategy="steps", save_steps=2, learning_rate=5e-2
        )
        return LfUTrainer(
            model=tiny_model(), args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
        )

    full, _, resumed = interrupted_and_resumed(make, tmp_path, 2)

    for key in ("loss", "lfu/aux_sft_loss", "lfu/cons_loss"):
        assert logged(resumed, key)[3] == pytest.approx(logged(full, key)[3], rel=1e-5), key
        assert logged(resumed, key)[4] == pytest.approx(logged(full, key)[4], rel=1e-5), key
    for (name, p_full), (_, p_res) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.allclose(p_full, p_res, atol=1e-6), name


def test_cli_train_lfu(tiny_model_dir, tmp_path, sft_rows):
    data = tmp_path / "train.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    out = tmp_path / "run"
    code = main(
        train_argv(
            "lfu",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            str(data),
            *tiny_run_flags(2, 2, logging_steps=1),
            "--lfu_layers",
            "1",
            "2",
            "--lfu_gradient",
            "exact",
        )
    )
    assert code == 0
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2511.13052" in card and "method: lfu" in card
