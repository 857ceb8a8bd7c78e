"""PoFT: the card's tests (shared/papers/poft.md, tests 1-6) against hand values and a naive full-logits
re-implementation, the score collator, sequence-mean normalisation under gradient accumulation, the built-in dataset,
the scoring transform and the CLI."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.models import load_model, load_tokenizer
from trl_ext.testing import (
    loss_and_grads,
    max_grad_diff,
    one_step_config,
    relative_grad_diff,
    tiny_model,
    tiny_run_flags,
    tiny_trainer,
    train_argv,
)
from trl_ext_plugins.poft import (
    PoFTConfig,
    PoFTTrainer,
    ScoreCollator,
    poft_score_dataset,
    poft_sequence_loss,
    reduce_reference,
)
from trl_ext_plugins.poft import data as poft_data


def _config(tmp_path, **kw):
    return one_step_config(PoFTConfig, tmp_path, **{"gradient_checkpointing": False, **kw})


def _rows(sft_rows, scores):
    return [{**row, "poft_ref_scores": score} for row, score in zip(sft_rows, scores, strict=False)]


def _trainer(tmp_path, rows, model=None, **kw):
    return tiny_trainer(PoFTTrainer, _config(tmp_path, **kw), rows, model)


def _loss_grads_batch(trainer):
    return loss_and_grads(trainer, count_items=False)


def _naive_r_theta(model, batch):
    """Per-sequence mean log-prob of the label tokens from the full logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (logp * mask).sum(-1) / mask.sum(-1)


def test_card_1_hand_values():
    r_theta = torch.tensor(-1.0, requires_grad=True)
    loss = poft_sequence_loss(r_theta, torch.tensor(-1.5))
    loss.backward()
    assert loss.item() == pytest.approx(0.47408, abs=1e-5)  # -log sigmoid(0.5)
    assert -r_theta.grad.item() == pytest.approx(0.37754, abs=1e-5)  # tau = sigmoid(-0.5)
    beta = torch.tensor(-1.0, requires_grad=True)
    poft_sequence_loss(beta, torch.tensor(-1.5), beta=2.0).backward()
    assert -beta.grad.item() == pytest.approx(2.0 / (1.0 + math.exp(1.0)), abs=1e-6)  # beta * sigmoid(-beta * 0.5)


def test_card_2_gradient_is_tau_times_sequence_mean_sft_gradient(tmp_path, sft_rows):
    rows = _rows(sft_rows, [[-1.0], [-3.0], [-6.0], [-9.0]])
    loss, grads, batch = _loss_grads_batch(_trainer(tmp_path, rows))
    reference = tiny_model()
    r_theta = _naive_r_theta(reference, batch)
    r_bar = batch["poft_ref_scores"][:, 0]
    tau = torch.sigmoid(r_bar - r_theta).detach()
    assert 0.01 < tau.min() and tau.max() < 0.999 and tau.max() - tau.min() > 0.5  # a range of coefficients
    (tau * -r_theta).mean().backward()
    expected = {n: p.grad for n, p in reference.named_parameters()}
    assert relative_grad_diff(grads, expected) < 1e-5
    assert loss.item() == pytest.approx(-F.logsigmoid(r_theta - r_bar).mean().item(), abs=1e-6)


def test_card_3_large_reference_gives_sequence_mean_sft(tmp_path, sft_rows):
    _, grads, batch = _loss_grads_batch(_trainer(tmp_path, _rows(sft_rows, [[1e4]] * 4)))
    reference = tiny_model()
    (-_naive_r_theta(reference, batch)).mean().backward()  # per-sequence token mean, then batch mean
    assert max_grad_diff(grads, {n: p.grad for n, p in reference.named_parameters()}) < 1e-5


def test_card_4_mean_over_aligned_models(tmp_path, sft_rows):
    loss_m, grads_m, _ = _loss_grads_batch(_trainer(tmp_path, _rows(sft_rows, [[-1.0, -2.0, -3.0]] * 4)))
    loss_1, grads_1, _ = _loss_grads_batch(_trainer(tmp_path, _rows(sft_rows, [-2.0] * 4)))  # scalar r_bar column
    assert loss_m.item() == loss_1.item()
    assert max_grad_diff(grads_m, grads_1) == 0.0
    scores = torch.tensor([[-1.0, -2.0, -4.0]])
    assert reduce_reference(scores, "min").item() == -4.0 and reduce_reference(scores, "max").item() == -1.0


