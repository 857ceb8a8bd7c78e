"""The RA-Synergy scores as pure functions (the paper card's Algorithm section; the formulas and weights are ours, as
the paper's were not recoverable).

A completion is `<think>…</think>` followed by either one `<tool_call>{"name": …, "arguments": {…}}</tool_call>`
(Qwen3's convention) or a natural-language answer. Every parse is linear in the completion's length: tags are found
with `str.find`, the call's JSON with the C parser (too deep a nesting is invalid JSON, not an error).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from trl_ext.rewards.similarity import token_f1

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ACTION_TYPES = ("tool", "answer")


@dataclass(frozen=True)
class ParsedTurn:
    """What one completion holds. `type` is "tool" when a tool-call tag opens after the reasoning, "answer" when
    non-empty text follows it without one, None otherwise (empty). `call` is the first call's (name, arguments) when
    its JSON is valid, else None."""

    think: str | None
    type: str | None
    call: tuple[str, dict[str, Any]] | None
    answer: str
    well_formed: bool


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON constant {name}")


def parse_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of a tool call's JSON `{"name": str, "arguments": {...}}` (arguments may also be a JSON string
    holding an object, as OpenAI writes them), or None when it is not one."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
        if isinstance(obj, dict) and isinstance(obj.get("arguments"), str):
            obj["arguments"] = json.loads(obj["arguments"], parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("arguments"), dict):
        return None
    return obj["name"].strip(), obj["arguments"]


def parse_turn(completion: str, tool_tag: str = "tool_call") -> ParsedTurn:
    """Split a completion into its reasoning and its action (see `ParsedTurn`). The action is read after the first
    `</think>`, or from the whole text when there is none (a model that does not think still acts)."""
    open_tag, close_tag = f"<{tool_tag}>", f"</{tool_tag}>"
    think_start = completion.find(THINK_OPEN)
    think_end = completion.find(THINK_CLOSE, think_start + len(THINK_OPEN)) if think_start >= 0 else -1
    think = completion[think_start + len(THINK_OPEN) : think_end] if think_end >= 0 else None
    rest = completion[think_end + len(THINK_CLOSE) :] if think_end >= 0 else completion

    call_start = rest.find(open_tag)
    if call_start >= 0:
        call_end = rest.find(close_tag, call_start + len(open_tag))
        body = rest[call_start + len(open_tag) : call_end] if call_end >= 0 else None
        call = parse_call(body) if body is not None else None
        only_call = (
            call is not None and not rest[:call_start].strip() and not rest[call_end + len(close_tag) :].strip()
        )
        kind, answer = "tool", ""
    else:
        call, only_call = None, False
        answer = rest.strip()
        kind = "answer" if answer else None

    # R_fmt: exactly one think span, nothing before it, then exactly one valid call and nothing else, or non-empty
    # answer text holding no tag of ours.
    single_think = (
        think is not None
        and not completion[:think_start].strip()
        and completion.count(THINK_OPEN) == 1
        and completion.count(THINK_CLOSE) == 1
    )
    if kind == "tool":
        action_ok = only_call and rest.count(open_tag) == 1 and rest.count(close_tag) == 1
    else:
        action_ok = kind == "answer" and close_tag not in rest
    return ParsedTurn(think, kind, call, answer, bool(single_think and action_ok))


# --- argument comparison ---------------------------------------------------------------------------------------------
def normalize_value(value: Any) -> Any:
    """A hashable, type-aware canonical form of an argument value: strings strip + casefold; numbers (not booleans)
    as float; booleans and null as themselves; lists and objects as canonical JSON of their normalised items.
    A numeric string stays a string: "1" and 1 differ (a schema-validated tool rejects a string for a number)."""
    if isinstance(value, str):
        return ("str", value.strip().casefold())
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, (int, float)):
        number = float(value)
        return ("num", number if math.isfinite(number) else repr(number))
    return ("json", json.dumps(_canonical(value), sort_keys=True))


def _canonical(value: Any) -> Any:
    # Iterative over containers would be faster still; JSON from the C parser is at most ~1k levels deep here.
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return list(normalize_value(value))


def argument_f1(predicted: dict[str, Any], gold: dict[str, Any]) -> float:
    """ArgF1: F1 over the (key, normalised value) pairs of the predicted and gold arguments; both empty -> 1."""
    pred = {(str(k), normalize_value(v)) for k, v in predicted.items()}
    ref = {(str(k), normalize_value(v)) for k, v in gold.items()}
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


# --- the four components ---------------------------------------------------------------------------------------------
def gold_type_of(value: Any) -> str | None:
    """The row's gold action type ("tool" / "answer", any case and surrounding space), or None when it is neither."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if value in ACTION_TYPES else None


def load_gold_args(value: Any) -> dict[str, Any] | None:
    """The gold arguments from `gold_tool_args` (a JSON object string, a dict, or empty/None for none), else None."""
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if not isinstance(value, str):
        return None
    try:
        obj = json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def r_format(turn: ParsedTurn) -> float:
    return float(turn.well_formed)


def r_type(turn: ParsedTurn, gold_type: Any) -> float:
    gold = gold_type_of(gold_type)
    return float(gold is not None and turn.type == gold)


def r_tool(turn: ParsedTurn, gold_type: Any, gold_name: Any, gold_args: Any, name_weight: float = 0.5) -> float:
    """0 unless the gold is a tool call and the completion makes a valid one; else
    name_weight·1[name == n*] + (1 − name_weight)·ArgF1, ArgF1 counted as 0 when the name is wrong."""
    if gold_type_of(gold_type) != "tool" or turn.type != "tool" or turn.call is None or not isinstance(gold_name, str):
        return 0.0
    args = load_gold_args(gold_args)
    if args is None:
        return 0.0
    name, predicted = turn.call
    if name != gold_name.strip():
        return 0.0
    return name_weight + (1.0 - name_weight) * argument_f1(predicted, args)


def r_answer(turn: ParsedTurn, gold_type: Any, gold_answer: Any) -> float:
    """0 unless the gold is an answer and the completion answers; else token F1 of the answer against t*."""
    if gold_type_of(gold_type) != "answer" or turn.type != "answer" or not isinstance(gold_answer, str):
        return 0.0
    return token_f1(turn.answer, gold_answer)
