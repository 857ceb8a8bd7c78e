"""Figures a callback adds in on_log reach the trackers (reporters run after it) and the trainer's log history."""

from types import SimpleNamespace

from transformers import TrainerCallback, TrainerState
from transformers.integrations import TensorBoardCallback, WandbCallback
from transformers.trainer_callback import DefaultFlowCallback, ProgressCallback

from trl_ext.training.log_figures import add_to_log, is_reporter, log_before_reporters


class Adds(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        add_to_log(state, logs, {"plugin/figure": 1.5})


class Records(TrainerCallback):
    """Stands in for a tracker: what it receives is what wandb/tensorboard would get."""

    def __init__(self):
        self.seen = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.seen.append(dict(logs))


def _reporter(kind):
    return object.__new__(kind)  # the reporters' __init__ needs their package installed; the type is what counts


def test_plugin_callbacks_move_ahead_of_the_reporters_in_their_order():
    flow, progress = DefaultFlowCallback(), ProgressCallback()
    wandb, board = _reporter(WandbCallback), _reporter(TensorBoardCallback)
    first, second = Adds(), Records()
    handler = SimpleNamespace(callbacks=[flow, wandb, board, first, second, progress])  # as Trainer.__init__ builds it
    log_before_reporters(SimpleNamespace(callback_handler=handler))
    assert handler.callbacks == [flow, first, second, wandb, board, progress]
    assert is_reporter(wandb) and is_reporter(TensorBoardCallback) and not is_reporter(first)


def test_without_reporters_nothing_moves():
    callbacks = [DefaultFlowCallback(), Adds(), ProgressCallback()]
    handler = SimpleNamespace(callbacks=list(callbacks))
    log_before_reporters(SimpleNamespace(callback_handler=handler))
    assert handler.callbacks == callbacks


def test_add_to_log_reaches_later_callbacks_and_this_steps_history_only():
    state = TrainerState()
    state.global_step = 3
    state.log_history = [{"loss": 2.0, "step": 2}, {"loss": 1.0, "step": 3}]  # Trainer.log appended step 3's copy
    logs = {"loss": 1.0}
    recorder = Records()
    for callback in (Adds(), recorder):  # the order log_before_reporters makes
        callback.on_log(None, state, None, logs=logs)
    assert recorder.seen == [{"loss": 1.0, "plugin/figure": 1.5}]
    assert state.log_history == [{"loss": 2.0, "step": 2}, {"loss": 1.0, "step": 3, "plugin/figure": 1.5}]
    state.global_step = 4  # a log call whose copy is not in the history (an evaluation's): history untouched
    add_to_log(state, {}, {"x": 1})
    assert "x" not in state.log_history[-1]
    add_to_log(state, None, {"x": 1})  # no logs: nothing to do, no error


def test_trl_ext_train_builds_trainers_with_its_callbacks_before_the_reporters(tiny_model_dir, monkeypatch, tmp_path):
    """Through the real stage builder: a reporter in report_to ends up after the stage's callbacks."""
    import trl_ext.run.stage as stage_module
    from trl_ext.run.arguments import parse_stage

    monkeypatch.setattr("transformers.trainer.get_reporting_integration_callbacks", lambda report_to: [Records])
    monkeypatch.setattr("trl_ext.training.log_figures.INTEGRATION_TO_CALLBACK", {"fake": Records})
    stage = parse_stage(
        "sft",
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:arith",
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "1",
            "--callbacks",
            "peft_budget",
            "--report_to",
            "none",
        ],
        {},
        first=True,
    )
    trainer, _ = stage_module.build_trainer(stage, stage_module.load_checked_dataset(stage))
    names = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert names.index("PeftBudgetCallback") < names.index("Records")