def test_card_5_each_sequence_normalised_by_its_own_completion_length(tmp_path, sft_rows):
    rows = _rows(
        [sft_rows[0], {**sft_rows[1], "completion": [{"role": "assistant", "content": "1 + 3 = 4. " * 6}]}],
        [[-2.0], [-2.5]],
    )
    together, _, batch = _loss_grads_batch(_trainer(tmp_path, rows, per_device_train_batch_size=2))
    lengths = (batch["labels"][:, 1:] != -100).sum(-1)
    assert lengths[0] != lengths[1]
    alone = []
    for row in rows:
        trainer = _trainer(tmp_path, [row], per_device_train_batch_size=1)
        loss, _, single = _loss_grads_batch(trainer)
        alone.append(loss.item())
        r_theta = _naive_r_theta(tiny_model(), single)  # completion tokens only: the prompt is -100 in labels
        assert trainer._metrics["train"]["poft/r_theta"][-1] == pytest.approx(r_theta.item(), abs=1e-5)
    assert together.item() == pytest.approx(sum(alone) / 2, abs=1e-6)


def test_card_6_scoring_transform_equals_direct_mean_nll(tiny_model_dir, sft_rows):
    rows = Dataset.from_list(sft_rows[:3])
    scored = poft_score_dataset(rows, [tiny_model_dir, tiny_model_dir], batch_size=2, progress=False)
    model, tokenizer = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    for row, scores in zip(sft_rows[:3], scored["poft_ref_scores"], strict=True):
        prompt_ids = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
        ids = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        nll = F.cross_entropy(logits[len(prompt_ids) - 1 :], ids[0, len(prompt_ids) :])  # mean over response tokens
        assert len(scores) == 2 and scores[0] == scores[1]
        assert scores[0] == pytest.approx(-nll.item(), abs=1e-5)
    appended = poft_score_dataset(scored, tiny_model_dir, append=True, progress=False)
    assert [len(s) for s in appended["poft_ref_scores"]] == [3, 3, 3]
    as_messages = Dataset.from_list([{"messages": r["prompt"] + r["completion"]} for r in sft_rows[:3]])
    from_messages = poft_score_dataset(as_messages, tiny_model_dir, progress=False)
    assert from_messages["poft_ref_scores"] == [[s[0]] for s in scored["poft_ref_scores"]]


def test_collator_shapes_and_errors():
    def base(rows):
        return {"input_ids": torch.tensor([r["input_ids"] for r in rows])}

    collate = ScoreCollator(base, "poft_ref_scores")
    assert collate([{"input_ids": [1], "poft_ref_scores": -1.0}] * 2)["poft_ref_scores"].shape == (2,)
    assert collate([{"input_ids": [1], "poft_ref_scores": [-1.0, -2.0]}] * 3)["poft_ref_scores"].shape == (3, 2)
    with pytest.raises(KeyError, match="poft_score"):
        collate([{"input_ids": [1]}])
    with pytest.raises(ValueError, match="NaN"):
        collate([{"input_ids": [1], "poft_ref_scores": float("nan")}])
    with pytest.raises(ValueError, match="different numbers"):
        collate([{"input_ids": [1], "poft_ref_scores": [-1.0]}, {"input_ids": [1], "poft_ref_scores": [-1.0, -2.0]}])


def test_unscorable_reference_gets_zero_weight(tmp_path, sft_rows):
    rows = _rows(sft_rows, [[-float("inf")], [-1.0], [-1.0], [-1.0]])
    loss, grads, _ = _loss_grads_batch(_trainer(tmp_path, rows))
    assert math.isfinite(loss.item()) and all(torch.isfinite(g).all() for g in grads.values())


