"""The reward toolkit (trl_ext.rewards): completion text, columns, names, garbage-proof scoring, async rewards. Expected
values are worked out by hand in the comments."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import pickle

import pytest
from trl.trainer.utils import get_callable_name, is_async_callable

import trl_ext_plugins.rlstruct as rlstruct
import trl_ext_plugins.tl_training as tl_training
from trl_ext.plugin.registry import Registry
from trl_ext.rewards import (
    DEFAULT_MAX_CHARS,
    AsyncRewardFunction,
    RewardFunction,
    Scored,
    column,
    completion_text,
    log_metric,
    reward_function,
    reward_name,
)

# Not completions at all: each must score 0.0 and never reach a reward's own scoring.
NOT_TEXT = [
    None,
    0,
    3.5,
    float("nan"),
    True,
    b"bytes",
    {"role": "assistant", "content": "a bare message"},
    [["nested"]],
    [1, 2],
    [{"role": "assistant", "content": 5}],
    [{"role": "assistant", "content": b"x"}],
    object(),
]
# Text, but garbage for any parser: each must give a float or None, without raising.
GARBAGE_TEXT = [
    "",
    " ",
    "\x00\x01",
    "{",
    '{"a": 1',
    "[" * 5000,
    '{"a":' * 3000,
    "```json\n" + "`" * 3000,
    "f(" * 20_000,  # cubic for the official IRM call regex
    '{"answer": "' + "1" * 1_000_000 + 'x"}',  # quadratic for a split-digit number regex
    "a" * 1_000_000,
    "x" * (1 << 20),  # 1 MB
    "NaN",
    '{"answer": NaN}',
    '{"a": 1, "a": 2}',
    "search(query='love')" * 1000,
    "🙂" * 1000,
    "\ud800",
    [],
    [{"role": "assistant", "content": None, "tool_calls": [{"name": "f"}]}],
    [{"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": "{}"}]}],
]


# --- completion_text ------------------------------------------------------------------------------------------------
def test_completion_text_standard_and_conversational():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text([{"content": "no role"}]) == "no role"  # TRL's own docs omit the role
    # A tool loop: assistant turns joined by a newline; the tool's message is not the model's text.
    turns = [
        {"role": "assistant", "content": "", "tool_calls": [{"name": "f"}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "The answer is 42."},
        {"role": "assistant", "content": [{"type": "text", "text": "Done"}, {"type": "text", "text": "."}]},
    ]
    assert completion_text(turns) == "The answer is 42.\nDone."
    assert completion_text([]) == ""
    assert completion_text([{"role": "assistant", "content": None}]) == ""


@pytest.mark.parametrize("completion", NOT_TEXT, ids=lambda c: type(c).__name__)
def test_completion_text_of_non_completions_is_none(completion):
    assert completion_text(completion) is None


# --- columns, metrics, names ----------------------------------------------------------------------------------------
def test_column_errors_name_the_reward_and_the_column():
    assert column({"gold": (1, 2)}, "gold", "my_reward", 2) == [1, 2]
    with pytest.raises(ValueError, match=r"reward 'my_reward' needs the dataset column 'gold'.*columns: schema"):
        column({"schema": [1], "log_metric": print}, "gold", "my_reward")
    with pytest.raises(ValueError, match=r"'my_reward': column 'gold' has 1 values for 2 completions"):
        column({"gold": [1]}, "gold", "my_reward", 2)
    with pytest.raises(ValueError, match="column 'gold' must be a list, got str"):
        column({"gold": "abc"}, "gold", "my_reward")


def test_log_metric_helper():
    logged = []
    log_metric({"log_metric": lambda name, value: logged.append((name, value))}, "x/rate", 1)
    log_metric({}, "x/rate", 2)  # outside a trainer: nothing to log to, no error
    assert logged == [("x/rate", 1.0)] and isinstance(logged[0][1], float)


def test_reward_names_fold_options():
    assert reward_name("json_format", {}) == "json_format"
    assert reward_name("json_format", {"strict": True}) == "json_format_strict"
    assert reward_name("json_format", {"strict": False}) == "json_format_no_strict"
    assert reward_name("r", {"task": "gsm8k_json", "tol": 0.5}) == "r_task-gsm8k_json_tol-0.5"
    assert reward_name("r", {"weights": {"format": 0.25}}) == "r_weights-format-0.25"
    # Long options become a 10-character hash: still different for different options, equal for equal ones.
    long_a, long_b = {"weights": {f"k{i}": i for i in range(20)}}, {"weights": {f"k{i}": i + 1 for i in range(20)}}
    name_a = reward_name("r", long_a)
    assert len(name_a) == len("r_") + 10 and name_a != reward_name("r", long_b) == reward_name("r", dict(long_b))


class Length(RewardFunction):
    """len(text): shows exactly what the toolkit hands to `score`."""

    name = "length"

    def __init__(self, scale: float = 1.0, max_chars: int | None = DEFAULT_MAX_CHARS):
        self.scale = scale
        self.max_chars = max_chars

    def score(self, completion, **row):
        return self.scale * len(completion)


def test_builds_with_different_options_get_different_names_in_trl():
    plain, halved, halved_again = Length.from_options(), Length.from_options(scale=0.5), Length.from_options(scale=0.5)
    names = [get_callable_name(r) for r in (plain, halved, halved_again)]  # how GRPOTrainer names reward metrics
    assert names == ["length", "length_scale-0.5", "length_scale-0.5"]
    assert Length(scale=0.5).__name__ == "length"  # built directly, no options folded
    assert pickle.loads(pickle.dumps(halved)).__name__ == "length_scale-0.5"


# --- scoring: garbage, raising items, None, the cap ------------------------------------------------------------------
def test_the_text_is_capped_by_construction():
    huge = "x" * (1 << 20)
    assert Length(max_chars=10)(completions=[huge, "abc"]) == [10.0, 3.0]
    assert Length()(completions=[huge]) == [float(DEFAULT_MAX_CHARS)]
    assert Length(max_chars=None)(completions=[huge]) == [float(1 << 20)]


def test_non_text_scores_zero_and_never_reaches_score():
    # 0.0 for every non-completion; "abc" keeps its 3.0, and the empty conversation scores len("") = 0.
    out = Length()(prompts=None, completions=[*NOT_TEXT, "abc", []])
    assert out == [0.0] * len(NOT_TEXT) + [3.0, 0.0]
    assert Length()(completions=None) == [] and Length()(completions="not a list") == []


@reward_function(name="picky", columns=("gold",))
def picky(completion: str, gold=None, **row):
    """None when the row has no gold (not applicable); raises on "boom"; else 1 if the text equals the gold."""
    if completion == "boom":
        raise RuntimeError("cannot score this")
    if gold is None:
        return None
    return float(completion == gold)


def test_a_raising_item_scores_zero_without_spoiling_its_neighbours(caplog):
    completions = ["a", "boom", "b", "boom", "c"]
    golds = ["a", "x", "x", "x", None]
    with caplog.at_level(logging.WARNING, logger="trl_ext.rewards.toolkit"):
        assert picky(prompts=["p"] * 5, completions=completions, gold=golds) == [1.0, 0.0, 0.0, 0.0, None]
        assert picky(prompts=["p"], completions=["boom"], gold=["x"]) == [0.0]
    warnings = [r for r in caplog.records if "cannot score this" in r.getMessage()]
    assert len(warnings) == 1 and "'picky'" in warnings[0].getMessage()  # once per reward, not per item


def test_missing_column_is_a_setup_error_naming_reward_and_column():
    with pytest.raises(ValueError, match="reward 'picky' needs the dataset column 'gold'"):
        picky(prompts=["p"], completions=["a"], task=["t"])
    with pytest.raises(ValueError, match="'picky': column 'gold' has 2 values for 1 completions"):
        picky(prompts=["p"], completions=["a"], gold=["a", "b"])


@reward_function()
def echo_row(completion: str, **row):
    """The number of row fields besides prompt and completion_ids, to show what reaches `score`."""
    assert row["prompt"] == "p" and row["completion_ids"] == [7]
    return len(set(row) - {"prompt", "completion_ids"})


def test_rows_hold_the_dataset_columns_and_not_trainer_arguments():
    out = echo_row(
        prompts=["p"],
        completions=["x"],
        completion_ids=[[7]],
        gold=["g"],
        task=["t"],
        trainer_state=object(),
        log_metric=lambda *a: None,
        log_extra=lambda *a: None,
    )
    assert out == [2.0]  # gold and task
    assert echo_row.__name__ == "echo_row"


@reward_function(name="odd")
def odd_values(completion: str, **row):
    return {"inf": math.inf, "nan": math.nan, "true": True, "str": "1.0", "int": 3}[completion]


def test_scores_that_are_not_finite_numbers_are_garbage():
    # inf/nan would poison GRPO's advantages and "1.0" is not a number: 0.0; bool and int are numbers.
    assert odd_values(completions=["inf", "nan", "true", "str", "int"]) == [0.0, 0.0, 1.0, 0.0, 3.0]


class Rated(RewardFunction):
    name = "rated"

    def score(self, completion, **row):
        return Scored(None if completion == "n/a" else 1.0, {"rated/long_rate": float(len(completion) > 3)})


def test_scored_metrics_are_logged_as_batch_means():
    logged = {}
    out = Rated()(completions=["long text", "abc", "n/a", None], log_metric=logged.__setitem__)
    # long: 1, 0, 0 and nothing for the non-text item (counted as 0): 1/4.
    assert out == [1.0, 1.0, None, 0.0] and logged == {"rated/long_rate": 0.25}


# --- async rewards --------------------------------------------------------------------------------------------------
class Judge(AsyncRewardFunction):
    """Each item waits until every item of the batch has started: scored one by one, it would never finish."""

    name = "judge"

    def __init__(self, n: int):
        self.n = n

    async def score(self, completion, **row):
        self.started = getattr(self, "started", 0) + 1
        if self.started == self.n:
            self.all_started.set()
        await self.all_started.wait()
        if completion == "boom":
            raise RuntimeError("judge failed")
        return None if completion == "skip" else float(len(completion))

    async def run(self, **kwargs):
        self.all_started = asyncio.Event()
        return await asyncio.wait_for(self(**kwargs), timeout=30)  # a deadlock guard, not a timing assertion


def test_async_rewards_are_gathered_concurrently_and_guarded():
    judge = Judge(n=4)  # the non-text item never reaches score
    assert is_async_callable(judge) and not is_async_callable(Length())  # how GRPOTrainer sorts them
    out = asyncio.run(judge.run(prompts=["p"] * 5, completions=["ab", "boom", "skip", 7, "abcd"]))
    assert out == [2.0, 0.0, None, 0.0, 4.0]


@reward_function(name="async_len")
async def async_len(completion: str, **row):
    await asyncio.sleep(0)
    return float(len(completion))


def test_async_function_rewards_and_their_options():
    assert is_async_callable(async_len) and get_callable_name(async_len) == "async_len"
    assert asyncio.run(async_len(prompts=["p", "p"], completions=["abc", None])) == [3.0, 0.0]
    clone = pickle.loads(pickle.dumps(async_len))
    assert clone is async_len  # pickled by its module-level name


def test_async_reward_in_a_real_grpo_step(tiny_model_dir, tmp_path):
    """TRL's own call path: GRPOTrainer awaits the async reward and logs each built reward under its own name."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    dataset = Dataset.from_list([{"prompt": f"Say {i}:", "gold": "x"} for i in range(2)])
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        bf16=False,
    )
    constant = ConstantReward.from_options(value=0.5)
    trainer = GRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=[AsyncConstant(), constant, ConstantReward.from_options(value=0.25)],
        args=args,
        train_dataset=dataset,
    )
    trainer.train()
    logs = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert logs["rewards/async_constant/mean"] == 1.0
    assert logs["rewards/constant_value-0.5/mean"] == 0.5 and logs["rewards/constant_value-0.25/mean"] == 0.25
    assert logs["async_constant/seen_gold"] == 1.0  # its own metric, through TRL's log_metric


