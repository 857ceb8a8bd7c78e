"""LocFT-BF: the card's CPU tests (shared/papers/locft-bf.md 1-6), the per-request loss against a plain-torch
computation from the model's logits, exact-name localisation, the built-in edits and a CLI run."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import LlamaConfig

from trl_ext.cli import main
from trl_ext.losses import LMHead, fused_token_loss
from trl_ext.testing import (
    assert_same_step,
    first_batch,
    largest_update,
    logged,
    run_layout,
    tiny_model,
    tiny_tokenizer,
)
from trl_ext.training.normalization import sequence_token_weights
from trl_ext_plugins.locft_bf import (
    LocFTConfig,
    LocFTTrainer,
    edit_completion,
    edit_em,
    edit_requests_to_prompt_completion,
    localized_names,
    request_losses,
)
from trl_ext_plugins.locft_bf.data import build as build_edits
from trl_ext_plugins.locft_bf.trainer import default_edit_layer

EDITED = "model.layers.2.mlp.down_proj.weight"


def _requests(n=4):
    return [
        {"prompt": f"The capital of Zorbia {i} is", "target_new": f"Tokyo {i}", "rephrase_prompt": f"Zorbia {i} has"}
        for i in range(n)
    ]


def _config(tmp_path, **kw):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        edit_layer=2,
        per_device_train_batch_size=2,
        num_train_epochs=1,
        eval_edits=False,
        seed=0,
    )
    return LocFTConfig(**{**defaults, **kw})


def _trainer(tmp_path, rows=None, **kw):
    return LocFTTrainer(
        model=tiny_model(num_layers=4),
        args=_config(tmp_path, **kw),
        train_dataset=Dataset.from_list(rows or _requests()),
        processing_class=tiny_tokenizer(),
    )


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# --- card test 1: localisation ---------------------------------------------------------------------------------------
def test_only_the_localized_tensor_trains(tmp_path):
    trainer = _trainer(tmp_path, skip_loss_below=0.0, learning_rate=1e-2)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == [EDITED]
    before = _snapshot(trainer.model)
    trainer.train()
    after = _snapshot(trainer.model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed == [EDITED]


def test_whole_module_pattern_matches_exact_names_not_substrings():
    """'model.layers.{}' at layer 1 of a 12-layer model: layer 1's parameters only (a substring match, as in the
    official code, would also take layers 10 and 11)."""
    model = tiny_model(num_layers=12)
    names = localized_names(model, "model.layers.{}", 1)
    assert names and all(n.startswith("model.layers.1.") for n in names)
    assert len(names) == sum(1 for n, _ in model.named_parameters() if n.startswith("model.layers.1."))
    with pytest.raises(ValueError, match="model.layers.2.mlp.down_projj"):
        localized_names(model, "model.layers.{}.mlp.down_projj", 2)


def test_default_layer_is_a_fifth_of_the_depth():
    """Card: Qwen2.5-7B (28 layers) -> 6; SmolLM2-135M (30 layers) -> 6."""

    class M:
        def __init__(self, n):
            self.config = LlamaConfig(num_hidden_layers=n)

    assert default_edit_layer(M(28)) == 6 and default_edit_layer(M(30)) == 6


# --- card test 2: loss normalisation ---------------------------------------------------------------------------------
def _logit_for_nll(nll):
    """Vocab 2, label 1: logits [a, 0] give -log p_1 = log(1 + e^a) = nll."""
    return math.log(math.exp(nll) - 1.0)


def test_per_request_mean_then_batch_mean_hand_case():
    """Two requests, target-token NLLs [2.0] and [1.0, 1.0, 1.0]: per-request means 2.0 and 1.0 -> 1.5 (TRL's
    token mean would be 5/4 = 1.25)."""
    mask = torch.tensor([[True, False, False], [True, True, True]])
    nlls = [2.0, 1.0, 1.0, 1.0]
    hidden = torch.tensor([[_logit_for_nll(v), 0.0] for v in nlls])
    head, labels = LMHead(torch.eye(2)), torch.ones(4, dtype=torch.long)
    loss, stats = fused_token_loss(hidden, head, labels, normalizer=2, token_weights=sequence_token_weights(mask))
    assert loss.item() == pytest.approx(1.5, abs=1e-6)
    assert request_losses(-stats.log_probs, mask).tolist() == pytest.approx([2.0, 1.0], abs=1e-6)
    token_mean, _ = fused_token_loss(hidden, head, labels, normalizer=4)
    assert token_mean.item() == pytest.approx(1.25, abs=1e-6)


def test_trainer_loss_equals_plain_torch_per_request_mean(tmp_path):
    """The trainer's loss on a batch of requests with different target lengths equals mean_i mean_j NLL computed
    from the model's full logits in plain torch (and differs from the token mean)."""
    rows = [{"prompt": "The capital of Zorbia is", "target_new": "Tokyo"},
            {"prompt": "Ann works as a", "target_new": "teacher of 3 + 4 = 7 apples and pens"}]  # fmt: skip
    trainer = _trainer(tmp_path, rows=rows)
    batch = first_batch(trainer)
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=(batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
    scored = labels != -100
    per_request = (nll * scored).sum(1) / scored.sum(1)
    assert scored.sum(1).tolist()[0] != scored.sum(1).tolist()[1]
    assert loss.item() == pytest.approx(per_request.mean().item(), rel=1e-5)
    assert abs(loss.item() - (nll * scored).sum().item() / scored.sum().item()) > 1e-3


# --- card test 3: skip rule ------------------------------------------------------------------------------------------
def test_skip_rule_leaves_the_model_and_adam_untouched(tmp_path):
    trainer = _trainer(tmp_path, skip_loss_below=1e9, early_stop_epoch_loss=0.0)
    before = _snapshot(trainer.model)
    trainer.train()
    after = _snapshot(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert trainer.state.global_step == 2  # 4 requests, 2 per batch
    assert trainer.locft_rules.skipped == 2
    assert logged(trainer, "locft/skipped_batches")[2] == 2.0
    assert all(not s for s in trainer.optimizer.state.values())  # no Adam moment was ever taken


def test_no_skip_below_threshold_zero_updates_every_batch(tmp_path):
    trainer = _trainer(tmp_path, skip_loss_below=0.0, early_stop_epoch_loss=0.0)
    trainer.train()
    assert trainer.locft_rules.skipped == 0
    assert logged(trainer, "locft/skipped_batches")[2] == 0.0


# --- card test 4: early stop -----------------------------------------------------------------------------------------
def test_epoch_early_stop_after_the_first_epoch(tmp_path):
    """An epoch mean loss under the threshold stops training after epoch 1 of 3; the logged epoch mean is the mean
    of the per-request losses seen in that epoch (batch losses weighted by batch size)."""
    trainer = _trainer(tmp_path, rows=_requests(6), num_train_epochs=3, per_device_train_batch_size=4,
                       skip_loss_below=0.0, early_stop_epoch_loss=1e9)  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 2  # batches of 4 and 2: one epoch
    (epoch_mean,) = logged(trainer, "locft/epoch_mean_loss").values()
    steps = trainer.locft_rules.step_losses
    assert epoch_mean == pytest.approx((4 * steps[0] + 2 * steps[1]) / 6, rel=1e-9)


def test_no_early_stop_trains_every_epoch(tmp_path):
    trainer = _trainer(tmp_path, num_train_epochs=2, skip_loss_below=0.0, early_stop_epoch_loss=0.0)
    trainer.train()
    assert trainer.state.global_step == 4 and len(trainer.locft_rules.epoch_losses) == 2


# --- card test 5: EOS and the leading space --------------------------------------------------------------------------
def test_completion_gets_one_space_and_one_eos(tmp_path):
    tok = tiny_tokenizer()
    assert edit_completion("Paris", tok.eos_token) == " Paris" + tok.eos_token
    assert edit_completion(" Paris", tok.eos_token) == " Paris" + tok.eos_token
    assert edit_completion("Paris" + tok.eos_token, tok.eos_token) == " Paris" + tok.eos_token
    ds = edit_requests_to_prompt_completion(Dataset.from_list([{"src": "Ann is a", "alt": "cook"}]), tok.eos_token)
    assert ds[0]["prompt"] == "Ann is a" and ds[0]["completion"] == " cook" + tok.eos_token
    assert ds[0]["target_new"] == "cook"
    # Through SFTTrainer: the EOS id ends each sequence exactly once, and the first target token is in the loss.
    trainer = _trainer(tmp_path)
    batch = first_batch(trainer)
    for ids, labels, attn in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        ids = ids[attn.bool()].tolist()
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
        scored = labels[attn.bool()] != -100
        first = int(scored.nonzero()[0])
        assert tok.decode(ids[first:]).startswith(" Tokyo")


# --- card test 6: the EM normaliser ----------------------------------------------------------------------------------
def test_edit_exact_match_normaliser():
    assert edit_em("The  Paris.", "paris") == 1.0
    assert edit_em("Paris France", "Paris") == 0.0


# --- optimizer, refusals, data, CLI ----------------------------------------------------------------------------------
def test_default_optimizer_is_torch_adam(tmp_path):
    """AdamW with weight_decay 0 (the config's default) takes torch Adam's step, bit for bit."""
    trainer = _trainer(tmp_path)
    trainer.create_optimizer()
    param = trainer.localized_parameters[EDITED]
    twin = param.detach().clone().requires_grad_(True)
    adam = torch.optim.Adam([twin], lr=5e-4)
    for step in range(3):
        grad = torch.randn_like(param, generator=torch.Generator().manual_seed(step))
        param.grad, twin.grad = grad.clone(), grad.clone()
        trainer.optimizer.step()
        adam.step()
    assert torch.equal(param.detach(), twin.detach())


def test_refuses_peft_and_bad_fields(tmp_path):
    from peft import LoraConfig

    with pytest.raises(ValueError, match="not an adapter"):
        LocFTTrainer(model=tiny_model(), args=_config(tmp_path), train_dataset=Dataset.from_list(_requests()),
                     processing_class=tiny_tokenizer(), peft_config=LoraConfig())  # fmt: skip
    with pytest.raises(ValueError, match="rewrite_module"):
        _config(tmp_path, rewrite_module="model.layers.mlp")
    with pytest.raises(ValueError, match="skip_loss_below"):
        _config(tmp_path, skip_loss_below=-1.0)


def test_builtin_edits_are_deterministic_and_distinct():
    a, b = build_edits("sft")["train"], build_edits("sft")["train"]
    assert a.to_list() == b.to_list() and len(a) == 200
    assert len(set(a["target_new"])) == 200 and len(set(a["prompt"])) == 200
    assert all(c == " " + t for c, t in zip(a["completion"], a["target_new"], strict=True))
    assert all(r["locality_prompt"] and r["rephrase_prompt"] != r["prompt"] for r in a)
    assert "completion" not in build_edits("requests")["train"].column_names


def test_cli_train_with_edit_metrics(tiny_model_dir, tmp_path):
    out = tmp_path / "locft"
    code = main(["train", "locft_bf", "--model_name_or_path", tiny_model_dir, "--dataset_name",
                 "builtin:locft_edits", "--edit_layer", "1", "--per_device_train_batch_size", "8", "--max_steps",
                 "2", "--edit_eval_limit", "4", "--edit_eval_max_new_tokens", "4", "--report_to", "none",
                 "--save_strategy", "no", "--logging_steps", "1", "--output_dir", str(out)])  # fmt: skip
    assert code == 0 and (out / "model.safetensors").exists()


# --- several processes -----------------------------------------------------------------------------------------------
SCRIPT = Path(__file__).parents[1] / "distributed" / "locft_step.py"


@pytest.mark.slow
def test_two_processes_ddp_and_zero3_equal_one(tmp_path, monkeypatch):
    """One step on 4 requests of different lengths: 2 processes of 2 (DDP) and, with the skip rule off, DeepSpeed
    ZeRO-3 equal one process accumulating 2 x 2 (the per-request mean over the global batch); a batch under the
    threshold is skipped on every rank alike; ZeRO-3 with the skip rule is refused before training."""
    reference = run_layout(SCRIPT, tmp_path / "accumulated.json", 2, 2, "none", 0.0)
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 2, 1, "none", 0.0, nproc=2)
    assert_same_step(reference, ddp, name="locft on 2 processes (ddp)")
    assert set(reference["update"]) == {"model.layers.1.mlp.down_proj.weight"}
    skipped = run_layout(SCRIPT, tmp_path / "skipped.json", 2, 1, "none", 1e9, nproc=2)
    assert skipped["skipped"] == 1 and largest_update(skipped) == 0.0
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(SCRIPT, tmp_path / "zero3.json", 2, 1, "zero3", 0.0, nproc=2)
    assert_same_step(reference, zero3, name="locft on 2 processes (zero3)")
    refused = run_layout(SCRIPT, tmp_path / "refused.json", 2, 1, "zero3", 1e-2, nproc=2)
    assert "skip rule" in refused["refused"]
