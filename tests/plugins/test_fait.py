"""FAIT: the card's tests (shared/papers/fait.md, tests 1-6), a naive full-logits re-implementation of the weighted
loss, gradient accumulation, the built-in dataset and the CLI."""

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext import get
from trl_ext.cli import main
from trl_ext.testing import (
    first_batch,
    max_grad_diff,
    one_step_config,
    relative_grad_diff,
    tiny_model,
    tiny_run_flags,
    tiny_tokenizer,
    train_argv,
    trainer_loss_and_grads,
)
from trl_ext_plugins.fait import (
    FAITConfig,
    FAITTrainer,
    build_code_mutants,
    extract_code,
    fait_masks,
    fait_weights,
    fault_spans,
    mutants,
    pass_at_1,
)

C = "x = 1\ny = x + 1\nreturn y"
C_WRONG = "x = 1\ny = x - 1\nreturn y"


def _rows(n=8, identical=False):
    rows = []
    for i in range(n):
        code = f"x = {i}\ny = x + {i + 1}\nreturn y"
        variants = (
            [code]
            if identical
            else [code.replace("+", "-")] + ([code.replace("return y", "return x")] if i % 2 else [])
        )
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Write function {i}, like {code[:5]}."}],
                "completion": [{"role": "assistant", "content": code}],
                "incorrect_completions": variants,
            }
        )
    return rows


def _config(tmp_path, cls=FAITConfig, **kw):
    return one_step_config(cls, tmp_path, **{"learning_rate": 1e-3, **kw})


def _decoded_marked(ids, mask):
    tok = tiny_tokenizer()
    return [tok.decode([i]) for i, m in zip(ids, mask, strict=True) if m]


# --- card test 2: line and character diffs -------------------------------------------------------------------------
def test_line_and_token_diff_hand_case():
    line_spans, tok_spans = fault_spans(C, [C_WRONG])
    assert line_spans == [(6, 15)]  # line 2, "y = x + 1"
    assert tok_spans == [(12, 13)]  # the "+" at offset 6 of line 2
    row = fait_masks({"completion": C, "incorrect_completions": [C_WRONG]}, tiny_tokenizer())
    ids = tiny_tokenizer()(C, add_special_tokens=False)["input_ids"]
    assert [t.strip() for t in _decoded_marked(ids, row["fault_token_mask"])] == ["+"]
    assert "".join(_decoded_marked(ids, row["fault_line_mask"])) == "y = x + 1"


@pytest.mark.slow
def test_token_diff_on_smollm2_tokenizer():
    from trl_ext.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    row = fait_masks({"completion": C, "incorrect_completions": [C_WRONG]}, tok)
    enc = tok(C, add_special_tokens=False, return_offsets_mapping=True)
    marked = [C[s:e] for (s, e), m in zip(enc["offset_mapping"], row["fault_token_mask"], strict=True) if m]
    assert [m.strip() for m in marked] == ["+"]


def test_insertions_deletions_and_whitespace():
    code = "a = 1\n    b = 2\nc = 3"
    # a line inserted after line 0 marks the line of the correct code at the insertion point
    line_spans, tok_spans = fault_spans(code, ["a = 1\nz = 0\n    b = 2\nc = 3"])
    assert line_spans == [(10, 15)] and tok_spans == []  # "b = 2" without its indentation
    # a deleted line is sensitive at both levels
    line_spans, tok_spans = fault_spans(code, ["a = 1\nc = 3"])
    assert line_spans == [(10, 15)] and tok_spans == [(6, 15)]
    # trailing whitespace never marks anything; a changed indentation does (token level)
    assert fault_spans(code, ["a = 1   \n    b = 2\t\nc = 3"]) == ([], [])
    line_spans, tok_spans = fault_spans(code, ["a = 1\n  b = 2\nc = 3"])
    assert line_spans == [(10, 15)] and tok_spans and all(6 <= s and e <= 10 for s, e in tok_spans)


# --- card tests 3 and 6 ---------------------------------------------------------------------------------------------
def test_identical_variant_gives_no_mask():
    row = fait_masks({"completion": C, "incorrect_completions": [C]}, tiny_tokenizer())
    assert not any(row["fault_line_mask"]) and not any(row["fault_token_mask"])