def test_sequence_mean_is_global_under_gradient_accumulation(tmp_path, sft_rows):
    """6 sequences in one optimizer step: one batch of 6 vs accumulation over micro-batches of 4 and 2 give the same
    SGD update (a per-micro-batch mean / accumulation steps would weight the 2 sequences double)."""
    rows = _rows(sft_rows[:6], [[-0.5], [-1.5], [-3.0], [-6.0], [-2.0], [-4.0]])
    updates = {}
    for name, batch_size, accumulation in (("single", 6, 1), ("accumulated", 4, 2)):
        model = tiny_model()
        initial = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer = _trainer(
            tmp_path / name,
            rows,
            model=model,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            dataloader_drop_last=False,
        )
        trainer.train()
        assert trainer.state.global_step == 1
        updates[name] = {n: initial[n] - p.detach() for n, p in model.named_parameters()}
    assert max(u.abs().max().item() for u in updates["single"].values()) > 1e-4
    assert relative_grad_diff(updates["single"], updates["accumulated"]) < 1e-5


def test_builtin_dataset():
    first, again = poft_data.build(n_train=100, n_test=20), poft_data.build(n_train=100, n_test=20)
    assert first["train"].to_list() == again["train"].to_list()
    train = first["train"]
    kinds = train["corruption"]
    assert kinds.count("edit") == 15 and kinds.count("shuffle") == 15 and kinds.count("none") == 70
    assert set(first["test"]["corruption"]) == {"none"}
    for row in train:
        assert len(row["poft_ref_scores"]) == 1 and row["poft_ref_scores"][0] < 0
        solution_ok = row["completion"][0]["content"].endswith(f"The answer is {row['answer']}.")
        assert solution_ok == (row["corruption"] == "none") or row["corruption"] == "edit"
    clean = [r["poft_ref_scores"][0] for r in train if r["corruption"] == "none"]
    edited = [r["poft_ref_scores"][0] for r in train if r["corruption"] == "edit"]
    assert sum(clean) / len(clean) > sum(edited) / len(edited)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("poft_reduce", "median", "poft_reduce"),
        ("poft_beta", 0.0, "poft_beta"),
        ("poft_beta", float("inf"), "poft_beta"),
        ("poft_score_column", "", "poft_score_column"),
        ("remove_unused_columns", True, "remove_unused_columns"),
        ("loss_type", "dft", "loss_type"),
        ("packing", True, "packing"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **{field: value})


def test_trains_and_logs_metrics(tmp_path, sft_rows):
    rows = _rows(sft_rows, [[-1.0], [-2.0], [-3.0], [-4.0]] * 2)
    trainer = _trainer(tmp_path, rows, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2)
    trainer.train()
    logged = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert {"poft/r_theta", "poft/r_ref", "poft/margin", "poft/coef", "poft/acc", "entropy", "loss"} <= set(logged)
    assert 0.0 < logged["poft/coef"] < 1.0


def test_cli_trains_on_the_builtin_dataset(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code = main(train_argv("poft", tiny_model_dir, str(out), *tiny_run_flags(2, 4, logging_steps=1)))
    assert code == 0 and (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "arxiv.org/abs/2412.12865" in card and "builtin:poft_arith" in card


def test_cli_scores_with_the_transform_then_trains(tiny_model_dir, tmp_path, sft_rows):
    data = tmp_path / "pairs.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    out = tmp_path / "run"
    code = main(
        train_argv(
            "poft",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            str(data),
            "--transforms",
            f"poft_score:models={tiny_model_dir}",
            *tiny_run_flags(1, 4),
        )
    )
    assert code == 0
    scored = tmp_path / "scored.jsonl"
    assert (
        main(
            [
                "transform",
                "poft_score",
                "--dataset_name",
                str(data),
                "--models",
                tiny_model_dir,
                "--output",
                str(scored),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(rows) == 8 and all(len(r["poft_ref_scores"]) == 1 for r in rows)


def test_missing_scores_are_named_before_training(tiny_model_dir, tmp_path, sft_rows, capsys):
    data = tmp_path / "pairs.jsonl"
    Dataset.from_list(sft_rows).to_json(str(data), lines=True)
    code = main(
        train_argv(
            "poft",
            tiny_model_dir,
            str(tmp_path / "x"),
            "--dataset_name",
            str(data),
            "--max_steps",
            "1",
            "--report_to",
            "none",
        )
    )
    assert code != 0
    assert "poft_ref_scores" in capsys.readouterr().err
