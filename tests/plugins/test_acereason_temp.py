"""acereason_temp: the card's five tests (entropy by hand, selector entropy == GRPOTrainer's logged `entropy`,
bisection on a synthetic H(T), the monotonicity warning, the callback's adaptive step and its state through a save
and a resume), the temperature changing only between generation batches, and the recipe through the CLI."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from trl_ext.compat.grpo_seams import around_generate_and_score
from trl_ext.testing import interrupted_and_resumed, logged, tiny_model, tiny_tokenizer
from trl_ext.training.bound_callbacks import bind_callbacks
from trl_ext_plugins.acereason_temp import (
    EntropyTargetCallback,
    NotMonotonicWarning,
    choose_temperature,
    entropy_at_temperature,
    overlong_filter_preset,
    rollout_entropy,
    select_rl_temperature,
)


# --- 1. entropy math --------------------------------------------------------------------------------------------
def test_entropy_by_hand():
    logits = torch.tensor([0.0, math.log(3.0)])  # p = [1/4, 3/4] at T = 1
    assert entropy_at_temperature(logits, 1.0).item() == pytest.approx(0.56234, abs=1e-5)
    # T = 2: z / 2 = [0, ln 3 / 2], p = [1, sqrt 3] / (1 + sqrt 3)
    assert entropy_at_temperature(logits, 2.0).item() == pytest.approx(0.65681, abs=1e-5)
    uniform = torch.zeros(7)
    for t in (0.05, 0.5, 1.0, 3.0):
        assert entropy_at_temperature(uniform, t).item() == pytest.approx(math.log(7), abs=1e-12)
    assert entropy_at_temperature(torch.tensor([0.3, 1.1, -0.4]), 0.05).item() < 1e-3


# --- 3./4. the selection rule ---------------------------------------------------------------------------------------
def test_bisection_finds_the_target_on_a_synthetic_entropy_curve():
    calls = []

    def measure(t):
        calls.append(t)
        return 0.5 * t - 0.12, 10.0

    chosen, table = choose_temperature(measure, target_entropy=0.3)
    assert chosen == pytest.approx(0.84, abs=0.01)  # 0.5 T - 0.12 = 0.3 at T = 0.84
    assert len(calls) == 6 and [p.temperature for p in table] == sorted(calls)
    assert all(p.entropy == pytest.approx(0.5 * p.temperature - 0.12) for p in table)


def test_grid_returns_the_closest_grid_point():
    chosen, table = choose_temperature(lambda t: (0.5 * t - 0.12, 1.0), method="grid")
    assert chosen == 0.85  # |H - 0.3|: 0.005 at 0.85, 0.02 at 0.8 and 0.9
    assert [p.temperature for p in table] == [0.6, 0.7, 0.8, 0.85, 0.9, 1.0, 1.1]


def test_a_non_increasing_entropy_curve_warns():
    noisy = {0.6: 0.2, 0.7: 0.35, 0.8: 0.25, 0.85: 0.3, 0.9: 0.4, 1.0: 0.5, 1.1: 0.6}
    with pytest.warns(NotMonotonicWarning, match="n_prompts"):
        choose_temperature(lambda t: (noisy[t], 1.0), method="grid")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an increasing curve warns nothing
        choose_temperature(lambda t: (0.5 * t - 0.12, 1.0), method="grid")


def test_a_target_out_of_reach_is_said():
    with pytest.warns(UserWarning, match="closest is T=0.6"):
        chosen, _ = choose_temperature(lambda t: (t, 1.0), target_entropy=0.1)
    assert chosen == pytest.approx(0.6 + 0.6 / 2**6)  # six halvings walk down towards t_min


def test_overlong_filter_preset():
    assert overlong_filter_preset(8192) == {"mask_truncated_completions": True}
    assert overlong_filter_preset(16384) == {"mask_truncated_completions": True}
    assert overlong_filter_preset(24576) == {"mask_truncated_completions": False}


def test_selector_on_a_tiny_model_is_reproducible_and_tabulated():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    prompts = [[{"role": "user", "content": f"add {i} and {i + 1}"}] for i in range(4)]
    kwargs = dict(max_new_tokens=6, max_evals=2, n_prompts=4, batch_size=4)
    with pytest.warns(UserWarning, match="closest is"):  # a random model's entropy is near log V at any T
        chosen, table = select_rl_temperature(model, tokenizer, prompts, **kwargs)
    assert [p.temperature for p in table] == [0.75, 0.9]  # H > 0.3 at the midpoint 0.9: the next is 0.75
    assert chosen in {p.temperature for p in table}
    assert all(0 < p.mean_len <= 6 and p.entropy > 0 for p in table)
    with pytest.warns(UserWarning):
        assert select_rl_temperature(model, tokenizer, prompts, **kwargs) == (chosen, table)  # seeded


# --- 5. the callback's rule and its saved state ------------------------------------------------------------------
class _State:
    def __init__(self, step):
        self.global_step, self.log_history = step, []


def test_three_high_checks_lower_the_temperature_by_one_step():
    cb = EntropyTargetCallback(adaptive=True, temperature=0.85)
    for step, expected in ((10, 0.85), (20, 0.85), (30, 0.80)):
        logs = {"entropy": 0.5}
        cb.on_log(None, _State(step), None, logs=logs)
        assert cb.temperature == pytest.approx(expected)
        assert logs["acetemp/entropy_gap"] == pytest.approx(0.2)
    cb.on_log(None, _State(35), None, logs={"entropy": 0.5})  # not a check step: counts nothing
    assert cb.above == 0 and cb.temperature == pytest.approx(0.80)
    # On target resets; low entropy raises T; clipped at t_max; adaptive=False only monitors.
    low = EntropyTargetCallback(adaptive=True, temperature=1.18, check_every=1, patience=2)
    for step in (1, 2):
        low.on_log(None, _State(step), None, logs={"entropy": 0.1})
    assert low.temperature == pytest.approx(1.2)
    still = EntropyTargetCallback(adaptive=False, temperature=0.85, check_every=1, patience=1)
    still.on_log(None, _State(1), None, logs={"entropy": 0.9})
    assert still.temperature == 0.85 and still.above == 1


def test_callback_state_round_trips_through_exportable_state():
    cb = EntropyTargetCallback(adaptive=True, temperature=0.9, check_every=1, patience=3, step=0.1)
    for step in (1, 2):
        cb.on_log(None, _State(step), None, logs={"entropy": 0.5})
    saved = json.loads(json.dumps(cb.state()))  # trainer_state.json holds it as JSON
    back = EntropyTargetCallback.from_state(saved)
    assert (back.temperature, back.above, back.last_check_step, back.step) == (0.9, 2, 2, 0.1)
    back.on_log(None, _State(3), None, logs={"entropy": 0.5})  # the third high check moves it, as it would have
    assert back.temperature == pytest.approx(0.8)


# --- GRPO runs on a tiny model -----------------------------------------------------------------------------------
def _rows(n=8):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"count to {i}"}]} for i in range(n)])


def _length_reward(completions, **kwargs):
    return [float(len(c[0]["content"])) for c in completions]


def _grpo(out, callback, max_steps=1, **overrides):
    args = dict(
        output_dir=str(out),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=max_steps,
        logging_steps=1,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        temperature=1.0,
        seed=0,
        use_cpu=True,
    )
    args.update(overrides)
    trainer = GRPOTrainer(
        model=tiny_model(),
        processing_class=tiny_tokenizer(),
        reward_funcs=_length_reward,
        args=GRPOConfig(**args),
        train_dataset=_rows(),
        callbacks=[callback],
    )
    bind_callbacks(trainer)
    return trainer


def test_selector_entropy_equals_grpo_logged_entropy_for_the_same_rollouts(tmp_path):
    """Card test 2, and the compat seam: the callback switches the run from its config's T = 1.0 to 0.7 before the
    first rollout; the selector's scorer at 0.7 on the very rollouts equals TRL's logged `entropy`."""
    trainer = _grpo(tmp_path, EntropyTargetCallback(temperature=0.7))
    seen = []

    def capture(inner, *args, **kwargs):
        out = inner(*args, **kwargs)
        prompts = [ids[m.bool()].tolist() for ids, m in zip(out["prompt_ids"], out["prompt_mask"], strict=True)]
        completions = [
            ids[m.bool()].tolist() for ids, m in zip(out["completion_ids"], out["completion_mask"], strict=True)
        ]
        # scored now: the weights that TRL's loss sees this step (the optimizer has not stepped yet)
        seen.append((rollout_entropy(trainer.model, prompts, completions, trainer.temperature), trainer.temperature))
        return out

    around_generate_and_score(trainer, capture)  # inside the callback's wrapper: runs after it set T
    trainer.train()
    (h, n), temperature = seen[0]
    assert temperature == 0.7 and n > 0
    entropy = logged(trainer, "entropy")[1]
    assert h == pytest.approx(entropy, abs=1e-5)
    assert logged(trainer, "acetemp/temperature")[1] == 0.7
    assert logged(trainer, "acetemp/entropy_gap")[1] == pytest.approx(entropy - 0.3)
    # and not the entropy at the config's temperature: the change reached the fused head
    assert (
        rollout_entropy(trainer.model, [[5, 6]], [[7, 8, 9]], 1.0)[0]
        != rollout_entropy(trainer.model, [[5, 6]], [[7, 8, 9]], 0.7)[0]
    )


def test_a_new_temperature_waits_for_the_next_generation_batch(tmp_path):
    """Two optimizer steps per generation batch: a change decided after step 1 applies from step 3's batch."""
    cb = EntropyTargetCallback(adaptive=True, target_entropy=0.0, tol=0.0, check_every=1, patience=1)
    trainer = _grpo(tmp_path, cb, max_steps=3, steps_per_generation=2, per_device_train_batch_size=2)
    trainer.train()
    assert logged(trainer, "acetemp/temperature") == {1: 1.0, 2: 1.0, 3: pytest.approx(0.9)}
    assert cb.temperature == pytest.approx(0.85)


