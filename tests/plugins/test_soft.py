"""SoFT: the card's limiting cases, sub-model equivalence, gradient locality, hand averages, the default depth rule,
and the inference helpers (shared/papers/soft.md, tests 1-6)."""

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from sft_steps import sgd_step_trainer
from trl import SFTConfig, SFTTrainer

from trl_ext.evaluation import completion_nll
from trl_ext.testing import (
    assert_same_step,
    first_batch,
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
)
from trl_ext_plugins.soft import (
    SoFTConfig,
    SoFTTrainer,
    default_depths,
    depth_nll,
    early_exit_generate,
    truncate_to_submodel,
)

L = 4


def _model(seed=0):
    """A 4-layer tiny Llama whose final norm is not the identity (else normalising twice would go unnoticed) and whose
    head is scaled up (clear argmax margins for the generation tests)."""
    model = tiny_model(num_layers=L, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.model.norm.weight.copy_(0.5 + torch.rand(model.model.norm.weight.shape, generator=g))
        model.lm_head.weight.mul_(25.0)
    return model


def _config(tmp_path, cls=SoFTConfig, **kw):
    return one_step_config(cls, tmp_path, **{"learning_rate": 1e-3, **kw})


def _trainer(tmp_path, rows, trainer_cls=SoFTTrainer, config=None, model=None, **kw):
    return tiny_trainer(trainer_cls, config or _config(tmp_path, **kw), rows, model or _model())


def _batch(trainer):
    trainer.model.train()
    return first_batch(trainer)


def _grads(trainer, loss):
    trainer.model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


# --- card test 6: the default depth rule ------------------------------------------------------------------------------
def test_default_depths():
    assert default_depths(40) == [12, 16, 20, 24, 28, 32, 36, 40]
    assert default_depths(30) == [10, 14, 18, 22, 26, 30]
    assert default_depths(4) == [4]
    assert default_depths(10) == [6, 10]  # ceil(0.3 * 10) = 3 although 0.3 * 10 is 3.0000000000000004
    assert default_depths(12, step=2, min_frac=0.5) == [6, 8, 10, 12]


@pytest.mark.parametrize("layers", [[2], [2, 5], [1, 3]])
def test_explicit_depths_must_include_the_full_depth(tmp_path, sft_rows, layers):
    with pytest.raises(ValueError, match="full depth L=4"):
        _trainer(tmp_path, sft_rows, soft_layers=layers)


def test_depths_and_weights_are_sorted_and_normalised():
    config = SoFTConfig(
        output_dir="x", report_to="none", bf16=False, soft_layers=[4, 2], soft_layer_weights=[1.0, 3.0]
    )
    assert config.depths_for(4) == ([2, 4], [0.75, 0.25])


# --- card test 1: B = {L} is plain SFT --------------------------------------------------------------------------------
def test_full_depth_only_reproduces_trl_nll(tmp_path, sft_rows):
    sft = _trainer(tmp_path, sft_rows, SFTTrainer, config=_config(tmp_path, SFTConfig))
    batch = _batch(sft)
    num_items = (batch["labels"][:, 1:] != -100).sum()
    sft_loss = sft.compute_loss(sft.model, batch, num_items_in_batch=num_items)
    sft_grads = _grads(sft, sft_loss)
    soft = _trainer(tmp_path, sft_rows)  # L = 4: the default B is {4}
    assert soft.depths == [4]
    loss = soft.compute_loss(soft.model, _batch(soft), num_items_in_batch=num_items)
    assert loss.item() == pytest.approx(sft_loss.item(), rel=1e-6)
    assert relative_grad_diff(sft_grads, _grads(soft, loss)) < 1e-5


# --- card test 2: L_n is the SFT loss of the truncated model ----------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3])
def test_depth_loss_equals_truncated_model_sft_loss(tmp_path, sft_rows, n):
    trainer = _trainer(tmp_path, sft_rows, soft_layers=sorted({n, L}))
    batch = _batch(trainer)
    loss_n = trainer.depth_losses(trainer.model, batch)[n][0]
    grads_n = _grads(trainer, loss_n)
    sub = truncate_to_submodel(trainer.model, n)
    reference = sub(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert loss_n.item() == pytest.approx(reference.item(), rel=1e-6)
    reference_grads = _grads(trainer, reference)  # the sub-model shares its weights with the trainer's model
    assert relative_grad_diff(grads_n, reference_grads) < 1e-5
    assert all(f"layers.{i}." not in name for name in grads_n for i in range(n, L))


# --- card test 3: the average over depths -----------------------------------------------------------------------------
@pytest.mark.parametrize("weights,share_of_l2", [(None, 0.5), ([3.0, 1.0], 0.75)])
def test_loss_is_the_weighted_average_of_separate_depth_losses(tmp_path, sft_rows, weights, share_of_l2):
    """The one fused pass over all depths gives (w L_2 + (1 - w) L_4), w = 1/2 uniform or 3/4 for weights (3, 1), with
    L_n from separate per-depth passes: in value and in gradient."""
    trainer = _trainer(tmp_path, sft_rows, soft_layers=[2, 4], soft_layer_weights=weights)
    batch = _batch(trainer)
    separate = trainer.depth_losses(trainer.model, batch)
    expected = share_of_l2 * separate[2][0] + (1 - share_of_l2) * separate[4][0]
    loss = trainer.compute_loss(trainer.model, batch)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert separate[2][0].item() != pytest.approx(separate[4][0].item(), abs=1e-3)  # the weights matter
    expected_grads = _grads(trainer, expected)
    size = max(g.abs().max().item() for g in expected_grads.values())
    assert relative_grad_diff(_grads(trainer, loss), expected_grads) < 1e-5 * max(1.0, size)  # float32 summation order


# --- card test 4: gradient locality -----------------------------------------------------------------------------------
def test_deep_layers_only_learn_from_the_full_depth(tmp_path, sft_rows):
    both = _trainer(tmp_path, sft_rows, soft_layers=[2, 4])
    grads_both = _grads(both, both.compute_loss(both.model, _batch(both)))
    full = _trainer(tmp_path, sft_rows, soft_layers=[4])
    grads_full = _grads(full, full.compute_loss(full.model, _batch(full)))
    for name, g in grads_both.items():
        if "layers.2." in name or "layers.3." in name:  # layers 3..L: only L_L, weighted 1/2
            assert torch.allclose(g, 0.5 * grads_full[name], atol=1e-7), name
        if "layers.0." in name or "layers.1." in name:  # layers 1-2 also get L_2's gradient
            assert not torch.allclose(g, 0.5 * grads_full[name], atol=1e-4), name


# --- card test 5: no double normalisation ----------------------------------------------------------------------------
def test_full_depth_log_probs_are_the_models_own(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, soft_layers=[2, 4])
    batch = _batch(trainer)
    mask = batch["labels"][:, 1:] != -100
    targets = batch["labels"][:, 1:][mask]
    losses = trainer.depth_losses(trainer.model, batch)
    with torch.no_grad():
        out = trainer.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        own = F.log_softmax(out.logits[:, :-1][mask], -1).gather(1, targets[:, None])[:, 0]
        model = trainer.model
        by_hand = F.log_softmax(model.lm_head(model.model.norm(out.hidden_states[2]))[:, :-1][mask], -1)
        twice = F.log_softmax(model.lm_head(model.model.norm(out.hidden_states[L]))[:, :-1][mask], -1)
    assert torch.allclose(losses[L][1].log_probs, own, atol=1e-5)
    assert torch.allclose(losses[2][1].log_probs, by_hand.gather(1, targets[:, None])[:, 0], atol=1e-5)
    assert not torch.allclose(twice.gather(1, targets[:, None])[:, 0], own, atol=1e-3)  # the test can tell


def test_pre_norm_last_hidden_state_is_refused(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows)
    captured = {}
    hook = trainer.model.model.norm.register_forward_hook(lambda m, args, out: captured.update(pre=args[0], post=out))
    batch = _batch(trainer)
    with torch.no_grad():
        trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hook.remove()
    trainer._check_last_hidden(captured["post"], captured["post"])  # the head's own input passes
    with pytest.raises(ValueError, match="final-normed"):
        trainer._check_last_hidden(captured["pre"], captured["post"])


# --- normalisation under gradient accumulation and 2 processes --------------------------------------------------------
def _step_trainer(out, per_device, accumulation, **kw):
    depths = dict(soft_layers=[1, 3, 4], soft_layer_weights=[1.0, 2.0, 1.0])
    return sgd_step_trainer(SoFTTrainer, SoFTConfig, _model(), out, per_device, accumulation, **depths, **kw)


def _one_sgd_step(out, per_device, accumulation, **kw):
    return train_one_step(_step_trainer(out, per_device, accumulation, **kw))


def test_gradient_accumulation_gives_the_same_step(tmp_path):
    assert_same_step(_one_sgd_step(tmp_path / "a", 4, 1), _one_sgd_step(tmp_path / "b", 2, 2))


@pytest.mark.slow
def test_two_processes_give_the_same_step(tmp_path):
    """torchrun, 2 CPU processes (gloo), batch 2 each, against one process with batch 4."""
    ddp = run_layout(__file__, tmp_path / "ddp.json", 2, 1, nproc=2)
    assert_same_step(_one_sgd_step(tmp_path / "single", 4, 1), ddp)


# --- training run, metrics, saved depths, validation, CLI -------------------------------------------------------------
def test_train_logs_depth_metrics_and_records_depths(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, max_steps=2, soft_layers=[1, 2, 4])
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {f"soft/loss_L{n}" for n in (1, 2, 4)} | {f"soft/acc_L{n}" for n in (1, 2, 4)} <= logged
    assert {"soft/loss_mean", "entropy", "mean_token_accuracy", "loss"} <= logged
    first = trainer.state.log_history[0]
    assert first["soft/loss_mean"] == pytest.approx(sum(first[f"soft/loss_L{n}"] for n in (1, 2, 4)) / 3, rel=1e-5)
    trainer.save_model(str(tmp_path / "saved"))
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["soft_layers"] == [1, 2, 4]


@pytest.mark.parametrize(
    "field,value",
    [
        ("soft_layers", [0, 4]),
        ("soft_layers", [2, 2, 4]),
        ("soft_step", 0),
        ("soft_min_frac", 0.0),
        ("soft_layer_weights", [1.0, -1.0]),
        ("soft_layer_weights", [0.0, 0.0]),
        ("loss_type", "dft"),
    ],
)
def test_config_validation(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_weights_must_match_depths(tmp_path, sft_rows):
    with pytest.raises(ValueError, match="soft_layer_weights"):
        _config(tmp_path, soft_layers=[2, 4], soft_layer_weights=[1.0])
    with pytest.raises(ValueError, match="soft_layer_weights"):
        _trainer(tmp_path, sft_rows, soft_layer_weights=[1.0, 2.0])  # default B for L=4 is {4}


def test_cli_train(tiny_model_dir, tmp_path):
    from trl_ext.cli import main

    out = tmp_path / "run"
    assert main(train_argv("soft", tiny_model_dir, str(out), "--soft_layers", "1", "2", *tiny_run_flags(2, 4))) == 0
    assert json.loads((out / "config.json").read_text())["soft_layers"] == [1, 2]
    assert "2309.08968" in (out / "README.md").read_text()


# --- inference helpers ------------------------------------------------------------------------------------------------
def _prompts():
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    enc = tokenizer(["What is 3 + 4? The answer is", "Tom has 12 pens."], return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    return enc["input_ids"], enc["attention_mask"], tokenizer


def test_truncated_submodel_shares_weights_and_leaves_the_model_whole():
    model = _model()
    sub = truncate_to_submodel(model, 2)
    assert len(sub.model.layers) == 2 and sub.config.num_hidden_layers == 2
    assert len(model.model.layers) == L and model.config.num_hidden_layers == L
    assert sub.lm_head.weight is model.lm_head.weight and sub.model.norm is model.model.norm
    assert sub.model.layers[1] is model.model.layers[1]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        hidden = model.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
        assert torch.allclose(sub(input_ids=ids).logits, model.lm_head(model.model.norm(hidden)), atol=1e-5)
    with pytest.raises(ValueError):
        truncate_to_submodel(model, L + 1)


@pytest.mark.parametrize("n", [1, 3])
def test_dynamic_exit_at_zero_threshold_is_the_submodel(n):
    """Every token exits at depth n when its threshold is 0: the same tokens as sub-model n's own greedy generate
    (with its KV cache, a separate code path)."""
    ids, mask, tokenizer = _prompts()
    model = _model().eval()
    dynamic = early_exit_generate(model, ids, {n: 0.0}, attention_mask=mask, max_new_tokens=6)
    fixed = early_exit_generate(model, ids, n, attention_mask=mask, max_new_tokens=6)
    width = min(dynamic.sequences.shape[1], fixed.sequences.shape[1])
    assert torch.equal(dynamic.sequences[:, :width], fixed.sequences[:, :width])
    assert set(dynamic.exit_depths.unique().tolist()) <= {0, n}


def test_dynamic_exit_never_confident_is_the_full_model():
    ids, mask, tokenizer = _prompts()
    model = _model().eval()
    dynamic = early_exit_generate(model, ids, {1: 1.01, 2: 1.01}, attention_mask=mask, max_new_tokens=6)
    greedy = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    width = min(dynamic.sequences.shape[1], greedy.shape[1])
    assert torch.equal(dynamic.sequences[:, :width], greedy[:, :width])
    assert set(dynamic.exit_depths.unique().tolist()) <= {0, L}


def test_dynamic_exit_takes_the_first_confident_depth():
    ids, mask, _ = _prompts()
    model = _model().eval()
    out = early_exit_generate(model, ids, {1: 0.5, 2: 0.0}, attention_mask=mask, max_new_tokens=5)
    with torch.no_grad():
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = model.model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids, output_hidden_states=True
        ).hidden_states
        p1 = torch.softmax(model.lm_head(model.model.norm(hidden[1][:, -1])), -1).max(-1).values
    assert out.exit_depths[:, 0].tolist() == [1 if p >= 0.5 else 2 for p in p1.tolist()]
    assert 1 <= out.mean_depth <= 2


def test_submodel_as_draft_for_self_speculative_decoding():
    ids = torch.tensor([[5, 6, 7, 8]])
    model = _model().eval()
    greedy = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    assisted = model.generate(
        input_ids=ids, max_new_tokens=8, do_sample=False, assistant_model=truncate_to_submodel(model, 2)
    )
    assert torch.equal(assisted, greedy)  # greedy assisted decoding is lossless


def test_depth_nll_at_full_depth_is_the_completion_nll(sft_rows):
    model, tokenizer = _model(), tiny_tokenizer()
    prompts, completions = [r["prompt"] for r in sft_rows], [r["completion"] for r in sft_rows]
    nll = depth_nll(model, tokenizer, prompts, completions, [2, L], batch_size=3)
    reference = completion_nll(model, tokenizer, Dataset.from_list(sft_rows))
    assert nll[L] == pytest.approx(reference, rel=1e-5)
    assert nll[2] != pytest.approx(nll[L], rel=1e-3)


if __name__ == "__main__":  # one DDP step for test_two_processes_give_the_same_step (run_layout under torchrun)
    import tempfile

    trainer = _step_trainer(tempfile.mkdtemp(), int(sys.argv[2]), int(sys.argv[3]))
    save_step_result(trainer, train_one_step(trainer), sys.argv[1])