def test_union_over_variants_is_monotone():
    variants = [C_WRONG, "x = 2\ny = x + 1\nreturn y", "x = 1\ny = x + 1\nreturn x", "x = 1\nreturn y"]
    previous = None
    for k in range(1, len(variants) + 1):
        row = fait_masks({"completion": C, "incorrect_completions": variants[:k]}, tiny_tokenizer())
        masks = (row["fault_line_mask"], row["fault_token_mask"])
        singles = [fait_masks({"completion": C, "incorrect_completions": [v]}, tiny_tokenizer()) for v in variants[:k]]
        for key, mask in zip(("fault_line_mask", "fault_token_mask"), masks, strict=True):
            assert mask == [max(s[key][j] for s in singles) for j in range(len(mask))]  # union of the singles
        if previous is not None:
            assert all(a >= b for new, old in zip(masks, previous, strict=True) for a, b in zip(new, old, strict=True))
        assert all(t <= line for line, t in zip(*masks, strict=True))  # tok_mask ⊆ line_mask
        previous = masks


# --- card test 4: renormalisation -----------------------------------------------------------------------------------
def test_renorm_hand_case():
    line = torch.tensor([[1, 0, 0, 0]])
    tok = torch.zeros_like(line)
    mask = torch.ones_like(line, dtype=torch.bool)
    raw = fait_weights(line, tok, mask, 1.0, 0.0, "none")
    assert raw.tolist() == [[2.0, 1.0, 1.0, 1.0]]
    renorm = fait_weights(line, tok, mask, 1.0, 0.0, "renorm")
    assert torch.allclose(renorm, torch.tensor([[1.6, 0.8, 0.8, 0.8]]))
    # per sequence, scored positions only: padding gets 0 and each row still averages 1
    line2 = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    tok2 = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 0]])
    mask2 = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    w = fait_weights(line2, tok2, mask2, 1.5, 2.0, "renorm")
    assert w[0, 3] == 0 and torch.allclose(w.sum(1) / mask2.sum(1), torch.ones(2))


# --- card tests 1 and 3: limits equal plain SFT ---------------------------------------------------------------------
def test_zero_weights_reproduce_sft(tmp_path):
    rows = _rows()
    sft_loss, sft_grads, *_ = trainer_loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), rows)
    loss, grads, trainer, batch = trainer_loss_and_grads(
        FAITTrainer, _config(tmp_path, fait_line_weight=0.0, fait_token_weight=0.0), rows
    )
    assert batch["fait_line_mask"].sum() > 0  # there are sensitive tokens, weighted like the others
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5


@pytest.mark.parametrize("dynamic", ["renorm", "none"])
def test_identical_variants_reproduce_sft_for_any_weights(tmp_path, dynamic):
    rows = _rows(identical=True)
    sft_loss, sft_grads, *_ = trainer_loss_and_grads(SFTTrainer, _config(tmp_path, SFTConfig), rows)
    loss, grads, _, batch = trainer_loss_and_grads(
        FAITTrainer, _config(tmp_path, fait_line_weight=2.0, fait_token_weight=3.0, fait_dynamic=dynamic), rows
    )
    assert batch["fait_line_mask"].sum() == 0
    assert loss.item() == pytest.approx(sft_loss.item(), abs=1e-6)
    assert relative_grad_diff(sft_grads, grads) < 1e-5


# --- the weighted loss against a naive full-logits version ----------------------------------------------------------
@pytest.mark.parametrize("dynamic", ["renorm", "none"])
def test_loss_and_grads_match_naive_full_logits(tmp_path, dynamic):
    a, b = 1.5, 0.7
    loss, grads, trainer, batch = trainer_loss_and_grads(
        FAITTrainer, _config(tmp_path, fait_line_weight=a, fait_token_weight=b, fait_dynamic=dynamic), _rows()
    )
    model = tiny_model()  # the same initial weights
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    total, count = 0.0, 0
    for row in range(labels.shape[0]):
        scored = [t for t in range(labels.shape[1]) if labels[row, t] != -100]
        w = [
            1 + a * int(batch["fait_line_mask"][row, t + 1]) + b * int(batch["fait_token_mask"][row, t + 1])
            for t in scored
        ]
        if dynamic == "renorm":
            w = [x * len(w) / sum(w) for x in w]
        total = total + sum(x * nll[row, t] for x, t in zip(w, scored, strict=True))
        count += len(scored)
    expected = total / count
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    naive = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert max_grad_diff(naive, grads) < 1e-5


