"""Q-Tuning: the card's tests (shared/papers/qtuning.md, tests 1-6) with expected values computed independently (by
hand, and from a second, full-logits implementation written here with explicit loops), the loss's normalisation
under gradient accumulation, the config's refusals, and a 2-step CLI run on smollm2-135m."""

import copy
import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.cli import main
from trl_ext.testing import first_batch, one_step_config, padded_batch, tiny_model, tiny_tokenizer, tiny_trainer
from trl_ext_plugins.qtuning import (
    QTuningConfig,
    QTuningTrainer,
    bisect_quadrants,
    prune_tokens,
    select,
    smoothed_scores,
    token_scores,
    top_up,
)


def _config(tmp_path, cls=QTuningConfig, **kw):
    return one_step_config(
        cls, tmp_path, **{"per_device_train_batch_size": 8, "gradient_checkpointing": False, "use_cpu": True, **kw}
    )


def _trainer(tmp_path, rows, model=None, **kw):
    return tiny_trainer(QTuningTrainer, _config(tmp_path, **kw), rows, model)


def _rows(n=8):
    """Prompt-completion rows of different lengths and difficulty (some completions are nonsense)."""
    rows = []
    for i in range(n):
        answer = f"{i} + {i + 2} = {2 * i + 2}. The answer is {2 * i + 2}."
        if i % 3 == 2:
            answer = "zq " * (3 + i) + "??"
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}],
                "completion": [{"role": "assistant", "content": answer}],
            }
        )
    return rows


