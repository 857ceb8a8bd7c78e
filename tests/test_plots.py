"""PNG plots of figures over steps (trl_ext.evaluation.plots) and the one every evaluation callback leaves."""

import math
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from trl_ext.evaluation.callback import GenerationEvalCallback
from trl_ext.evaluation.plots import PlotUnavailableError, plot_over_steps, series_from_log


def test_series_from_log_keeps_finite_numbers_in_step_order_and_the_last_value_of_a_step():
    log = [
        {"loss": 2.0, "step": 2},
        {"acc": 0.25, "step": 2},
        {"acc": float("nan"), "step": 3},
        {"acc": "n/a", "step": 4},
        {"acc": True, "step": 5},
        {"acc": 0.5, "step": 1},
        {"acc": 0.75, "step": 2},  # logged again at step 2: the later value wins
        {"acc": 1.0},  # no step
    ]
    assert series_from_log(log, "acc") == [(1.0, 0.5), (2.0, 0.75)]
    assert series_from_log(log, "missing") == []


def test_plot_over_steps_writes_a_png_of_the_set_size(tmp_path):
    path = plot_over_steps({"sft": [(0, 0.1), (10, 0.3)], "asft": [(0, 0.1), (10, 0.4)]}, tmp_path / "a" / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(path).size == (640, 400)


def test_plot_over_steps_refuses_empty_series_and_names_the_extra_without_matplotlib(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="every series is empty"):
        plot_over_steps({"a": []}, tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(PlotUnavailableError, match=r"trl-ext\[eval\]"):
        plot_over_steps({"a": [(0, 1.0)]}, tmp_path / "x.png")


class _Counting(GenerationEvalCallback):
    label = "counting"

    def __init__(self):
        super().__init__(every_n_steps=2)
        self.calls = 0

    def evaluate(self, model, tokenizer):
        self.calls += 1
        return {"score": self.calls / 4, "words": float("nan")}


def test_an_evaluation_callback_plots_its_figures_when_training_ends(tmp_path):
    callback = _Counting()
    state = SimpleNamespace(global_step=0, is_world_process_zero=True, log_history=[])
    args = SimpleNamespace(output_dir=str(tmp_path))
    model = SimpleNamespace(training=True, train=lambda mode: None)
    for step in range(1, 6):
        state.global_step = step
        callback.on_step_end(args, state, None, model=model, processing_class=object())
    callback.on_train_end(args, state, None, model=model, processing_class=object())
    assert [h["step"] for h in callback.history] == [2, 4, 5]  # every 2 steps, then once at the end
    assert [h["score"] for h in callback.history] == [0.25, 0.5, 0.75]
    assert all(math.isnan(h["words"]) for h in callback.history)  # kept in history, left out of the plot
    png = tmp_path / "plots" / "counting.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