def test_adaptive_state_is_saved_with_checkpoints_and_restored_on_resume(tmp_path):
    def make(folder):
        cb = EntropyTargetCallback(adaptive=True, target_entropy=0.0, tol=0.0, check_every=1, patience=1)
        return _grpo(folder, cb, max_steps=4, save_strategy="steps", save_steps=2)

    full, cut, resumed = interrupted_and_resumed(make, tmp_path, stop_step=2)
    saved = json.loads((tmp_path / "cut" / "checkpoint-2" / "trainer_state.json").read_text())
    state = saved["stateful_callbacks"]["EntropyTargetCallback"]
    assert state["attributes"]["temperature"] == pytest.approx(0.9)
    assert state["args"]["adaptive"] is True
    expected = {1: 1.0, 2: 0.95, 3: 0.9, 4: 0.85}
    assert logged(full, "acetemp/temperature") == pytest.approx(expected)
    # the resumed run (its log holds the checkpoint's steps 1-2) goes on at the checkpoint's 0.9, not at the 1.0
    # its callback was built with
    assert logged(resumed, "acetemp/temperature") == pytest.approx(expected)
    live = [c for c in resumed.callback_handler.callbacks if isinstance(c, EntropyTargetCallback)]
    assert len(live) == 1 and live[0].temperature == pytest.approx(0.8)
    assert resumed.temperature == pytest.approx(0.85)  # the last rollouts' T; 0.8 waits for the next batch


