"""Every registered reward (built-in or third-party, found through the registry, so a new reward is covered without
editing this file) is fuzzed the way GRPOTrainer calls it: garbage completions, garbage dataset columns, mismatched
lengths and missing columns, each call under a hang guard.

The contract checked per call: no exception, no call past `HANG_S`, and a list with one finite float or None per
completion, 0.0 for a completion that holds no text. Two refusals are allowed: `RewardSetupError` naming a column that
is missing, not a list, of another length than the completions, or optional and validated for the whole batch (a
garbled completion is never refused), and the sandbox's `SandboxUnavailableError` from a reward that runs generated
code where the jail cannot be set up. The bound is a hang guard, not a performance assertion.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trl_ext.plugin.registry import ALLOW_LIST_ENV, BLOCK_LIST_ENV, Registry
from trl_ext.rewards import RewardSetupError, completion_text

try:  # where the jail for generated code cannot be set up, a reward that runs code refuses with this (documented)
    from trl_ext.rewards.sandbox import SandboxUnavailableError  # type: ignore[attr-defined]
except ImportError:  # no such refusal: every reward must answer
    SandboxUnavailableError = None

HANG_S = 20  # generous: every call below takes milliseconds once parsing is capped and linear
MB = 1 << 20

# Options that change how a reward parses, fuzzed besides the defaults (a reward missing here is fuzzed with its
# defaults only).
EXTRA_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "tool_call_reward": [{"strict_parsing": True}],
    "json_content": [{"task": "gsm8k_json"}, {"task": "recipe"}],
    "rlstruct": [{"task": "gsm8k_json"}, {"task": "recipe"}],
    "tldr_length_regularized_reward": [{"gate_on_correct": False, "eos_token_ids": [2], "max_completion_length": 2}],
    "conmax_confidence": [{"require_span": False}],  # the whole completion is scored by the auxiliary model
    "ra_tool_call_reward": [{"tool_tag": "function_call", "name_weight": 0.0}],
    "ra_answer_reward": [{"answer_sim": "embedding"}],  # the built-in sentence encoder
    "onco_months_reward": [{"month_scale": 24}],
    "onco_rationale_reward": [{"rationale_metric": "embedding"}],
    "vgrp_solve_reward": [{"verifier": "official"}, {"gated": False}],
    "vgrp_perception_reward": [{"verifier": "official"}],
    "vgrp_format_reward": [{"verifier": "official"}],
    "vgrp_reward": [{"verifier": "official"}],
}

SCHEMA = json.dumps({"reasoning": "str", "answer": "number", "meta?": {"source": "str"}})
TOOLS = json.dumps(
    [{"type": "function", "function": {"name": "search", "parameters": {"properties": {"query": {}, "k": {}}}}}]
)
# A value each known dataset column holds in a well-formed row; a column no entry names gets a short string.
GOOD_COLUMN_VALUES: dict[str, Any] = {
    "schema": SCHEMA,
    "gold": '{"reasoning": "add", "answer": 5}',
    "tools": TOOLS,
    "gold_call": "search(query='love', k='3')",
    "task": "generic",
    "demo_action": "",
    "target_sql": "SELECT 1",
    "db_id": "shop",  # builtin:text2sql's database, created on first use
    "reference_explanation": "5 = 2 + 3 because adding 3 to 2 gives 5.",
    "answer": "B",  # semgrpo (a letter), tldr (any text: an unmatched answer scores 0)
    "solution": "<answer>A</answer>",  # clsrl, videorft
    "problem_type": "multiple choice",  # videorft
    "length_level": "short",
    "query": "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "trace": "3 + 4 = 7. Wait, let me verify that: 3 + 4 = 7. Let me double-check: 7 - 4 = 3. " * 4
    + "The answer is 7.",
    "gold_type": "tool",
    "gold_tool_name": "search",
    "gold_tool_args": '{"query": "love", "k": 3}',
    "gold_answer": "love",
    "survival_status": "1:DECEASED",
    "survival_months": ">60",
    "expert_cot": "Stage IV: distant metastases, the highest risk.",
    "init_board": "[[1,0,0,4],[0,4,1,0],[2,0,0,3],[0,3,0,0]]",
    "game": "sudoku",
    "side_info": "{}",
    "action_mapping": '{"1": "Up", "2": "Down", "3": "Left", "4": "Right"}',  # debunk_sft
    "actions": [1],
    "card_values": [11, 3, 4, 13],
}
# Options a reward cannot be built without (it refuses at build time); merged into every options set it is fuzzed with.
REQUIRED_OPTIONS: dict[str, dict[str, Any]] = {
    # An existing folder passes the build-time check; it is never loaded (the fuzzed rows have no visual column).
    "vrft_semantic_reward": {"encoder_name_or_path": str(Path(__file__).parent)},
    # π_sft = π_pt: the built-in model (loaded once per process, as conmax_confidence's scorer); rewards are 0.0.
    "self_reward_log_ratio": {"sft_model_name_or_path": "smollm2-135m", "base_model_name_or_path": "smollm2-135m"},
}
# Optional columns a reward reads when present; fuzzed like its required ones.
OPTIONAL_COLUMNS = ("task", "demo_action")
GOOD_COMPLETION = '{"reasoning": "add", "answer": 5} search(query=\'love\', k=\'3\')'


def _deep(depth: int) -> Any:
    """A list nested `depth` deep, built without recursion."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _deep_messages(depth: int) -> list[dict[str, Any]]:
    content: Any = "x"
    for _ in range(depth):
        content = {"content": content}
    return [{"role": "assistant", "content": content}]


