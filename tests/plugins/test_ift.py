"""IFT: the card's checks (shared/papers/ift.md, tests 1-6), the trainer against a naive full-logits
re-implementation of the official loss (TsinghuaC3I/Intuitive-Fine-Tuning, src/trainers.py), the λ schedule, resume,
the CLI and the built-in dataset."""

import re
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from trl_ext.cli import main
from trl_ext.data.arith import is_correct
from trl_ext.losses import LMHead, fused_token_loss
from trl_ext.losses.distribution import greedy_tokens
from trl_ext.testing import (
    check_same_step_in_every_layout,
    first_batch,
    interrupted_and_resumed,
    logged,
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
from trl_ext_plugins.ift import IFTConfig, IFTTrainer, mix_embeddings, propagation_weights, temporal_residual_ids
from trl_ext_plugins.ift import trainer as ift_trainer
from trl_ext_plugins.ift.data import build as build_chains


@pytest.fixture
def ift_rows():
    """Completions of different lengths, so per-sequence means differ from a token mean."""
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}],
            "completion": [
                {
                    "role": "assistant",
                    "content": f"{i} + {i + 2} = {2 * i + 2}." + " The answer is" * (i % 3) + f" {2 * i + 2}.",
                }
            ],
        }
        for i in range(8)
    ]


def _config(tmp_path, **kw):
    return one_step_config(IFTConfig, tmp_path, **{"learning_rate": 1e-3, **kw})


def _trainer(config, rows, model=None, **kw):
    return tiny_trainer(IFTTrainer, config, rows, model, **kw)


def _loss_and_grads(config, rows, model=None):
    return trainer_loss_and_grads(IFTTrainer, config, rows, model)


# --- a naive re-implementation of the official loss, on full logits --------------------------------------------------
def official_weights(logps, loss_mask, gamma, propagation_type, propagation_norm, propagation_side):
    """`get_cumsum_weight` of the official code, with its discounted cumsums written as loops."""
    if gamma == 0:
        return torch.ones_like(logps)
    if propagation_type == "mask":
        item = loss_mask.to(logps.dtype)
    elif propagation_type == "loss":
        item = -logps / loss_mask.sum(-1, keepdim=True)
    else:
        item = -logps
    item = item.masked_fill(~loss_mask, 0)
    length = item.shape[-1]
    columns, acc = [None] * length, torch.zeros_like(item[:, 0])
    order = range(length) if propagation_side == "right" else reversed(range(length))
    for t in order:
        acc = item[:, t] + gamma * acc
        columns[t] = acc
    w = torch.stack(columns, -1)
    if propagation_side == "right":
        w = w.masked_fill(~loss_mask, 1e6)
        w = w + w[w.nonzero(as_tuple=True)].min()
        w = {
            "L1": lambda x: 1 / x,
            "L2": lambda x: 1 / x**2,
            "softmax": lambda x: torch.softmax(1 / x, -1),
            "log": lambda x: 1 / torch.log(x + 1),
        }[propagation_norm](w)
    else:
        w = w.masked_fill(~loss_mask, 0)
        w = {
            "L1": lambda x: x,
            "L2": lambda x: x**2,
            "softmax": lambda x: torch.softmax(x, -1),
            "log": lambda x: torch.log(x + 1),
        }[propagation_norm](w)
    w = w.masked_fill(~loss_mask, 0)
    return w * (loss_mask.sum(-1, keepdim=True) / w.sum(-1, keepdim=True))


