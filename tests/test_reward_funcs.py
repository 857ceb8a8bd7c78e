"""`trl grpo`'s reward flags in `trl-ext train`: TRL's built-in rewards, dotted paths to the user's own functions and
reward models, in one namespace with trl-ext's registered rewards, and a name that resolves to none refused before
the model loads."""

import importlib.util
import json
import sys
import textwrap

import pytest

from trl_ext.cli import main
from trl_ext.rewards.resolve import TRL_PLUGIN, USER_PLUGIN, columns_read, resolve_reward
from trl_ext.run.arguments import parse_stage
from trl_ext.testing import tiny_grpo_flags

GRPO_FLAGS = tiny_grpo_flags()

# The user's module, as `trl grpo` users write it: a plain function, one that reads a column, and a factory.
# `my_reward` appends one line per call (how many completions it scored) so a test sees it was called.
MY_MODULE = """
    from pathlib import Path

    CALLS = Path(__file__).with_name("calls.jsonl")


    def my_reward(completions, **kwargs):
        with CALLS.open("a") as f:
            f.write(str(len(completions)) + "\\n")
        return [0.25] * len(completions)


    def needs_gold(completions, gold, **kwargs):
        return [0.0] * len(completions)


    def make_reward(scale=1.0):
        def scaled(completions, **kwargs):
            return [scale] * len(completions)

        return scaled


    NOT_A_FUNCTION = 3
"""


@pytest.fixture
def my_module(tmp_path, monkeypatch):
    """`my_module.py` in the current directory, importable as `trl grpo` makes it; forgotten after the test."""
    (tmp_path / "my_module.py").write_text(textwrap.dedent(MY_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the resolver's cwd entry is undone
    sys.modules.pop("my_module", None)
    yield tmp_path / "calls.jsonl"
    sys.modules.pop("my_module", None)


def train_grpo(tiny_model_dir, out, *flags):
    return main(
        ["train", "grpo", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), *GRPO_FLAGS, *flags]
    )


def logged(out):
    """The metrics of the one logged step, from the checkpoint's trainer state (full floats, not the progress bar)."""
    state = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())
    return next(entry for entry in state["log_history"] if "reward" in entry)


SAVE_STEP = ["--save_strategy", "steps", "--save_steps", "1"]


def test_dotted_path_reward_trains_and_is_called(tiny_model_dir, tmp_path, my_module):
    out = tmp_path / "run"
    assert train_grpo(tiny_model_dir, out, "--reward_funcs", "my_module.my_reward") == 0
    assert (out / "model.safetensors").exists()
    # One generation batch: per_device_train_batch_size 2 = one prompt x num_generations 2.
    assert my_module.read_text().split() == ["2"]
    card = (out / "README.md").read_text()
    assert "`reward:my_module.my_reward`" in card and "- my_module.my_reward" in card  # components and recipe