# --- card test 5: alignment through the template, the shift and completion-only masking ----------------------------
def test_masks_align_with_training_tokens(tmp_path):
    code = "total = 0\nfor v in xs:\n    total += v\nreturn total"
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Fix: {code}"}],  # the same code in the prompt
            "completion": [{"role": "assistant", "content": code}],
            "incorrect_completions": [code.replace("+=", "-=")],
        }
    ] * 4
    trainer = FAITTrainer(
        model=tiny_model(),
        args=_config(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    row = trainer.train_dataset[0]
    assert len(row["fait_token_mask"]) == len(row["input_ids"]) == len(row["fait_line_mask"])
    marked = [i for i, m in enumerate(row["fait_token_mask"]) if m]
    assert "".join(_decoded_marked(row["input_ids"], row["fait_token_mask"])).strip() == "+"
    assert all(row["labels"][i] != -100 for i in range(len(row["input_ids"])) if row["fait_line_mask"][i])
    assert "".join(_decoded_marked(row["input_ids"], row["fait_line_mask"])).replace(" ", "") == "total+=v"
    # after the causal shift the weight sits on the position that predicts "+" (its label is "+")
    batch = first_batch(trainer)
    line, tok = batch["fait_line_mask"][:, 1:], batch["fait_token_mask"][:, 1:]
    targets = batch["labels"][:, 1:]
    assert {tiny_tokenizer().decode([int(t)]).strip() for t in targets[tok.bool()]} == {"+"}
    mask = targets != -100
    weights = fait_weights(line, tok, mask, 1.0, 1.0, "renorm")
    assert (weights[~mask] == 0).all() and (weights[tok.bool()] > weights[mask & ~line.bool()].max()).all()
    assert marked[0] > max(i for i, lab in enumerate(row["labels"]) if lab == -100)


def test_precomputed_mask_columns_give_the_same_alignment(tmp_path):
    rows = _rows()
    transform = get("transform", "fait_masks").build(tokenizer=tiny_tokenizer())
    with_columns = transform(Dataset.from_list(rows)).remove_columns(["incorrect_completions"])
    a = FAITTrainer(
        model=tiny_model(),
        args=_config(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    b = FAITTrainer(
        model=tiny_model(),
        args=_config(tmp_path, fait_masks_from="columns"),
        train_dataset=with_columns,
        processing_class=tiny_tokenizer(),
    )
    assert a.train_dataset["fait_line_mask"] == b.train_dataset["fait_line_mask"]
    assert a.train_dataset["fait_token_mask"] == b.train_dataset["fait_token_mask"]


def test_gradient_accumulation_matches_one_batch(tmp_path):
    def update(per_device, accumulation):
        model = tiny_model()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = _config(
            tmp_path / f"{per_device}x{accumulation}",
            per_device_train_batch_size=per_device,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            shuffle_dataset=False,
            fait_line_weight=1.0,
            fait_token_weight=2.0,
        )
        trainer = FAITTrainer(
            model=model, args=cfg, train_dataset=Dataset.from_list(_rows(4)), processing_class=tiny_tokenizer()
        )
        trainer.train()
        return {n: before[n] - p.detach() for n, p in trainer.model.named_parameters()}

    single, accumulated = update(4, 1), update(2, 2)
    assert max(v.abs().max().item() for v in single.values()) > 1e-4
    assert relative_grad_diff(single, accumulated) < 1e-5


def _my_rule(line_mask, token_mask, label_mask, config):
    return 1.0 + 4.0 * token_mask.float()


def test_custom_weight_fn(tmp_path):
    loss_custom, *_ = trainer_loss_and_grads(
        FAITTrainer, _config(tmp_path, fait_weight_fn="test_fait:_my_rule"), _rows()
    )
    loss_same, *_ = trainer_loss_and_grads(
        FAITTrainer, _config(tmp_path, fait_line_weight=0.0, fait_token_weight=4.0, fait_dynamic="none"), _rows()
    )
    assert loss_custom.item() == pytest.approx(loss_same.item(), abs=1e-6)


def test_metrics_logged(tmp_path):
    trainer = FAITTrainer(
        model=tiny_model(),
        args=_config(tmp_path, max_steps=2),
        train_dataset=Dataset.from_list(_rows()),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "fait/frac_line_tokens",
        "fait/frac_token_tokens",
        "fait/nll_sensitive",
        "fait/nll_other",
        "loss",
        "entropy",
        "mean_token_accuracy",
    } <= logged
    frac = [e["fait/frac_token_tokens"] for e in trainer.state.log_history if "fait/frac_token_tokens" in e]
    assert all(0 < f < 1 for f in frac)
    metrics = trainer.evaluate(eval_dataset=Dataset.from_list(_rows(4)))  # prepared and aligned at evaluate time
    assert {"eval_loss", "eval_fait/nll_sensitive", "eval_fait/nll_other"} <= set(metrics)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("fait_line_weight", -1.0, "fait_line_weight"),
        ("fait_token_weight", float("nan"), "fait_token_weight"),
        ("fait_dynamic", "softmax", "fait_dynamic"),
        ("fait_masks_from", "guess", "fait_masks_from"),
        ("fait_weight_fn", "no_such_module:f", "fait_weight_fn"),
        ("remove_unused_columns", True, "remove_unused"),
        ("packing", True, "packing"),
        ("loss_type", "dft", "loss_type"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **{field: value})


# --- built-in data, sandboxed checks, CLI ---------------------------------------------------------------------------
def test_builtin_dataset_variants_fail_their_tests():
    data = build_code_mutants()
    assert len(data["train"]) == 300 and len(data["test"]) == 100
    assert set(data["train"]["prompt"][0][0]) == {"role", "content"}
    train_codes = {r[0]["content"] for r in data["train"]["completion"]}
    assert not train_codes & {r[0]["content"] for r in data["test"]["completion"]}
    sample = data["train"].select(range(20))
    codes = [r[0]["content"] for r in sample["completion"]]
    assert pass_at_1(codes, sample["tests"]) == 1.0  # references pass (run in the sandbox)
    variants = [(v, t) for vs, t in zip(sample["incorrect_completions"], sample["tests"], strict=True) for v in vs]
    assert variants and pass_at_1([v for v, _ in variants], [t for _, t in variants]) == 0.0
    assert all(1 <= len(v) <= 3 for v in data["train"]["incorrect_completions"])
    assert build_code_mutants()["train"]["completion"] == data["train"]["completion"]  # deterministic


def test_mutants_and_code_extraction():
    code = "def f(x):\n    if x < 3:\n        return x + 1\n    return 0\n"
    found = mutants(code)
    assert "def f(x):\n    if x <= 3:\n        return x + 1\n    return 0\n" in found
    assert "def f(x):\n    if x < 3:\n        return x - 1\n    return 0\n" in found
    assert "def f(x):\n    if x < 4:\n        return x + 1\n    return 0\n" in found
    assert all(m.startswith("def f(x):") for m in found) and code not in found
    assert extract_code("Sure:\n```python\nprint(1)\n```\nDone") == "print(1)\n"
    assert extract_code("print(2)") == "print(2)"


def test_cli_trains_on_builtin_dataset(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code = main(train_argv("fait", tiny_model_dir, str(out), *tiny_run_flags(), "--max_length", "256"))
    assert code == 0 and (out / "model.safetensors").exists()


def test_cli_refuses_dataset_without_variants(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(train_argv("fait", tiny_model_dir, str(out), "--dataset_name", "builtin:arith", "--max_steps", "1"))
    err = capsys.readouterr().err
    assert code == 2 and "incorrect_completions" in err and "fait" in err
    assert not out.exists()