# Not text: each must score exactly 0.0.
NOT_TEXT: dict[str, Any] = {
    "none": None,
    "zero": 0,
    "negative_int": -7,
    "big_int": 10**400,
    "float": 3.5,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "bool": True,
    "bytes": b'{"answer": 5}',
    "bytearray": bytearray(b"x" * 1000),
    "dict": {"role": "assistant", "content": "a bare message"},
    "empty_dict": {},
    "list_of_strings": ["a", "b"],
    "list_of_ints": [1, 2],
    "list_of_lists": [["nested"]],
    "nested_100k": _deep(100_000),
    "set": {"a"},
    "tuple": ("a",),
    "object": object(),
    "message_content_int": [{"role": "assistant", "content": 5}],
    "message_content_bytes": [{"role": "assistant", "content": b"x"}],
    "message_content_nested": _deep_messages(1000),
    "message_content_dict": [{"role": "assistant", "content": {"text": "x"}}],
    "message_then_string": [{"role": "assistant", "content": "x"}, "not a message"],
}
# Text (or a conversation holding text), garbage for any parser: each must give a finite float or None.
TEXT: dict[str, Any] = {
    "empty": "",
    "space": " ",
    "control": "\x00\x01\x7f",
    "lone_surrogate": "\ud800",
    "surrogate_in_json": '{"answer": "\ud800", "reasoning": "\udfff"}',
    "emoji": "🙂" * 1000,
    "digits_1mb": "7" * MB,
    "braces_1mb": "{" * MB,
    "brackets_1mb": "[" * MB,
    "brackets_100k": "[" * 100_000,
    "balanced_100k": "[" * 100_000 + "]" * 100_000,
    "objects_100k": '{"a":' * 100_000,
    "tool_call_tags_1mb": "<tool_call>" * (MB // 11),
    "quotes_1mb": '"' * MB,
    "backslashes_1mb": "\\" * MB,
    "parens_1mb": "(" * MB,
    "calls_1mb": "f(" * (MB // 2),
    "word_1mb": "a" * MB,
    "word_then_paren": "a" * MB + "(",
    "args_1mb": "f(" + "a='b', " * (MB // 7),
    "fences_1mb": "```" * (MB // 3),
    "fenced_braces": "```json\n" + "{" * MB + "\n```",
    "json_big_int": '{"answer": ' + "1" * MB + "}",
    "json_big_int_string": '{"answer": "' + "1" * MB + '"}',
    "json_big_float": '{"answer": 1' + "0" * 400 + ".5}",
    "json_nan": '{"answer": NaN, "reasoning": Infinity}',
    "json_duplicate_keys": '{"answer": 1, "answer": 2}',
    "json_huge_object": json.dumps({f"k{i}": i for i in range(50_000)}),
    "json_deep_valid": '{"answer": ' + "[" * 900 + "]" * 900 + "}",
    "python_deep_call": "search(query=" + "(" * 5000 + "1" + ")" * 5000 + ")",
    "python_big_int_call": "search(query=" + "9" * 10_000 + ")",
    "repeated_good": GOOD_COMPLETION * 5000,
    "conversation_none": [{"role": "assistant", "content": None}],
    "conversation_missing_content": [{"role": "assistant"}],
    "conversation_empty": [],
    "conversation_user_only": [{"role": "user", "content": "{}"}],
    "conversation_parts": [{"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": "{" * MB}]}],
    "conversation_1mb": [{"role": "assistant", "content": "[" * MB}],
    "conversation_many": [{"role": "assistant", "content": "{"}] * 10_000,
}
# Values a dataset column may hold in one row of a badly built dataset.
COLUMN_GARBAGE: dict[str, Any] = {
    "none": None,
    "int": 5,
    "nan": math.nan,
    "bytes": b"x",
    "empty_string": "",
    "not_json": "{not json",
    "list_of_strings": ["a", "b"],
    "list_of_dicts": [{"name": 1}, {"function": None}],
    "dict_of_garbage": {"a": "decimal", "b": None, "c": [1]},
    "digits_1mb": "1" * MB,
    "brackets_1mb": "[" * MB,
    "nested_100k": _deep(100_000),
    "json_nested_100k": "[" * 100_000 + "]" * 100_000,
    "lone_surrogate": "\ud800",
    "word_1mb": "a" * MB,
}


@dataclass
class Case:
    """One call: its keyword arguments, the number of completions, and what it garbles."""

    name: str
    kwargs: dict[str, Any]
    n: int
    not_text: list[bool]  # per completion: it holds no text, so it must score 0.0
    refusable: tuple[str, ...] = ()  # columns a RewardSetupError may name


@dataclass
class Outcome:
    calls: int = 0
    slowest: tuple[float, str] = (0.0, "")
    failures: list[str] = field(default_factory=list)


def _rewards() -> list[tuple[str, Any, dict[str, Any]]]:
    """(id, record, options) of every reward in a registry loaded from all installed entry points."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ALLOW_LIST_ENV, raising=False)
        mp.delenv(BLOCK_LIST_ENV, raising=False)
        registry = Registry().load_entry_points()
    builds = []
    for record in registry.components("reward"):
        for extra in [{}, *EXTRA_OPTIONS.get(record.name, [])]:
            options = {**REQUIRED_OPTIONS.get(record.name, {}), **extra}
            label = ",".join(f"{k}={v}" for k, v in options.items())
            builds.append((f"{record.name}[{label}]" if label else record.name, record, options))
    return builds


REWARDS = _rewards()


def _good_columns(columns: tuple[str, ...], n: int) -> dict[str, list[Any]]:
    return {name: [GOOD_COLUMN_VALUES.get(name, "x")] * n for name in columns}


def _cases(required: tuple[str, ...]) -> Iterator[Case]:
    """Every call made on a reward that reads the dataset columns `required`."""
    trainer = {"trainer_state": None, "log_metric": lambda name, value: None, "log_extra": lambda name, values: None}
    columns = tuple(required) + tuple(c for c in OPTIONAL_COLUMNS if c not in required)

    def call(completions: list[Any], cols: dict[str, Any]) -> dict[str, Any]:
        n = len(completions)
        return {"prompts": ["p"] * n, "completions": completions, "completion_ids": [[1, 2]] * n, **cols, **trainer}

    # Each garbage completion alone, then all of them in one batch (a garbage item must not spoil its neighbours).
    for name, value in {**NOT_TEXT, **TEXT}.items():
        yield Case(f"completion={name}", call([value], _good_columns(columns, 1)), 1, [name in NOT_TEXT])
    batch = [*NOT_TEXT.values(), *TEXT.values(), GOOD_COMPLETION]
    flags = [True] * len(NOT_TEXT) + [False] * (len(TEXT) + 1)
    yield Case("completion=all_in_one_batch", call(batch, _good_columns(columns, len(batch))), len(batch), flags)

    # Each garbage value in each column the reward reads, with a well-formed completion; then all in one batch.
    # A required column's garbage is scored per row; an optional one (`task`) may be refused for the batch.
    for col in columns:
        refusable = (col,) if col not in required else ()
        for name, value in COLUMN_GARBAGE.items():
            cols = {**_good_columns(columns, 2), col: [value, GOOD_COLUMN_VALUES.get(col, "x")]}
            yield Case(f"{col}={name}", call([GOOD_COMPLETION] * 2, cols), 2, [False, False], refusable)
        garbage = list(COLUMN_GARBAGE.values())
        cols = {**_good_columns(columns, len(garbage)), col: garbage}
        n = len(garbage)
        yield Case(f"{col}=all_in_one_batch", call([GOOD_COMPLETION] * n, cols), n, [False] * n, refusable)

    # The batch's shape: empty, mismatched lengths, odd trainer arguments, extra columns.
    good = _good_columns(columns, 3)
    three = [GOOD_COMPLETION, None, "{"]
    three_not_text = [completion_text(c) is None for c in three]
    yield Case("empty_batch", call([], _good_columns(columns, 0)), 0, [])
    for name, change in {
        "prompts_shorter": {"prompts": ["p"]},
        "prompts_none": {"prompts": None},
        "prompts_garbage": {"prompts": [None, 5, {"a": [b"x"]}]},
        "completion_ids_garbage": {"completion_ids": "ids"},
        "completion_ids_longer": {"completion_ids": [[1]] * 7},
        "trainer_arguments_garbage": {"trainer_state": 5, "log_extra": 5, "log_metric": 5},
        "extra_columns_garbage": {"extra": [None, b"x", _deep(100_000)]},
        "extra_column_other_length": {"extra": [1]},
    }.items():
        yield Case(name, {**call(three, good), **change}, 3, three_not_text)
    # A column the reward reads that is missing, of another length, or not a list: refused naming it, or scored.
    for col in columns:
        missing = call(three, good)
        del missing[col]
        yield Case(f"{col}_missing", missing, 3, three_not_text, (col,))
        for label, value in {
            "shorter": good[col][:1],
            "longer": good[col] * 2,
            "not_a_list": GOOD_COLUMN_VALUES.get(col, "x"),
            "none": None,
            "int": 5,
        }.items():
            yield Case(f"{col}_{label}", {**call(three, good), col: value}, 3, three_not_text, (col,))


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so a reward's own `except Exception` guard cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no answer within {HANG_S} s")


def _check(reward: Any, case: Case) -> str | None:
    """Call `reward` on `case` under the hang guard; the problem, or None when the call kept the contract."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_S)
    try:
        out = reward(**case.kwargs)
        if inspect.isawaitable(out):  # an `async def` reward: GRPOTrainer awaits it
            out = asyncio.run(out)
    except RewardSetupError as exc:
        named = [c for c in case.refusable if repr(c) in str(exc)]
        return None if named else f"RewardSetupError not naming one of {case.refusable}: {exc}"
    except Hang as exc:
        return f"hang: {exc}"
    except BaseException as exc:  # noqa: BLE001 - anything a reward raises is the failure reported
        if SandboxUnavailableError is not None and isinstance(exc, SandboxUnavailableError):
            return None
        return f"raised {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if not isinstance(out, list) or len(out) != case.n:
        return f"returned {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}, not {case.n}"
    bad = [v for v in out if not (v is None or (type(v) is float and math.isfinite(v)))]
    if bad:
        return f"returned values that are not finite floats or None: {bad[:3]!r}"
    nonzero = [i for i, (v, flag) in enumerate(zip(out, case.not_text, strict=True)) if flag and v != 0.0]
    if nonzero:
        return f"items {nonzero[:5]} hold no text but scored {[out[i] for i in nonzero[:5]]}"
    return None


def fuzz(record: Any, options: dict[str, Any]) -> Outcome:
    """Every case on `record` built with `options`."""
    outcome = Outcome()
    reward = record.build(**options)
    for case in _cases(tuple(record.required_columns)):
        start = time.perf_counter()
        problem = _check(reward, case)
        elapsed = time.perf_counter() - start
        outcome.calls += 1
        outcome.slowest = max(outcome.slowest, (elapsed, case.name))
        if problem:
            outcome.failures.append(f"{case.name}: {problem}")
    return outcome


def test_the_registry_holds_the_rewards_we_ship():
    names = {record.name for _, record, _ in REWARDS}
    assert {"json_validity", "json_format", "json_structure", "json_content", "rlstruct", "tool_call_reward"} <= names


@pytest.mark.parametrize("record, options", [(r, o) for _, r, o in REWARDS], ids=[i for i, _, _ in REWARDS])
def test_reward_never_raises_never_hangs(record, options):
    outcome = fuzz(record, options)
    assert outcome.calls > 100
    assert outcome.failures == [], "\n".join(outcome.failures)
