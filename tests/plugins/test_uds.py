"""UDS: the card's tests (shared/papers/uds.md, tests 1-7) with expected values computed independently (by hand,
from full logits with torch.linalg.svdvals, from torch.fft), the checkpointed memory through the real CLI (same
memory and same next selections after a resume), refusals, and a 2-step CLI run."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.cli import main
from trl_ext.losses.token_loss import LMHead
from trl_ext.testing import first_batch, one_step_config, padded_batch, tiny_model, tiny_tokenizer, tiny_trainer
from trl_ext_plugins.uds import SketchMemory, UDSConfig, UDSScorer, UDSSFTTrainer, inter_scores, nuclear_norm
from trl_ext_plugins.uds.scoring import sketch_matrices, top_k
from trl_ext_plugins.uds.trainer import STATE_FILE, refuse_several_processes


def _config(tmp_path, cls=UDSConfig, **kw):
    return one_step_config(cls, tmp_path, **{"gradient_checkpointing": False, **kw})


def _trainer(tmp_path, rows, model=None, **kw):
    return tiny_trainer(UDSSFTTrainer, _config(tmp_path, **kw), rows, model)


# --- card test 1: nuclear norm -----------------------------------------------------------------------------------
def test_rank_one_nuclear_norm_by_hand():
    rows = torch.tensor([[3.0, 4.0]] * 4)
    assert nuclear_norm(rows).item() == pytest.approx(10.0, rel=1e-12)  # sqrt(4) * 5
    assert nuclear_norm(torch.zeros(0, 2)).item() == 0.0  # no rows: 0, not NaN


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("path", ["gram", "logits"])
def test_intra_score_equals_svd_of_full_logits(path, scale):
    gen = torch.Generator().manual_seed(1)
    vocab, d, n = 64, 16, 10
    w = torch.randn(vocab, d, generator=gen, dtype=torch.float64)
    h = torch.randn(2, n, d, generator=gen, dtype=torch.float64)
    rows = torch.ones(2, n, dtype=torch.bool)
    rows[1, 7:] = False  # sample 1 has 7 rows
    scorer = UDSScorer(t_max=16, vocab=vocab, r_time=4, r_vocab=8, seed=0, path=path)
    got = scorer.score(h, rows, LMHead(w, logit_scale=scale)).intra
    for i, count in enumerate([n, 7]):
        expected = torch.linalg.svdvals(scale * h[i, :count] @ w.T).sum()
        assert got[i].item() == pytest.approx(expected.item(), rel=1e-5)


# --- card test 2: sketch parity with the FFT form ----------------------------------------------------------------
def test_sketch_equals_fft_form():
    gen = torch.Generator().manual_seed(2)
    vocab, d, n, t_max, r1, r2 = 50, 12, 9, 16, 4, 8
    w = torch.randn(vocab, d, generator=gen, dtype=torch.float64)
    h = torch.randn(1, n, d, generator=gen, dtype=torch.float64)
    scorer = UDSScorer(t_max, vocab, r1, r2, seed=3, path="gram")
    z = scorer.score(h, torch.ones(1, n, dtype=torch.bool), LMHead(w)).sketches[0]
    _, _, d1, d2, idx1, idx2 = sketch_matrices(t_max, vocab, r1, r2, seed=3)
    # The official code's form: signs, real part of the FFT over vocab, columns idx2; then the same over time
    x = h[0] @ w.T  # [N, V]
    y = torch.fft.fft(x * d2, dim=1).real[:, idx2] * math.sqrt(vocab / r2)  # [N, r2]
    padded = torch.zeros(t_max, r2, dtype=torch.float64)
    padded[:n] = y
    expected = torch.fft.fft(padded * d1[:, None], dim=0).real[idx1] * math.sqrt(t_max / r1)  # [r1, r2]
    assert torch.allclose(z, expected.reshape(-1), atol=1e-4, rtol=0)


# --- card test 3: inter score --------------------------------------------------------------------------------------
def test_inter_score_by_hand():
    memory = torch.tensor([[3.0, 4.0], [6.0, 8.0]])
    assert inter_scores(torch.zeros(1, 2), memory).item() == pytest.approx(7.5)  # (5 + 10) / 2
    assert inter_scores(torch.zeros(3, 2), torch.zeros(0, 2)).tolist() == [0.0, 0.0, 0.0]


# --- card test 4: ring buffer ------------------------------------------------------------------------------------
def test_ring_buffer_wraps():
    a, b, c, d = ([float(i)] for i in (1, 2, 3, 4))
    memory = SketchMemory(3, 1)
    memory.push(torch.tensor([a, b]))
    memory.push(torch.tensor([c, d]))
    assert memory.slots.tolist() == [d, b, c]
    assert (memory.ptr, memory.count) == (1, 3)
    assert memory.filled().shape == (3, 1)
    partial = SketchMemory(3, 1)
    partial.push(torch.tensor([a]))
    assert partial.filled().tolist() == [a] and (partial.ptr, partial.count) == (1, 1)


def test_top_k_ties_go_to_the_earlier_row():
    assert top_k(torch.tensor([1.0, 3.0, 3.0, 0.0]), 2).tolist() == [1, 2]
    assert top_k(torch.tensor([1.0, 2.0]), 5).tolist() == [1, 0]  # K capped at b


# --- card test 5: K = b is plain SFT -----------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.5e-3, 10.0])
def test_k_equals_b_is_plain_sft(tmp_path, sft_rows, alpha):
    model = tiny_model()
    uds = _trainer(tmp_path / "uds", sft_rows, model=copy.deepcopy(model), uds_k=4, uds_alpha=alpha)
    sft = SFTTrainer(
        model=model,
        args=_config(tmp_path / "sft", cls=SFTConfig),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tiny_tokenizer(),
    )
    batch = first_batch(sft)
    assert batch["input_ids"].shape[0] == 4
    num_items = (batch["labels"][:, 1:] != -100).sum()
    loss_sft = sft.training_step(sft.model, dict(batch), num_items)
    loss_uds = uds.training_step(uds.model, dict(batch), num_items)
    assert torch.allclose(loss_uds, loss_sft, atol=1e-6)
    grads_sft = dict(sft.model.named_parameters())
    for name, p in uds.model.named_parameters():
        assert torch.allclose(p.grad, grads_sft[name].grad, atol=1e-6), name


# --- card test 6: alpha = 0 selects the largest nuclear norm -----------------------------------------------------
def test_alpha_zero_selects_the_largest_nuclear_norm(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_alpha=0.0, uds_memory_size=4)
    tok = tiny_tokenizer()
    repeated = [17] * 12  # every position sees the same token: identical hidden rows, rank-1 logits
    varied = tok("The answer is 42, because 6 times 7 is 42.")["input_ids"][:12]
    assert len(varied) == 12
    batch = padded_batch([repeated, varied, repeated], tok.pad_token_id)
    model = trainer.model
    model.eval()
    with torch.no_grad():  # independently: nuclear norm of each sample's full logits
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    norms = torch.stack([torch.linalg.svdvals(logits[i]).sum() for i in range(3)])
    assert torch.allclose(logits[0], logits[0, :1].expand(12, -1), atol=1e-6)  # rank 1
    assert norms[1] > norms[0]
    intra, inter, _ = trainer.uds_scores(batch)  # the Gram path, from hidden states only
    assert torch.allclose(intra, norms, rtol=1e-4) and inter.tolist() == [0.0, 0.0, 0.0]
    trainer.training_step(model, batch)
    assert trainer.uds_history[-1][2] == [1] == [int(norms.argmax())]
    assert trainer.uds_memory.count == 1


def test_inter_score_breaks_a_tie_towards_the_far_sample(tmp_path, sft_rows):
    """Two copies of one sample have equal intra scores; with a memory holding that sample's sketch, a
    different sample of lower intra score wins once alpha is large."""
    trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_alpha=1e6)
    tok = tiny_tokenizer()
    a = tok("What is 3 + 5? It is 8.")["input_ids"]
    b = tok("Name a colour of the sky.")["input_ids"]
    batch = padded_batch([a, a, b], tok.pad_token_id)
    intra, _, sketches = trainer.uds_scores(batch)
    trainer.uds_memory.push(sketches[:1])  # memory: sample a
    _, inter, _ = trainer.uds_scores(batch)
    assert inter[0].item() == pytest.approx(0.0, abs=1e-6) and inter[2] > 0
    trainer.training_step(trainer.model, batch)
    assert trainer.uds_history[-1][2] == [2]


# --- card test 7: the loss is the token mean of the selected rows ------------------------------------------------
def test_loss_is_normalised_by_the_selected_tokens(tmp_path, sft_rows, monkeypatch):
    import trl_ext_plugins.uds.trainer as uds_trainer

    tok = tiny_tokenizer()
    short = tok("What is 2 + 2? Four.")["input_ids"]
    long_text = tok(" ".join(["lots of padding and words"] * 8))["input_ids"]

    def expected_loss(model, row):
        # independently: the mean NLL over the row's labelled next tokens, from its full logits, unpadded
        ids = torch.tensor([row])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        targets = ids[0, 1:].clone()
        targets[: 2 - 1] = -100  # the first 2 tokens are prompt (labels -100), shifted by one
        return F.cross_entropy(logits, targets, ignore_index=-100).item()

    # the row UDS selects: its own token mean, whichever row that is
    for rows in ([short, short], [short, long_text]):
        trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_alpha=0.0)
        loss = trainer.training_step(trainer.model, padded_batch(rows, tok.pad_token_id, prompt=2))
        (chosen,) = trainer.uds_history[-1][2]
        assert loss.item() == pytest.approx(expected_loss(trainer.model, rows[chosen]), rel=1e-5)
    # the short row selected beside a long one (forced: which row wins is not what this checks): its padding in the
    # micro-batch does not dilute its mean
    for rows, short_index in (([short, long_text], 0), ([long_text, short], 1)):
        monkeypatch.setattr(uds_trainer, "top_k", lambda scores, k, i=short_index: torch.tensor([i]))
        trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_alpha=0.0)
        loss = trainer.training_step(trainer.model, padded_batch(rows, tok.pad_token_id, prompt=2))
        assert trainer.uds_history[-1][2] == [short_index]
        assert loss.item() == pytest.approx(expected_loss(trainer.model, short), rel=1e-5)


def test_gradient_accumulation_divides_the_selected_mean(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_alpha=0.0, gradient_accumulation_steps=4)
    trainer.current_gradient_accumulation_steps = 4
    tok = tiny_tokenizer()
    rows = [tok("One two three four.")["input_ids"], tok("Five six seven eight nine.")["input_ids"]]
    loss = trainer.training_step(trainer.model, padded_batch(rows, tok.pad_token_id))
    (chosen,) = trainer.uds_history[-1][2]
    ids = torch.tensor([rows[chosen]])
    with torch.no_grad():
        expected = trainer.model(input_ids=ids, labels=ids).loss / 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the Trainer's count of the whole batch's label tokens is for the unselected batch: passed on, it would divide
    # the selected row's summed loss by 2 rows' tokens; UDS hands the parent None, so the loss is the same
    counted = trainer.training_step(trainer.model, padded_batch(rows, tok.pad_token_id), num_items_in_batch=999)
    assert counted.item() == pytest.approx(expected.item(), rel=1e-5)


# --- random ablation, warm-up, refusals --------------------------------------------------------------------------
def test_warmup_and_random_ablation(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, uds_k=1, uds_start_step=1)
    batch = first_batch(trainer)
    trainer.training_step(trainer.model, batch)
    assert trainer.uds_history == [] and trainer.uds_memory.count == 0  # global_step 0 < start step: full batch
    ablation = _trainer(tmp_path, sft_rows, uds_k=2, uds_random=True)
    ablation.training_step(ablation.model, first_batch(ablation))
    (entry,) = ablation.uds_history
    assert len(entry[2]) == 2 and ablation.uds_memory.count == 0


def test_refusals(tmp_path, sft_rows):
    with pytest.raises(ValueError, match="packing"):
        _config(tmp_path, packing=True)
    with pytest.raises(ValueError, match="uds_k"):
        _config(tmp_path, uds_k=0)
    with pytest.raises(ValueError, match="loss_type"):
        _config(tmp_path, loss_type="dft")
    scorer = UDSScorer(8, 4, 2, 2, 0, path="gram")
    with pytest.raises(ValueError, match="bias"):
        scorer.resolve_path(LMHead(torch.ones(4, 2), bias=torch.zeros(4)))
    assert UDSScorer(8, 4, 2, 2, 0).resolve_path(LMHead(torch.ones(4, 2), softcap=30.0)) == "logits"
    with pytest.raises(ValueError, match="2 processes"):
        refuse_several_processes(2, per_process_selection=False)
    refuse_several_processes(2, per_process_selection=True)  # the official per-process selection, asked for
    refuse_several_processes(1, per_process_selection=False)
    # ZeRO-3 / FSDP2 are served (tests/test_distributed_uds.py), not refused before training
    assert UDSSFTTrainer.unsharded_only is None


def test_gram_cache_follows_the_head_key():
    """The cached Gram terms are reused while the key is the same, recomputed when it changes or is None (a trained
    head, or a copy gathered from shards: a new tensor each step, whose address may be reused)."""
    torch.manual_seed(0)
    hidden, rows = torch.randn(1, 5, 3), torch.ones(1, 5, dtype=torch.bool)
    w1, w2 = torch.randn(7, 3), torch.randn(7, 3)

    def fresh(w):  # independently: a new scorer, nothing cached
        return UDSScorer(8, 7, 2, 4, 0, path="gram").score(hidden, rows, LMHead(w)).intra

    scorer = UDSScorer(8, 7, 2, 4, 0, path="gram")
    assert torch.allclose(scorer.score(hidden, rows, LMHead(w1), head_key=("head", 0)).intra, fresh(w1))
    stale = scorer.score(hidden, rows, LMHead(w2), head_key=("head", 0)).intra  # same key: the cache is read
    assert torch.allclose(stale, fresh(w1))
    assert torch.allclose(scorer.score(hidden, rows, LMHead(w2), head_key=("head", 1)).intra, fresh(w2))
    assert torch.allclose(scorer.score(hidden, rows, LMHead(w1), head_key=None).intra, fresh(w1))
    assert torch.allclose(scorer.score(hidden, rows, LMHead(w2), head_key=None).intra, fresh(w2))


def test_head_cache_key_is_the_frozen_head_parameter(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows)
    head = trainer.model.get_output_embeddings()
    assert trainer.head_cache_key() is None  # a trained head: recomputed at every scoring pass
    head.weight.requires_grad_(False)
    key = trainer.head_cache_key()
    assert key is not None and trainer.head_cache_key() == key  # stable while nothing writes the head
    with torch.no_grad():
        head.weight.mul_(2.0)
    assert trainer.head_cache_key() != key  # an in-place write bumps the version counter
    assert trainer.head_rows() == head.weight.shape[0]


# --- checkpoints: the memory through the real CLI ----------------------------------------------------------------
def _cli(model_dir, data, out, *extra):
    return main(
        [
            "train",
            "uds",
            "--model_name_or_path",
            model_dir,
            "--dataset_name",
            str(data),
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "4",
            "--uds_k",
            "1",
            "--uds_memory_size",
            "3",
            "--uds_alpha",
            "0.5",
            "--logging_steps",
            "1",
            "--report_to",
            "none",
            "--gradient_checkpointing",
            "false",
            *extra,
        ]
    )


def test_cli_resume_restores_memory_and_next_selection(tiny_model_dir, tmp_path, sft_rows):
    import shutil

    data = tmp_path / "train.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    steps = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2"]
    assert _cli(tiny_model_dir, data, full, *steps) == 0
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    assert _cli(tiny_model_dir, data, resumed, *steps, "--resume_from_checkpoint", "true") == 0
    state_file = STATE_FILE.format(rank=0)
    at_2 = torch.load(full / "checkpoint-2" / state_file, weights_only=True)
    a = torch.load(full / "checkpoint-4" / state_file, weights_only=True)
    b = torch.load(resumed / "checkpoint-4" / state_file, weights_only=True)
    assert [h[0] for h in at_2["history"]] == [0, 1] and at_2["memory"]["count"] == 2
    assert [h[0] for h in a["history"]] == [0, 1, 2, 3]
    assert b["history"] == a["history"]  # the steps before the save restored, the next selections the same
    assert (a["memory"]["ptr"], a["memory"]["count"]) == (b["memory"]["ptr"], b["memory"]["count"]) == (1, 3)
    assert torch.allclose(a["memory"]["slots"], b["memory"]["slots"], atol=1e-5)
    # the memory at step 2 survives in the slot the resumed run did not overwrite (ring of 3, 4 pushes)
    assert torch.allclose(b["memory"]["slots"][1], at_2["memory"]["slots"][1])


def test_resume_refuses_other_sketch_settings(tmp_path, sft_rows):
    trainer = _trainer(tmp_path, sft_rows, uds_k=1)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    torch.save(trainer.uds_state(), trainer.state_path(str(folder)))
    other = _trainer(tmp_path, sft_rows, uds_k=1, uds_seed=5)
    with pytest.raises(ValueError, match="sketch settings"):
        other.load_uds_state(str(folder))
    same = _trainer(tmp_path, sft_rows, uds_k=1)
    assert same.load_uds_state(str(folder))


def test_cli_train_uds_two_steps(tiny_model_dir, tmp_path, sft_rows):
    data = tmp_path / "train.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    out = tmp_path / "run"
    assert _cli(tiny_model_dir, data, out, "--max_steps", "2", "--save_strategy", "no") == 0
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2510.16882" in card and "method: uds" in card


@pytest.mark.slow
def test_torchrun_refuses_several_processes_before_training(tiny_model_dir, tmp_path, sft_rows):
    """Two processes would each select on their own: refused through the real launch unless asked for."""
    from trl_ext.testing import run_cli

    data = tmp_path / "train.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    cmd = ["train", "uds", "--model_name_or_path", tiny_model_dir, "--dataset_name", data]
    cmd += ["--output_dir", tmp_path / "out", "--max_steps", "1", "--report_to", "none"]
    result = run_cli(*cmd, nproc=2, check=False)
    assert result.returncode != 0
    assert "--uds_per_process_selection true" in result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_builtin_uds_mix_is_half_arith_half_one_template_and_tests_on_arith():
    """The card's demonstration data: 400 rows, the first 200 arith training problems and 200 greetings that differ
    only in their number, shuffled; each row's source says which; test = arith's held-out problems."""
    from trl_ext.data import load_dataset

    data = load_dataset("builtin:uds_mix")
    arith = load_dataset("builtin:arith", form="sft")
    train = data["train"]
    assert len(train) == 400 and train["source"].count("duplicate") == 200
    duplicates = [row for row in train if row["source"] == "duplicate"]
    templates = {row["prompt"][0]["content"].rstrip("0123456789.") for row in duplicates}
    assert templates == {"Write the museum greeting for visitor number "}
    assert sorted(row["prompt"][0]["content"] for row in train if row["source"] == "arith") == sorted(
        row["prompt"][0]["content"] for row in arith["train"].select(range(200))
    )
    assert train["source"][:20] != sorted(train["source"][:20])  # shuffled, not in blocks
    assert data["test"]["prompt"] == arith["test"]["prompt"] and set(data["test"]["source"]) == {"arith"}