class ConstantReward(RewardFunction):
    name = "constant"

    def __init__(self, value: float = 1.0):
        self.value = value

    def score(self, completion, **row):
        return self.value


class AsyncConstant(AsyncRewardFunction):
    name = "async_constant"
    columns = ("gold",)

    async def score(self, completion, gold=None, **row):
        await asyncio.sleep(0)
        return Scored(1.0, {"async_constant/seen_gold": float(gold == "x")})


# --- every built-in reward survives garbage -------------------------------------------------------------------------
def _builtin_rewards():
    registry = Registry()
    for module, name in ((rlstruct, "rlstruct"), (tl_training, "tl_training")):
        assert registry.add_plugin(module, name).status == "ok"
    builds = []
    for record in registry.components("reward"):
        builds.append((record, {}))
        if record.name == "tool_call_reward":
            builds.append((record, {"strict_parsing": True}))
        if record.name in ("json_content", "rlstruct"):
            builds.append((record, {"task": "gsm8k_json"}))
    return builds


SCHEMA = json.dumps({"reasoning": "str", "answer": "number"})
TOOLS = json.dumps([{"type": "function", "function": {"name": "search", "parameters": {"properties": {"query": {}}}}}])
# Good and bad column values alike: a malformed row is scored 0.0, it does not stop the batch.
COLUMN_VALUES = {
    "schema": [SCHEMA, None, 3, "{not json", {"a": "decimal"}],
    "gold": ['{"answer": 5}', None, 5, "[]", {"answer": "x"}],
    "tools": [TOOLS, None, "not json", 7, [{"name": 1}]],
    "gold_call": ["search(query='love')", None, "", 5, "f("],
}