# --- the second implementation: full logits, explicit loops ----------------------------------------------------------
def reference_token_stats(model, batch):
    """Per shifted position, from the full (B, T, V) logits in float64: NLL at label positions (0 elsewhere),
    entropy, the label mask and the shifted attention mask."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1) * mask
    ent = -(logp.exp() * logp).sum(-1)
    return nll, ent, mask, batch["attention_mask"][:, 1:].bool()


def reference_ppl_ent(nll, ent, mask, where):
    ppl, e = [], []
    for b in range(nll.shape[0]):
        labels = [nll[b, t].item() for t in range(nll.shape[1]) if mask[b, t]]
        ents = [ent[b, t].item() for t in range(nll.shape[1]) if where[b, t]]
        ppl.append(math.exp(sum(labels) / max(len(labels), 1)))
        e.append(sum(ents) / max(len(ents), 1))
    return ppl, e


def reference_loss(model, batch, keep, denominator, nll_override=None):
    """sum of the NLL over `keep` / denominator, from the full logits, with gradient (model in train mode)."""
    model.train()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    labels = batch["labels"][:, 1:]
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    if nll_override is not None:
        nll = torch.where(nll_override[0], nll_override[1], nll)
    return (nll * keep).sum() / denominator


def _fresh_copy(model):
    """A new tiny model with `model`'s weights (a deepcopy of a trainer's model would share its patched forward)."""
    fresh = tiny_model()
    fresh.load_state_dict(model.state_dict())
    return fresh


# --- card test 1: smoothing ------------------------------------------------------------------------------------------
def test_smoothing_by_hand():
    p = torch.tensor([1.0, 2.0, 10.0, 2.0, 1.0])
    ones = torch.ones(5)
    assert smoothed_scores(p, ones, 0.5).tolist() == [1.5, 6.5, 7.0, 6.5, 1.5]
    assert smoothed_scores(p, ones, 0.0).tolist() == p.tolist()


def test_prompt_neighbour_counts_one_and_pad_neighbour_zero():
    # positions: prompt (attended, not a label), two labels with P = 4 and 2, then a pad
    nll = torch.tensor([[0.0, math.log(4.0), math.log(2.0), 0.0]])
    attention = torch.tensor([[True, True, True, False]])
    s = token_scores(nll, attention, 0.5)[0].tolist()
    # s_1 = 0.5 * 4 + 0.5 * (1 + 2) = 3.5 ; s_2 = 0.5 * 2 + 0.5 * (4 + 0) = 3.0 ; the pad itself scores 0
    assert s[1] == pytest.approx(3.5) and s[2] == pytest.approx(3.0) and s[3] == 0.0


# --- card test 2: the limit r_s = r_tok = 1 is SFT ----------------------------------------------------------------
@pytest.mark.parametrize("denominator", ["label", "official"])
def test_full_ratios_are_plain_sft(tmp_path, denominator):
    rows = _rows(4)
    model = tiny_model()
    qt = _trainer(
        tmp_path / "qt",
        rows,
        model=copy.deepcopy(model),
        qt_sample_ratio=1.0,
        qt_token_ratio=1.0,
        qt_denominator=denominator,
        per_device_train_batch_size=4,
    )
    sft = SFTTrainer(
        model=model,
        args=_config(tmp_path / "sft", cls=SFTConfig, per_device_train_batch_size=4),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    batch = first_batch(sft)
    label_tokens = int((batch["labels"][:, 1:] != -100).sum())
    attended = int(batch["attention_mask"][:, 1:].sum())
    assert attended > label_tokens  # the prompts make the two denominators differ
    scale = 1.0 if denominator == "label" else label_tokens / attended
    loss_sft = sft.training_step(sft.model, dict(batch), torch.tensor(label_tokens))
    loss_qt = qt.training_step(qt.model, dict(batch), torch.tensor(label_tokens))
    assert torch.allclose(loss_qt, loss_sft * scale, rtol=1e-5, atol=1e-7)
    assert bool(qt.last_selection.keep_samples.all()) and not bool(qt.last_selection.pruned.any())
    grads_sft = dict(sft.model.named_parameters())
    for name, p in qt.model.named_parameters():
        assert torch.allclose(p.grad, grads_sft[name].grad * scale, rtol=1e-4, atol=1e-6), name


# --- card test 3: quadrants ------------------------------------------------------------------------------------------
PPL = np.array([9, 8, 7, 6, 1, 1.1, 1.2, 1.3])
ENT = np.array([0.1, 0.2, 0.3, 0.4, 5, 4, 3, 2])


def test_quadrants_by_hand():
    # Hand-run of step 2: a = (0 + 0.49) / 2 = 0.245. Sorted PPL [1, 1.1, 1.2, 1.3, 6, 7, 8, 9]:
    # q(0.755) at rank 5.285 = 7.285 -> PPL > 7.285: {0, 1}; q(0.245) at rank 1.715 = 1.1715 -> PPL <= : {4, 5}.
    # Sorted Ent [0.1, 0.2, 0.3, 0.4, 2, 3, 4, 5]: q(0.245) = 0.2715 -> Ent <= : {0, 1}; q(0.755) = 3.285 -> {4, 5}.
    # Q2 = {0, 1}, Q4 = {4, 5}: keep = 4/8 = r_s, so the first iteration stops. Step 3: K = 4 reached, no top-up.
    a, q2, q4 = bisect_quadrants(PPL, ENT, 0.5)
    assert a == pytest.approx(0.245)
    assert np.flatnonzero(q2).tolist() == [0, 1] and np.flatnonzero(q4).tolist() == [4, 5]
    q2, q4, added = top_up(PPL, ENT, q2, q4, 0.5)
    assert not added.any() and int((q2 | q4).sum()) == 4 and q2[0] and q4[4]


def test_quadrants_through_select():
    """The same plane built from token statistics: one label token per sample with NLL log(PPL), entropy Ent."""
    nll = torch.tensor(np.log(PPL), dtype=torch.float32)[:, None].repeat(1, 2)
    nll[:, 1] = 0.0  # second position: not a label
    ent = torch.tensor(ENT, dtype=torch.float32)[:, None].repeat(1, 2)
    label = torch.tensor([[True, False]] * 8)
    s = select(nll, ent, label, torch.ones(8, 2, dtype=torch.bool), sample_ratio=0.5, token_ratio=1.0)
    assert s.alpha == pytest.approx(0.245)
    assert s.q2.nonzero().flatten().tolist() == [0, 1] and s.q4.nonzero().flatten().tolist() == [4, 5]
    assert int(s.keep_samples.sum()) == 4
    assert torch.allclose(s.ppl, torch.tensor(PPL, dtype=torch.float32), rtol=1e-6)


def test_top_up_by_hand():
    """PPL and Ent rise together: Q2 and Q4 stay empty at every a, so the bisection raises a 10 times
    (a_n = 0.49 (1 - 2^-n)) and the top-up decides: normalised p^ = e^ = [1, 2/3, 1/3, 0], every score
    max(p^ - e^, e^ - p^) = 0, the earlier samples win the tie, and p^ - e^ = 0 >= e^ - p^ makes them Q2-like."""
    ppl = np.array([4.0, 3.0, 2.0, 1.0])
    a, q2, q4 = bisect_quadrants(ppl, ppl.copy(), 0.5)
    assert a == pytest.approx(0.49 * (1 - 2**-10)) and not q2.any() and not q4.any()
    q2, q4, added = top_up(ppl, ppl.copy(), q2, q4, 0.5)
    assert np.flatnonzero(added).tolist() == [0, 1]
    assert np.flatnonzero(q2).tolist() == [0, 1] and not q4.any()
    # Opposite directions: sample 3 (lowest PPL, highest Ent) is Q4-like; K = round(0.25 * 4) = 1
    ent = np.array([1.0, 1.5, 1.2, 9.0])
    ppl = np.array([2.0, 2.1, 2.05, 1.0])
    q2, q4, added = top_up(ppl, ent, np.zeros(4, bool), np.zeros(4, bool), 0.25)
    assert np.flatnonzero(added).tolist() == [3] and q4[3] and not q2.any()


# --- card test 4: PPL and Ent from the fused head equal the full-logits values ------------------------------------
@pytest.mark.parametrize("positions", ["completion", "all"])
def test_sample_stats_match_full_logits(tmp_path, positions):
    trainer = _trainer(tmp_path, _rows(), qt_entropy_positions=positions)
    batch = first_batch(trainer)
    assert int(batch["attention_mask"].sum()) < batch["attention_mask"].numel()  # padded rows
    nll, ent, mask, attention = reference_token_stats(trainer.model, batch)
    ppl_ref, ent_ref = reference_ppl_ent(nll, ent, mask, mask if positions == "completion" else attention)
    s = trainer.inspect(batch)
    assert s.ppl.tolist() == pytest.approx(ppl_ref, rel=1e-5)
    assert s.ent.tolist() == pytest.approx(ent_ref, rel=1e-5, abs=1e-6)
    if positions == "all":  # the prompt changes the entropy mean
        _, ent_completion = reference_ppl_ent(nll, ent, mask, mask)
        assert max(abs(x - y) for x, y in zip(ent_ref, ent_completion, strict=True)) > 1e-5


# --- card test 5: the token budget in batch mode --------------------------------------------------------------------
def _dominated_pair(trainer):
    """Two 11-token rows (labels on every token: no prompt, 20 shifted positions) where row 0 has both the higher
    PPL and the higher Ent under the tiny model, found among seeded random rows."""
    vocab = trainer.model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(4, vocab, (11,), generator=gen).tolist() for _ in range(8)]
    batch = padded_batch(rows, tiny_tokenizer().pad_token_id)
    nll, ent, mask, _ = reference_token_stats(trainer.model, batch)
    ppl, e = reference_ppl_ent(nll, ent, mask, mask)
    for i in range(8):
        for j in range(8):
            if ppl[i] > ppl[j] and e[i] > e[j]:
                return padded_batch([rows[i], rows[j]], tiny_tokenizer().pad_token_id)
    raise AssertionError("no dominated pair among the seeded rows")


def test_batch_budget_removes_the_ten_highest_scores(tmp_path):
    trainer = _trainer(tmp_path, _rows(), qt_sample_ratio=1.0, qt_token_ratio=0.5, per_device_train_batch_size=2)
    batch = _dominated_pair(trainer)
    nll, ent, mask, attention = reference_token_stats(trainer.model, batch)
    assert int(mask.sum()) == 20 and int(attention.sum()) == 20
    # independent scores: s_t = 0.5 P_t + 0.5 (P_{t-1} + P_{t+1}), P = exp(NLL), 0 beyond the row
    scores = {}
    for b in range(2):
        p = [math.exp(nll[b, t].item()) for t in range(10)]
        for t in range(10):
            neighbours = (p[t - 1] if t > 0 else 0.0) + (p[t + 1] if t < 9 else 0.0)
            scores[(b, t)] = 0.5 * p[t] + 0.5 * neighbours
    expected = set(sorted(scores, key=scores.get, reverse=True)[:10])

    loss = trainer.compute_loss(trainer.model, dict(batch))
    s = trainer.last_selection
    assert s.topup.tolist() == [True, True] and s.q2.tolist() == [True, True]  # p^ - e^ = 0 for both
    # T_all = 20, keep_target = round(20 * 1 * 0.5) = 10, no sample dropped: exactly 10 tokens removed
    assert int(s.pruned.sum()) == 10
    assert {tuple(x) for x in s.pruned.nonzero().tolist()} == expected
    keep = mask & ~s.pruned
    assert s.denominator == 10.0
    ref = reference_loss(_fresh_copy(trainer.model), batch, keep, 10.0)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_batch_budget_by_hand_on_tensors():
    """The same case on given statistics: sample 0 has higher NLL and higher entropy at every token."""
    gen = torch.Generator().manual_seed(3)
    nll = torch.rand(2, 10, generator=gen) + torch.tensor([[1.0], [0.0]])
    ent = torch.tensor([[2.0] * 10, [1.0] * 10])
    ones = torch.ones(2, 10, dtype=torch.bool)
    s = select(nll, ent, ones, ones, sample_ratio=1.0, token_ratio=0.5)
    assert s.q2.tolist() == [True, True] and int(s.pruned.sum()) == 10
    p = nll.exp()
    left = torch.cat([torch.zeros(2, 1), p[:, :-1]], 1)
    right = torch.cat([p[:, 1:], torch.zeros(2, 1)], 1)
    by_hand = 0.5 * p + 0.5 * (left + right)
    threshold = by_hand.flatten().sort(descending=True).values[9]
    assert torch.equal(s.pruned, by_hand >= threshold)
    # qt_drop="low" removes the 10 lowest instead; per_sample keeps ceil(0.5 * 10) = 5 lowest per Q2 sample
    low = select(nll, ent, ones, ones, sample_ratio=1.0, token_ratio=0.5, drop="low")
    assert torch.equal(low.pruned, by_hand < threshold)
    per = select(nll, ent, ones, ones, sample_ratio=1.0, token_ratio=0.5, mode="per_sample")
    for b in range(2):
        top5 = by_hand[b].sort(descending=True).values[4]
        assert torch.equal(per.pruned[b], by_hand[b] >= top5)


def test_budget_counts_dropped_samples_and_prompt():
    """T_all counts prompt positions; the tokens of dropped samples count towards the removal."""
    # 4 samples x 6 positions: 2 prompt + 4 label positions each; Q2 = {0} by construction, Q4 = {3}
    label = torch.tensor([[False, False, True, True, True, True]] * 4)
    attention = torch.ones(4, 6, dtype=torch.bool)
    scores = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    keep = torch.tensor([True, False, False, True])
    prunable = torch.tensor([True, False, False, False])
    # T_all = 24; keep_target = round(24 * 0.5 * 0.5) = 6; drop = 24 - 6 - 12 (two dropped samples) = 6 -> capped at
    # the 4 label tokens of sample 0
    pruned = prune_tokens(scores, label, attention, keep, prunable, 0.5, 0.5)
    assert pruned.nonzero().tolist() == [[0, 2], [0, 3], [0, 4], [0, 5]]
    # keep_target = round(24 * 0.5 * 0.75) = 9; drop = 24 - 9 - 12 = 3: the 3 highest of sample 0
    pruned = prune_tokens(scores, label, attention, keep, prunable, 0.5, 0.75)
    assert pruned.nonzero().tolist() == [[0, 3], [0, 4], [0, 5]]


# --- card test 6: pruned tokens are out of numerator and denominator -----------------------------------------------
def test_pruned_tokens_do_not_change_the_loss(tmp_path):
    trainer = _trainer(tmp_path, _rows(), qt_sample_ratio=0.5, qt_token_ratio=0.5)
    batch = first_batch(trainer)
    model = trainer.model
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    s = trainer.last_selection
    assert s.pruned.any() and not s.keep_samples.all()
    mask = batch["labels"][:, 1:] != -100
    attention = batch["attention_mask"][:, 1:].bool()
    d = float(attention[s.keep_samples].sum() - s.pruned.sum())  # official: attended of the kept minus pruned
    assert s.denominator == d
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    kept = mask & s.keep_samples[:, None] & ~s.pruned
    for value in (0.0, 1e3):  # the pruned tokens' NLL replaced: the loss and its gradient do not move
        ref_model = _fresh_copy(model)
        ref = reference_loss(ref_model, batch, kept | s.pruned, d, (s.pruned, torch.full_like(s.scores, value)))
        if value == 0.0:
            assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
        ref.backward()
        for n, p in ref_model.named_parameters():
            assert torch.allclose(p.grad, grads[n], rtol=1e-4, atol=1e-7), (value, n)
    # and the gradient is that of the kept tokens alone
    ref_model = _fresh_copy(model)
    reference_loss(ref_model, batch, kept, d).backward()
    for n, p in ref_model.named_parameters():
        assert torch.allclose(p.grad, grads[n], rtol=1e-4, atol=1e-7), n


# --- normalisation: per micro-batch mean / accumulation steps -----------------------------------------------------
def test_loss_is_divided_by_accumulation_steps_and_ignores_num_items(tmp_path):
    trainer = _trainer(tmp_path, _rows(), gradient_accumulation_steps=4)
    batch = first_batch(trainer)
    trainer.model.train()
    a = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=torch.tensor(1000))
    b = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)
    assert a.item() == pytest.approx(b.item())
    trainer.current_gradient_accumulation_steps = 1
    c = trainer.compute_loss(trainer.model, dict(batch))
    assert a.item() == pytest.approx(c.item() / 4)
    assert QTuningTrainer.loss_is_scaled_for_ga is True  # the Trainer divides no further
    trainer.model.eval()  # evaluation: the kept-token mean, undivided
    d = trainer.compute_loss(trainer.model, dict(batch))
    assert d.item() == pytest.approx(c.item(), rel=1e-5)


def test_training_logs_the_card_metrics(tmp_path):
    trainer = _trainer(tmp_path, _rows(), max_steps=2, per_device_train_batch_size=4)
    trainer.train()
    logged = [e for e in trainer.state.log_history if "qt/q2_frac" in e]
    assert len(logged) == 2
    for name in ("qt/q4_frac", "qt/topup_count", "qt/kept_token_frac", "qt/ppl_mean", "qt/ent_mean", "qt/alpha"):
        assert name in logged[0]
    # K = round(0.25 * 4) = 1 sample of 4 at least
    assert all(e["qt/q2_frac"] + e["qt/q4_frac"] >= 0.25 for e in logged)
    assert all(0.0 < e["qt/kept_token_frac"] < 1.0 for e in logged)


# --- refusals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field,value",
    [
        ("qt_sample_ratio", 0.0),
        ("qt_sample_ratio", 1.5),
        ("qt_token_ratio", 0.0),
        ("qt_lambda", -0.1),
        ("qt_budget_mode", "global"),
        ("qt_drop", "middle"),
        ("qt_entropy_positions", "prompt"),
        ("qt_denominator", "tokens"),
        ("qt_bisect_iters", 0),
        ("qt_tol", 0.0),
        ("packing", True),
        ("loss_type", "dft"),
    ],
)
def test_config_refuses(tmp_path, field, value):
    with pytest.raises(ValueError):
        _config(tmp_path, **{field: value})


def test_config_defaults_follow_the_card(tmp_path):
    c = _config(tmp_path)
    assert (c.qt_sample_ratio, c.qt_token_ratio, c.qt_lambda) == (0.25, 0.7, 0.5)
    assert (c.qt_budget_mode, c.qt_drop, c.qt_entropy_positions, c.qt_denominator) == (
        "batch",
        "high",
        "completion",
        "official",
    )
    assert (c.qt_bisect_iters, c.qt_tol) == (10, 0.01)


# --- CLI -----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_train_qtuning_two_steps_on_smollm2(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "qtuning", "--model_name_or_path", "smollm2-135m", "--dataset_name", "builtin:arith"]
    argv += ["--max_steps", "2", "--per_device_train_batch_size", "4", "--max_length", "128"]
    argv += ["--output_dir", str(out), "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1"]
    assert main(argv) == 0
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2509.23873" in card and "method: qtuning" in card


def test_fused_stats_use_no_full_logits(tmp_path, monkeypatch):
    """The loss never calls the model's LM-head module (which would build (B, T, V) logits): only the backbone."""
    trainer = _trainer(tmp_path, _rows(), per_device_train_batch_size=4)
    batch = first_batch(trainer)
    calls = []
    head = trainer.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda *a: calls.append(1))
    try:
        trainer.model.train()
        trainer.compute_loss(trainer.model, dict(batch)).backward()
    finally:
        handle.remove()
    assert calls == []
