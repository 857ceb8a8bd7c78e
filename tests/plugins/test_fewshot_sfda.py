"""fewshot_sfda: the card's CPU tests (shared/papers/fewshot-sfda.md 1-4): the official split by hand, its refusal,
best-by-validation-loss selection on a constructed loss sequence, the head-only LP stage, the built-in data, a CLI
run with the transform and the callback, and the recipe's shape."""

import random
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import TrainerControl, TrainerState

from trl_ext.cli import main
from trl_ext.plugin import registry
from trl_ext.testing import tiny_model
from trl_ext_plugins.fewshot_sfda import (
    BestByFewShotVal,
    few_shot_indices,
    few_shot_split,
    head_parameter_names,
    make_head_only_adapter,
)
from trl_ext_plugins.fewshot_sfda.data import build as build_sentiment


def _labelled(counts):
    labels = [c for c, n in counts.items() for _ in range(n)]
    return Dataset.from_list([{"prompt": f"row {i}", "completion": f" {c}", "label": c} for i, c in enumerate(labels)])


# --- card tests 1-2: the split ---------------------------------------------------------------------------------------
def test_split_by_hand_on_a_tiny_labelled_set():
    """test_ratio=0, classes of 5, 4 and 10 rows, k=3, seed 7: recomputed here from the official rule with the same
    random stream (one shuffle of all indices, then one per class in sorted class order)."""
    ds = _labelled({"a": 5, "b": 4, "c": 10})
    split = few_shot_split(ds, k=3, test_ratio=0.0, seed=7)
    rng = random.Random(7)
    rng.shuffle(list(range(19)))  # the pool/test draw (nothing held out at ratio 0)
    expected_train, expected_val = [], []
    for members in ([0, 1, 2, 3, 4], [5, 6, 7, 8], list(range(9, 19))):
        rng.shuffle(members)
        expected_train += members[:3]
        expected_val.append(members[-1])  # the LAST shuffled element, not a fresh draw
    assert [int(r.split()[1]) for r in split["train"]["prompt"]] == expected_train
    assert [int(r.split()[1]) for r in split["validation"]["prompt"]] == expected_val
    assert sorted(split["train"]["label"]) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert sorted(split["validation"]["label"]) == ["a", "b", "c"] and len(split["test"]) == 0
    assert not set(split["train"]["prompt"]) & set(split["validation"]["prompt"])
    assert split["train"].to_list() == few_shot_split(ds, k=3, test_ratio=0.0, seed=7)["train"].to_list()


def test_class_without_k_plus_one_rows_is_refused():
    with pytest.raises(ValueError, match="class 'b' has 3 rows"):
        few_shot_split(_labelled({"a": 5, "b": 3}), k=3, test_ratio=0.0)


def test_test_share_is_disjoint():
    ds = _labelled({"a": 40, "b": 60})
    idx = few_shot_indices(ds["label"], k=3, test_ratio=0.2, seed=1)
    assert len(idx.test) == 20
    assert not set(idx.test) & (set(idx.train) | set(idx.validation))
    assert len(idx.train) == 6 and len(idx.validation) == 2
    assert sorted(idx.train + idx.validation + idx.test + idx.unused) == list(range(100))


# --- card test 3: best checkpoint ------------------------------------------------------------------------------------
def test_best_by_validation_loss_keeps_the_first_strict_minimum():
    """Validation losses [1.0, 0.8, 0.9, 0.8] at steps 10..40: best step 20 (the tie at 40 keeps 20), and the weights
    restored at the end are the step-20 ones."""
    model = torch.nn.Linear(2, 1)
    losses = iter([1.0, 0.8, 0.9, 0.8])
    callback = BestByFewShotVal(lambda m: next(losses), val_freq=10)
    state, control, snapshots = TrainerState(), TrainerControl(), {}
    for step in range(1, 41):
        with torch.no_grad():
            model.weight.add_(1.0)  # a different weight at every step
        state.global_step = step
        snapshots[step] = model.weight.detach().clone()
        callback.on_step_end(None, state, control, model=model)
    callback.on_train_end(None, state, control, model=model)
    assert callback.best_step == 20 and callback.best_loss == 0.8
    assert torch.equal(model.weight.detach(), snapshots[20])
    assert [s for s, _ in callback.history] == [10, 20, 30, 40]
    assert state.log_history[-1]["fewshot/best_step"] == 20.0


# --- card test 4: LP-FT ----------------------------------------------------------------------------------------------
def test_head_only_stage_trains_the_head_alone():
    model = make_head_only_adapter()(tiny_model())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["lm_head.weight"]
    assert head_parameter_names(tiny_model(tie_word_embeddings=True)) == ["model.embed_tokens.weight"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.tensor([[1, 5, 9, 4]])
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed == ["lm_head.weight"]


def test_recipe_is_lp_then_ft():
    """The shipped recipe (examples/recipes links to it) is head-only LP at 1e-4 for 400 steps, then full FT at 1e-5
    for 1000 steps (official target_finetune.py defaults)."""
    assert registry.get("recipe", "fewshot_sfda").source.endswith("recipes/fewshot_sfda.yaml")
    path = Path(__file__).parents[2] / "examples" / "recipes" / "fewshot_sfda.yaml"
    assert path.is_symlink()
    recipe = yaml.safe_load(path.read_text())
    lp, ft = recipe["stages"]
    assert lp["adapter"] == "fewshot_head_only" and lp["learning_rate"] == 1e-4 and lp["max_steps"] == 400
    assert "adapter" not in ft and ft["learning_rate"] == 1e-5 and ft["max_steps"] == 1000


# --- data and a CLI run ----------------------------------------------------------------------------------------------
def test_builtin_sentiment_is_deterministic_and_balanced():
    ds = build_sentiment()["train"]
    assert ds.to_list() == build_sentiment()["train"].to_list() and len(ds) == 180
    assert {label: ds["label"].count(label) for label in set(ds["label"])} == {"positive": 60, "negative": 60,
                                                                               "neutral": 60}  # fmt: skip
    assert all(c == " " + label for c, label in zip(ds["completion"], ds["label"], strict=True))


def test_cli_few_shot_train_with_best_checkpoint(tiny_model_dir, tmp_path, caplog):
    """k=2 of 3 classes: 6 training rows; validation every 2 steps, the best step restored at the end."""
    caplog.set_level("INFO", logger="trl_ext_plugins.fewshot_sfda.callbacks")
    out = tmp_path / "fewshot"
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name",
                 "builtin:fewshot_sentiment", "--transforms", "few_shot_split:k=2", "--callbacks",
                 "fewshot_best_val:k=2:val_freq=2", "--max_steps", "4", "--per_device_train_batch_size", "4",
                 "--learning_rate", "1e-3", "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
                 "--output_dir", str(out)])  # fmt: skip
    assert code == 0 and (out / "model.safetensors").exists()
    assert any("fewshot: restored step" in r.getMessage() for r in caplog.records)