@pytest.mark.parametrize("record, options", _builtin_rewards(), ids=lambda x: getattr(x, "name", str(x)))
def test_builtin_rewards_return_floats_or_none_for_garbage(record, options):
    reward = record.build(**options)
    completions = NOT_TEXT + GARBAGE_TEXT + ['{"reasoning": "r", "answer": 5}', "search(query='love')"]
    n = len(completions)
    assert n >= 20
    columns = {name: [COLUMN_VALUES[name][i % 5] for i in range(n)] for name in record.required_columns}
    logged = {}
    out = reward(prompts=["p"] * n, completions=completions, log_metric=logged.__setitem__, **columns)
    assert len(out) == n and all(v is None or (type(v) is float and math.isfinite(v)) for v in out)
    assert out[: len(NOT_TEXT)] == [0.0] * len(NOT_TEXT)
    assert all(type(v) is float for v in logged.values())


def test_per_row_and_take_rows_split_a_batch_and_pass_batch_values_through():
    from trl_ext.rewards import per_row, take_rows

    assert per_row(["a", "b"], 2) == ["a", "b"]
    assert per_row(("a", "b"), 2) == ["a", "b"]
    assert per_row("ab", 2) == [None, None]  # a string is not a column
    assert per_row(["a"], 2) == [None, None]  # the wrong length is not this batch's column
    assert per_row(None, 3) == [None, None, None]
    state = object()
    assert take_rows(["a", "b", "c"], [2, 0], 3) == ["c", "a"]
    assert take_rows(state, [0], 3) is state
    assert take_rows(["a", "b"], [0], 3) == ["a", "b"]  # not a per-row column of this batch: unchanged