def naive_ift_loss(
    model,
    batch,
    lam,
    gamma,
    propagation_type="loss",
    propagation_norm="L1",
    propagation_side="left",
    detach_weights=False,
    frozen=True,
):
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    table = model.get_input_embeddings().weight
    table = table.detach() if frozen else table
    embeds = F.embedding(input_ids, table)
    with torch.no_grad():
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits
    tokens_further = torch.cat((input_ids[:, :1], logits.argmax(-1)[:, :-1]), dim=-1)
    ids_further = torch.where(labels == -100, input_ids, tokens_further)
    mixed = (1 - lam) * embeds + lam * F.embedding(ids_further, table)
    logits_further = model(inputs_embeds=mixed, attention_mask=attention_mask).logits.float()
    targets = labels[:, 1:].clone()
    loss_mask = targets != -100
    targets[~loss_mask] = 0
    logps = F.log_softmax(logits_further[:, :-1], -1).gather(2, targets[..., None])[..., 0] * loss_mask
    w = official_weights(
        logps.detach() if detach_weights else logps,
        loss_mask,
        gamma,
        propagation_type,
        propagation_norm,
        propagation_side,
    )
    return ((-logps * w).sum(-1) / loss_mask.sum(-1)).mean()


def _grads_of(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# --- card test 1: λ = 0, γ = 0 is per-sequence-mean SFT --------------------------------------------------------------
@pytest.mark.parametrize("frozen", [True, False])
def test_lambda0_gamma0_is_sequence_mean_sft(tmp_path, ift_rows, frozen):
    loss, grads, _, batch = _loss_and_grads(
        _config(tmp_path, ift_lambda=0.0, ift_min_lambda=0.0, ift_gamma=0.0, ift_frozen_embedding_copy=frozen),
        ift_rows,
    )
    model = tiny_model()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    logp = F.log_softmax(logits, -1).gather(2, targets.clamp(min=0)[..., None])[..., 0] * mask
    sft = (-logp.sum(1) / mask.sum(1)).mean()
    sft.backward()
    assert len(set(mask.sum(1).tolist())) > 1  # the per-sequence mean is not the token mean here
    assert loss.item() == pytest.approx(sft.item(), abs=1e-6)
    expected = _grads_of(model)
    if frozen:  # the embedding copy sends no gradient to the (untied) input table
        expected.pop("model.embed_tokens.weight")
        assert "model.embed_tokens.weight" not in grads
    assert relative_grad_diff(grads, expected) < 1e-5


# --- card test 2: relation-propagation weights by hand ---------------------------------------------------------------
def test_weight_hand_case():
    """One sequence, c = [1, 2, 3] (type 'loss': c_t = -lp_t / 3), γ = 0.5: suffix sums [2.75, 3.5, 3.0], times
    3 / 9.25 -> [0.8919, 1.1351, 0.9730], which sum to n_b = 3."""
    w = propagation_weights(-torch.tensor([[3.0, 6.0, 9.0]]), torch.ones(1, 3, dtype=torch.bool), gamma=0.5)
    assert torch.allclose(w, torch.tensor([[0.8919, 1.1351, 0.9730]]), atol=1e-4)
    assert w.sum().item() == pytest.approx(3.0, abs=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("norm", ["L1", "L2", "softmax", "log"])
@pytest.mark.parametrize("ptype", ["loss", "logps", "mask"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_weights_match_official_formula(side, norm, ptype, gamma):
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    logps = (-3 * torch.rand(mask.shape, generator=g) * mask).requires_grad_(True)
    got = propagation_weights(logps, mask, gamma, ptype, norm, side)
    logps2 = logps.detach().clone().requires_grad_(True)
    want = official_weights(logps2, mask, gamma, ptype, norm, side)
    assert torch.allclose(got * mask, want * mask, atol=1e-5, rtol=1e-5)
    if gamma == 0:  # the official shortcut: constant weights 1
        assert torch.equal(got, torch.ones_like(got)) and not got.requires_grad
        return
    assert torch.allclose((got * mask).sum(-1), mask.sum(-1).float(), atol=1e-5)
    if ptype == "mask":  # weights from the mask alone: nothing to differentiate
        assert not got.requires_grad
        return
    probe = torch.randn(mask.shape, generator=g) * mask
    (got * probe).sum().backward()
    (want * probe).sum().backward()
    assert torch.allclose(logps.grad, logps2.grad, atol=1e-5, rtol=1e-4)


# --- card tests 3, 4 and 6 on the trainer's real forwards ------------------------------------------------------------
def _capture_backbone_inputs(trainer):
    seen = []
    trainer._policy.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"].detach().clone()), with_kwargs=True
    )
    return seen


def test_mixed_embeddings_differ_only_at_response_positions(tmp_path, ift_rows):
    trainer = _trainer(_config(tmp_path, ift_lambda=0.5), ift_rows)
    seen = _capture_backbone_inputs(trainer)
    batch = first_batch(trainer)
    trainer.compute_loss(trainer.model, batch)
    gold, mixed = seen  # the no-grad guess forward, then the trained forward
    table = trainer.model.get_input_embeddings().weight.detach()
    assert torch.equal(gold, table[batch["input_ids"]])
    response = batch["labels"] != -100
    response[:, 0] = False
    changed = (mixed != gold).any(-1)
    assert torch.equal(mixed[~response], gold[~response])  # prompt and padding rows bit-identical
    assert changed.any() and not (changed & ~response).any()
    # where changed, the row is 0.5 E[gold] + 0.5 E[guess] with the guess the model's argmax one position earlier
    with torch.no_grad():
        logits = tiny_model()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    guess = torch.cat((batch["input_ids"][:, :1], logits.argmax(-1)[:, :-1]), 1)
    expected = 0.5 * table[batch["input_ids"]] + 0.5 * table[guess]
    assert torch.allclose(mixed[changed], expected[changed], atol=1e-6)


@pytest.mark.parametrize("lam", [0.2, 0.7, 1.0])
def test_guess_equal_to_gold_leaves_the_gold_embeddings(lam):
    """A 2-token toy: when the greedy guess is the gold token everywhere, e~ == E0[x] exactly, for any λ."""
    table = torch.tensor([[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]])
    input_ids = torch.tensor([[0, 1, 1, 0, 1], [1, 0, 0, 1, 1]])
    labels = input_ids.clone()
    labels[:, :2] = -100
    mask = labels[:, 1:] != -100
    guesses = input_ids[:, 1:][mask]  # the model predicts each gold token
    ids = temporal_residual_ids(input_ids, labels, mask, guesses)
    assert torch.equal(ids, input_ids)
    mixed = mix_embeddings(table[input_ids], table[ids], ids != input_ids, lam)
    assert torch.equal(mixed, table[input_ids])
    # and a wrong guess changes exactly that position
    wrong = guesses.clone()
    wrong[0] = 1 - wrong[0]
    ids = temporal_residual_ids(input_ids, labels, mask, wrong)
    assert (ids != input_ids).sum().item() == 1 and (ids != input_ids)[0, 2]


def test_embedding_copy_is_stop_gradient_and_follows_the_table(tmp_path, ift_rows):
    """Card test 6, as in the official code: the inputs go through a no-gradient copy of the input table that is
    re-synced after each optimizer step. Untied: the table never moves. Tied: it moves through the LM head, and the
    next step embeds with the moved table."""
    untied = tiny_model()
    table0 = untied.get_input_embeddings().weight.detach().clone()
    trainer = _trainer(_config(tmp_path, max_steps=1, weight_decay=0.1), ift_rows, untied)
    seen = _capture_backbone_inputs(trainer)
    trainer.train()
    assert torch.equal(untied.get_input_embeddings().weight, table0)
    assert not any(t.requires_grad for t in seen)

    tied = tiny_model(tie_word_embeddings=True)
    trainer = _trainer(_config(tmp_path, max_steps=2), ift_rows, tied)
    seen = _capture_backbone_inputs(trainer)
    trainer.train()
    table = tied.get_input_embeddings().weight.detach()
    assert not torch.equal(table, tiny_model(tie_word_embeddings=True).get_input_embeddings().weight)
    batch = first_batch(trainer)
    seen.clear()
    with torch.no_grad():
        trainer.compute_loss(trainer.model, batch)
    assert torch.equal(seen[0], table[batch["input_ids"]])


# --- card test 5: chunk-wise argmax ----------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunked_argmax_matches_full_logits_with_ties(chunk):
    model = tiny_model()
    tok = tiny_tokenizer()
    ids = torch.tensor([tok("Tom has 3 apples and buys 4 more. 3 + 4 = 7.")["input_ids"]])
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state[0]
    head = LMHead.of(model)
    full = model.lm_head(hidden)
    got, logps = greedy_tokens(hidden, head, labels=ids[0], chunk_size=chunk)
    assert torch.equal(got, full.argmax(-1))
    assert torch.allclose(logps, F.log_softmax(full, -1).gather(1, ids[0][:, None])[:, 0], atol=1e-5)
    # exact ties: tokens 3 and 7 share a row and a large bias, so both are the maximum; the lowest id wins
    weight = head.weight.detach().clone()
    weight[7] = weight[3]
    bias = torch.zeros(weight.shape[0])
    bias[[3, 7]] = 100.0
    tied_ids, _ = greedy_tokens(hidden, LMHead(weight, bias, 0.5, 30.0), chunk_size=chunk)
    assert (tied_ids == 3).all()


# --- the trainer against the naive official loss ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "lam,gamma,ptype,norm,side,detach,tied",
    [
        (0.2, 0.95, "loss", "L1", "left", False, False),  # the official defaults
        (0.2, 0.95, "loss", "L1", "left", False, True),
        (0.6, 1.0, "logps", "softmax", "left", True, False),
        (1.0, 0.5, "mask", "L2", "right", False, False),
        (0.3, 0.9, "loss", "log", "right", False, True),
    ],
)
def test_trainer_matches_naive_official_loss(tmp_path, ift_rows, lam, gamma, ptype, norm, side, detach, tied):
    cfg = _config(
        tmp_path,
        ift_lambda=lam,
        ift_gamma=gamma,
        ift_propagation_type=ptype,
        ift_propagation_norm=norm,
        ift_propagation_side=side,
        ift_detach_weights=detach,
        ift_argmax_chunk_rows=5,
    )
    loss, grads, trainer, batch = _loss_and_grads(cfg, ift_rows, tiny_model(tie_word_embeddings=tied))
    assert trainer._metrics["train"]["ift/intuition_match"][-1] < 1.0  # some guesses differ: the mixing matters
    model = tiny_model(tie_word_embeddings=tied)
    naive = naive_ift_loss(model, batch, lam, gamma, ptype, norm, side, detach)
    naive.backward()
    assert loss.item() == pytest.approx(naive.item(), abs=1e-5)
    assert max_grad_diff(grads, _grads_of(model)) < 1e-5


# --- the trained forward: the backbone's hidden states through the head in row chunks, never whole-batch logits ---
LARGE_VOCAB, CHUNK_ROWS = 4096, 3


@pytest.fixture
def chunked_head(monkeypatch):
    """The trained loss's head projection in chunks of CHUNK_ROWS tokens (through its public `chunk_size`)."""
    monkeypatch.setattr(ift_trainer, "fused_token_loss", partial(fused_token_loss, chunk_size=CHUNK_ROWS))


class _FloatAllocations(TorchDispatchMode):
    """The element count of every floating-point tensor an op returns, forward and backward."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.sizes.append(t.numel())
        return out


@pytest.mark.parametrize("tied", [False, True])
def test_chunked_head_matches_full_logits(tmp_path, ift_rows, chunked_head, tied):
    """With a vocabulary much larger than a chunk and many chunks, the loss and every gradient equal the naive
    official loss on full logits and cross-entropy (what TRL's fused head computed before)."""
    cfg = _config(tmp_path, ift_lambda=0.4, ift_gamma=0.9, ift_argmax_chunk_rows=CHUNK_ROWS)
    loss, grads, _, batch = _loss_and_grads(cfg, ift_rows, tiny_model(LARGE_VOCAB, tie_word_embeddings=tied))
    assert (batch["labels"][:, 1:] != -100).sum() > 4 * CHUNK_ROWS
    model = tiny_model(LARGE_VOCAB, tie_word_embeddings=tied)
    naive = naive_ift_loss(model, batch, 0.4, 0.9)
    naive.backward()
    assert loss.item() == pytest.approx(naive.item(), abs=1e-5)
    assert max_grad_diff(grads, _grads_of(model)) < 1e-5


def test_no_logits_sized_tensor_for_the_batch(tmp_path, ift_rows, chunked_head):
    """No tensor of a training step (guess forward, trained forward, backward) holds as many floats as the logits of
    the batch's scored tokens, N x V: the head only ever sees CHUNK_ROWS tokens at a time. The detector does see
    such a tensor when the model computes its full logits."""
    trainer = _trainer(
        _config(tmp_path, per_device_train_batch_size=8, ift_argmax_chunk_rows=CHUNK_ROWS),
        ift_rows,
        tiny_model(LARGE_VOCAB),
    )
    batch = first_batch(trainer)
    scored = (batch["labels"][:, 1:] != -100).sum().item()
    logits_size = scored * LARGE_VOCAB
    hidden_size = trainer.model.config.hidden_size
    assert scored > 2 * hidden_size  # so the head's weight and its gradient (V x H) are smaller than the logits
    with _FloatAllocations() as seen:
        trainer.compute_loss(trainer.model, batch).backward()
    assert max(seen.sizes) < logits_size
    assert CHUNK_ROWS * LARGE_VOCAB in seen.sizes  # the chunks were projected
    assert trainer.model.lm_head.weight.grad is not None  # the step did train the head
    with _FloatAllocations() as control, torch.no_grad():
        trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert max(control.sizes) >= logits_size


def test_mixing_and_weights_change_the_loss(tmp_path, ift_rows):
    """The limiting case is not the only case: λ and γ each move the loss away from plain per-sequence SFT."""

    def loss_with(**kw):
        return _loss_and_grads(_config(tmp_path, **kw), ift_rows)[0].item()

    sft = loss_with(ift_lambda=0.0, ift_min_lambda=0.0, ift_gamma=0.0)
    assert loss_with(ift_lambda=0.5, ift_gamma=0.0) != pytest.approx(sft, abs=1e-5)
    assert loss_with(ift_lambda=0.0, ift_min_lambda=0.0, ift_gamma=0.95) != pytest.approx(sft, abs=1e-5)


# --- λ schedule, metrics, config, resume -----------------------------------------------------------------------------
def test_linear_lambda_schedule_and_metrics(tmp_path, ift_rows):
    cfg = _config(
        tmp_path,
        max_steps=4,
        per_device_train_batch_size=2,
        ift_lambda_schedule="linear",
        ift_min_lambda=0.0,
        ift_lambda=0.4,
        warmup_steps=2,
    )
    trainer = _trainer(cfg, ift_rows)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert [e["ift/lambda"] for e in logs] == pytest.approx([0.0, 0.2, 0.4, 0.4])
    for key in (
        "ift/loss_sft",
        "ift/loss_further",
        "ift/weight_max",
        "ift/intuition_match",
        "entropy",
        "mean_token_accuracy",
    ):
        assert all(key in e for e in logs), key
    assert logs[0]["ift/loss_sft"] == pytest.approx(logs[0]["ift/loss_further"], abs=1e-6)  # λ = 0: same input
    assert all(e["ift/weight_max"] >= 1.0 for e in logs)  # weights average 1 per answer


@pytest.mark.parametrize(
    "field,value",
    [
        ("ift_lambda", 1.5),
        ("ift_min_lambda", -0.1),
        ("ift_gamma", 1.2),
        ("ift_lambda_schedule", "cosine"),
        ("ift_propagation_type", "reward"),
        ("ift_propagation_norm", "L3"),
        ("ift_propagation_side", "both"),
        ("ift_argmax_chunk_rows", 0),
        ("loss_type", "dft"),
        ("packing", True),
    ],
)
def test_config_validation(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_resume_continues_the_schedule(tmp_path, ift_rows):
    """IFT keeps no state beyond the model: E0 is the current table and λ a function of global_step, so a resumed
    run matches an unbroken one (tied embeddings, so the table itself moves)."""

    def make(out):
        cfg = _config(
            out,
            max_steps=4,
            per_device_train_batch_size=2,
            save_strategy="steps",
            save_steps=2,
            learning_rate=5e-2,
            ift_lambda_schedule="linear",
            ift_min_lambda=0.1,
            ift_lambda=0.5,
            warmup_steps=3,
        )
        return _trainer(cfg, ift_rows, tiny_model(tie_word_embeddings=True))

    full, _, resumed = interrupted_and_resumed(make, tmp_path, 2)

    for key in ("loss", "ift/lambda"):
        for step in (3, 4):
            assert logged(resumed, key)[step] == pytest.approx(logged(full, key)[step], rel=1e-5)
    for (name, p_full), (_, p_res) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.allclose(p_full, p_res, atol=1e-6), name


def test_peft_trains_only_the_adapter(tmp_path, ift_rows):
    from peft import LoraConfig

    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = _trainer(_config(tmp_path), ift_rows, peft_config=peft_config)
    batch = first_batch(trainer)
    trainer.compute_loss(trainer.model, batch).backward()
    grads = [n for n, p in trainer.model.named_parameters() if p.grad is not None]
    assert grads and all("lora_" in n for n in grads)


def test_cli_train_on_builtin_arith_chains(tiny_model_dir, tmp_path):
    out = tmp_path / "ift"
    code = main(
        train_argv(
            "ift",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            "builtin:arith_chains",
            *tiny_run_flags(2, 4, logging_steps=1),
        )
    )
    assert code == 0
    assert (out / "model.safetensors").exists()


def test_arith_chains_are_right_and_deterministic():
    ds = build_chains(n_train=300, n_test=60, seed=2)
    assert ds["train"].to_list() == build_chains(n_train=300, n_test=60, seed=2)["train"].to_list()
    train = {r["prompt"][0]["content"] for r in ds["train"]}
    assert not train & {r["prompt"][0]["content"] for r in ds["test"]}
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    for row in ds["train"].to_list() + ds["test"].to_list():
        question, text = row["prompt"][0]["content"], row["completion"][0]["content"]
        lines = text.split("\n")
        assert len(lines) == row["num_steps"] + 1 and 3 <= row["num_steps"] <= 5
        value = int(re.match(r"Start with (\d+)\.", question).group(1))
        for line in lines[:-1]:
            a, op, b, c = re.fullmatch(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", line).groups()
            assert int(a) == value and ops[op](int(a), int(b)) == int(c) and 0 <= int(c) <= 999
            assert op != "/" or int(a) % int(b) == 0
            value = int(c)
        assert is_correct(text, row["answer"]) and int(row["answer"]) == value
    assert {r["num_steps"] for r in ds["train"]} == {3, 4, 5}


# --- gradient accumulation and 2 processes ---------------------------------------------------------------------------
DDP_SCRIPT = Path(__file__).parents[1] / "distributed" / "ift_ddp.py"


@pytest.mark.slow
def test_same_update_on_one_process_accumulation_and_two_processes(tmp_path):
    """The per-sequence mean counts sequences over the whole global batch: one step gives the same update on one
    process, with gradient accumulation and on 2 processes."""
    check_same_step_in_every_layout(DDP_SCRIPT, tmp_path)
