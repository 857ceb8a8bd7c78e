"""peft_fm_survey's `peft_budget` callback (card tests 5): the logged trainable count and fraction equal a hand
count, a config off its target by more than tol stops the run at train begin, and a full model reports itself."""

import pytest
from peft import LoraConfig, get_peft_model
from transformers import TrainerControl, TrainerState, TrainingArguments

from trl_ext.testing import tiny_model
from trl_ext_plugins.peft_fm_survey.callback import PeftBudgetCallback

# LoRA r=2 on q_proj of tiny_model() (hidden 32): 2 * (32 + 32) per layer, 2 layers
HAND_COUNT = 2 * 2 * (32 + 32)


def _lora_model():
    return get_peft_model(tiny_model(), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))


def _begin(callback, model, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control, model=model)
    return args, state, control


def test_logs_the_hand_count_and_fraction(tmp_path, capsys):
    base_total = sum(p.numel() for p in tiny_model().parameters())
    callback = PeftBudgetCallback(target_budget=HAND_COUNT)
    args, state, control = _begin(callback, _lora_model(), tmp_path)
    assert f"peft_budget: {HAND_COUNT:,} trainable of {base_total:,} base parameters" in capsys.readouterr().out
    logs = {"loss": 1.0}
    state.log_history.append({**logs, "step": 1})  # as Trainer.log keeps a copy before calling on_log
    callback.on_log(args, state, control, logs=logs)
    assert logs["peft/trainable_params"] == HAND_COUNT
    assert logs["peft/trainable_frac"] == pytest.approx(HAND_COUNT / base_total)
    assert state.log_history[-1]["peft/category"] == "reparameterization"
    later = {"loss": 0.5}
    callback.on_log(args, state, control, logs=later)
    assert "peft/trainable_params" not in later  # logged once


def test_raises_when_off_the_target_by_more_than_tol(tmp_path):
    # 256 trainable vs a target of 240: 6.7% off
    with pytest.raises(ValueError, match="6.7% off the target 240"):
        _begin(PeftBudgetCallback(target_budget=240, tol=0.05), _lora_model(), tmp_path)
    _begin(PeftBudgetCallback(target_budget=240, tol=0.07), _lora_model(), tmp_path)  # within 7%


def test_fraction_target_is_of_the_base_model(tmp_path):
    base_total = sum(p.numel() for p in tiny_model().parameters())
    callback = PeftBudgetCallback(target_budget=HAND_COUNT / base_total, tol=0.001)
    _begin(callback, _lora_model(), tmp_path)
    assert callback.measured["peft/trainable_params"] == HAND_COUNT


def test_full_fine_tuning_counts_every_parameter(tmp_path):
    model = tiny_model()
    callback = PeftBudgetCallback()
    _begin(callback, model, tmp_path)
    total = sum(p.numel() for p in model.parameters())
    assert callback.measured["peft/trainable_params"] == total and callback.measured["peft/category"] == "full"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="target_budget"):
        PeftBudgetCallback(target_budget=-3)
    with pytest.raises(ValueError, match="tol"):
        PeftBudgetCallback(tol=-0.1)