def test_the_selector_runs_before_the_first_rollout(tmp_path):
    cb = EntropyTargetCallback(select=True, n_prompts=4, max_evals=2, max_new_tokens=6)
    trainer = _grpo(tmp_path, cb)
    with pytest.warns(UserWarning, match="closest is"):  # a random model: H is near log V at any T
        trainer.train()
    saved = json.loads((tmp_path / "acetemp_selection.json").read_text())
    assert saved["temperature"] == cb.temperature and len(saved["table"]) == 2
    assert logged(trainer, "acetemp/temperature")[1] == pytest.approx(cb.temperature)
    assert cb.temperature in {row["temperature"] for row in saved["table"]}


# --- the recipe through the CLI ------------------------------------------------------------------------------------
def test_the_recipe_selects_then_trains_each_stage_at_the_selected_temperature(tiny_model_dir, tmp_path):
    from transformers import TrainerState

    from trl_ext.cli import main
    from trl_ext.plugin.registry import registry

    recipe = registry().get("recipe", "acereason_temp").load()
    assert [s["method"] for s in recipe["stages"]] == ["grpo", "grpo"]
    assert all("select=true" in s["callbacks"] for s in recipe["stages"])
    out = tmp_path / "run"
    flags = ["--max_steps", "1", "--max_completion_length", "8", "--num_generations", "2"]
    flags += ["--per_device_train_batch_size", "2", "--save_strategy", "steps", "--save_steps", "1"]
    flags += ["--callbacks", "acereason_temp:select=true:n_prompts=2:max_evals=2"]
    with pytest.warns(UserWarning, match="closest is"):  # a random tiny model: H is near log V at any T
        code = main(
            ["train", "acereason_temp", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), *flags]
        )
    assert code == 0
    for stage in ("stage-1-grpo", "stage-2-grpo"):
        selection = json.loads((out / stage / "acetemp_selection.json").read_text())
        chosen = selection["temperature"]
        assert chosen in {row["temperature"] for row in selection["table"]}
        state = TrainerState.load_from_json(str(out / stage / "checkpoint-1" / "trainer_state.json"))
        assert state.log_history[0]["acetemp/temperature"] == chosen  # trained at the selected T
        assert state.stateful_callbacks["EntropyTargetCallback"]["attributes"]["temperature"] == chosen


def test_binding_to_a_trainer_without_rollouts_is_refused():
    with pytest.raises(TypeError, match="GRPO-based"):
        EntropyTargetCallback().bind(object())
    with pytest.raises(ValueError, match="t_min"):
        EntropyTargetCallback(t_min=1.3)