def test_trl_accuracy_reward_trains(tiny_model_dir, tmp_path):
    data = tmp_path / "math.jsonl"
    rows = [
        {"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "solution": f"${2 * i}$"} for i in range(4)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "run"
    code = train_grpo(
        tiny_model_dir, out, "--dataset_name", str(data), "--reward_funcs", "accuracy_reward", *SAVE_STEP
    )
    assert code == 0
    metrics = logged(out)
    # Every gold solution parses, so TRL's accuracy_reward scores each completion 0 or 1 (None would skip it).
    assert metrics["rewards/accuracy_reward/mean"] in (0.0, 0.5, 1.0)
    assert "`reward:accuracy_reward`" in (out / "README.md").read_text()


def test_registered_and_dotted_rewards_share_the_weights_in_order(tiny_model_dir, tmp_path, my_module):
    out = tmp_path / "run"
    code = train_grpo(
        tiny_model_dir,
        out,
        "--dataset_name",
        "builtin:json_extract",
        "--rewards",
        "json_validity",
        "--reward_funcs",
        "my_module.my_reward",
        "--reward_weights",
        "1",
        "2",
        *SAVE_STEP,
    )
    assert code == 0
    metrics = logged(out)
    validity = metrics["rewards/json_validity_reward/mean"]  # 0, 0.5 or 1 over two completions
    assert metrics["rewards/my_reward/mean"] == pytest.approx(0.25)
    # --rewards first, then --reward_funcs: weight 1 on json_validity, 2 on my_reward. Swapped weights would give
    # 2 * validity + 0.25, equal only for validity 0.25, which two 0/1 scores cannot average to.
    assert metrics["reward"] == pytest.approx(1 * validity + 2 * 0.25)


def test_reward_model_folder_comes_first_as_in_trl(tiny_model_dir, tmp_path, my_module):
    out = tmp_path / "run"
    code = train_grpo(
        tiny_model_dir,
        out,
        "--reward_model_name_or_path",
        tiny_model_dir,
        "--reward_funcs",
        "my_module.my_reward",
        "--reward_weights",
        "0",
        "1",
        *SAVE_STEP,
    )
    assert code == 0
    metrics = logged(out)
    model_rewards = [key for key in metrics if key.startswith("rewards/") and key.endswith("/mean")]
    assert len(model_rewards) == 2  # the sequence classifier's score and my_reward
    # Weight 0 on the reward model, 1 on my_reward: the total is my_reward's constant.
    assert metrics["reward"] == pytest.approx(0.25)


def test_unknown_reward_names_the_three_kinds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "grpo", "--reward_funcs", "no_such_reward", "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Unknown reward 'no_such_reward'" in err
    assert "trl-ext registered reward" in err and "json_validity" in err
    assert "TRL built-in reward" in err and "accuracy_reward" in err and "think_format_reward" in err
    assert "dotted path module.function" in err
    assert "Traceback" not in err and not out.exists()


def test_rewards_flag_offers_close_matches_across_namespaces(tmp_path, capsys):
    assert main(["train", "grpo", "--rewards", "accuracy_rewrd", "--output_dir", str(tmp_path / "x")]) == 2
    assert "Did you mean: accuracy_reward" in capsys.readouterr().err


def test_dotted_path_to_a_missing_attribute(tmp_path, my_module, capsys):
    assert main(["train", "grpo", "--reward_funcs", "my_module.no_such", "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "attribute 'no_such' not found in module 'my_module'" in err
    assert "it defines: make_reward, my_reward, needs_gold" in err  # the module's functions, imports left out
    assert "TRL built-in reward" in err


def test_dotted_path_to_a_missing_module(tmp_path, my_module, capsys):
    assert main(["train", "grpo", "--rewards", "no_such_module.fn", "--output_dir", str(tmp_path / "x")]) == 2
    assert "module 'no_such_module' not found in the current directory" in capsys.readouterr().err


def test_dotted_path_to_something_not_callable(tmp_path, my_module, capsys):
    assert main(["train", "grpo", "--reward_funcs", "my_module.NOT_A_FUNCTION", "--output_dir", str(tmp_path)]) == 2
    assert "is a int, not a function" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--reward_model_name_or_path", "--reward_funcs"])
def test_missing_reward_model_folder_refused(tmp_path, capsys, flag):
    missing = tmp_path / "no_rm"
    assert main(["train", "grpo", flag, str(missing), "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"Reward model folder {str(missing)!r} does not exist" in err


def test_reward_model_folder_without_config_refused(tmp_path, capsys):
    (tmp_path / "rm").mkdir()
    flags = ["--reward_model_name_or_path", str(tmp_path / "rm"), "--output_dir", str(tmp_path / "x")]
    assert main(["train", "grpo", *flags]) == 2
    assert "has no config.json" in capsys.readouterr().err


def test_hub_reward_model_id_is_passed_through_unloaded():
    record = resolve_reward("some-org/some-reward-model")
    assert record.plugin == USER_PLUGIN and record.build() == "some-org/some-reward-model"


def test_column_a_dotted_reward_reads_is_checked_before_the_model_loads(tiny_model_dir, tmp_path, my_module, capsys):
    out = tmp_path / "run"
    assert train_grpo(tiny_model_dir, out, "--reward_funcs", "my_module.needs_gold") == 2
    err = capsys.readouterr().err
    assert "lacks column(s) 'gold'" in err and "my_module.needs_gold" in err
    assert not out.exists()


def test_columns_read_from_a_reward_signature():
    def reward(prompts, completions, solution, completion_ids, trainer_state, hint=None, *, task, **kwargs):
        return []

    assert columns_read(reward) == ("solution", "task")
    assert columns_read(len) == ()  # a builtin without a signature reads nothing we can know


def test_dotted_path_with_options_is_a_factory(my_module):
    record = resolve_reward("my_module.make_reward", {"scale": 3.0})
    assert record.build(scale=3.0)(completions=["a", "b"]) == [3.0, 3.0]
    plain = resolve_reward("my_module.my_reward")
    assert plain.build().__name__ == "my_reward"


def test_trl_factory_takes_trl_grpo_defaults_and_options():
    record = resolve_reward("get_soft_overlong_punishment")
    assert record.plugin == TRL_PLUGIN
    # TRL's Eq. 13 with L_max=1280, L_cache=256: 1100 tokens are 76 past 1024, so -76/256.
    default = record.build()
    assert default(completion_ids=[[0] * 1100]) == [pytest.approx(-76 / 256)]
    short = record.build(max_completion_len=10, soft_punish_cache=4)
    assert short(completion_ids=[[0] * 8, [0] * 11]) == [pytest.approx(-2 / 4), -1.0]


def test_registered_name_wins_over_the_other_kinds():
    record = resolve_reward("json_validity")
    assert record.plugin == "rlstruct" and record.paper is not None


def test_accuracy_reward_without_math_verify_refused(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "math_verify" else real(name, *a)
    )
    assert main(["train", "grpo", "--reward_funcs", "accuracy_reward", "--output_dir", str(tmp_path / "x")]) == 2
    assert "pip install math-verify" in capsys.readouterr().err


def test_reward_funcs_in_a_recipe_and_refused_for_sft(tmp_path, capsys):
    stage = parse_stage("grpo", ["--output_dir", str(tmp_path / "a")], {"reward_funcs": ["think_format_reward"]})
    assert [(record.name, record.plugin) for record in stage.components] == [("think_format_reward", TRL_PLUGIN)]
    assert stage.asked["reward_funcs"] == ["think_format_reward"]
    assert main(["train", "sft", "--reward_funcs", "think_format_reward", "--output_dir", str(tmp_path / "b")]) == 2
    assert "only apply to methods whose trainer takes rewards" in capsys.readouterr().err
