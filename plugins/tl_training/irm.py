"""IRM (error-category reward): a graded reward of a generated tool call against the gold call, as
`test_answer_for_reward(..., "tool_code")` in the official `code/irm/dschat/rlhf/ppo_trainer.py`.

parse failure -2; predicted name not an available tool (and not empty) -2; name != gold -1.5; then, with
hal = predicted argument names outside the tool's parameters, red = a predicted argument the gold call lacks but the
schema has, miss = a gold argument the prediction lacks: hal & red & miss -1.8; hal & (red | miss) -1.3;
red & miss -1.0; hal -0.8; red | miss -0.5; argument values differ -0.25; exact 1.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from trl_ext.rewards import RewardFunction, Scored, cap_text

from .pkt import tool_names

CALL_PATTERN = r"(.*?)\(([\s\S]*?)\)"  # official: name = text before the first "(", args up to the first ")"
ARG_PATTERN = r"(\w+)\s*=\s*'([^']*)'"  # official: only single-quoted values are seen
# ARG_PATTERN's matches, found in linear time: a match never starts inside a word (the rest of the word leads to the
# same "=" or to none), and without `(?<!\w)` findall retries every suffix of a long word (quadratic).
_ARGS = re.compile(r"(?<!\w)" + ARG_PATTERN)
# Any quote style, for strict parsing of arguments that are not Python; `(?<!\w)` as in _ARGS.
_ANY_QUOTE_ARG = re.compile(r"""(?<!\w)(\w+)\s*=\s*(?:'([^']*)'|"((?:[^"\\]|\\.)*)"|([^,\s)]+))""")

_NAME_START = re.compile(r"[A-Za-z_]")

REWARDS: dict[str, float] = {
    "exact": 1.0,
    "wrong_value": -0.25,
    "redundant_or_missing": -0.5,
    "hallucinated": -0.8,
    "redundant_and_missing": -1.0,
    "hallucinated_and_redundant_or_missing": -1.3,
    "wrong_tool": -1.5,
    "hallucinated_redundant_missing": -1.8,
    "unknown_tool": -2.0,
    "parse_failure": -2.0,
}


class ParseError(ValueError):
    pass


def tool_params(tools: Any) -> dict[str, list[str]]:
    """{tool name: parameter names} from a `tools` value (JSON string or list of schemas)."""
    if tools is None:
        return {}
    if isinstance(tools, str):
        tools = json.loads(tools)
    out = {}
    for tool in tools:
        spec = tool.get("function", tool)
        out[spec["name"]] = list(((spec.get("parameters") or {}).get("properties") or {}).keys())
    return out


def _official_parse(text: str) -> tuple[str, dict[str, str]]:
    """`re.search(CALL_PATTERN, text)` found in linear time. The regex backtracks cubically on text with many "(" and
    no ")" (1,000 characters of "f(" take 30 s), yet its first match is always: the first "(", its line up to it as the
    name (`.` stops at a newline), and the text up to the next ")" as the arguments (none if no ")" follows)."""
    open_index = text.find("(")
    close_index = text.find(")", open_index + 1) if open_index >= 0 else -1
    if close_index < 0:
        raise ParseError(text)
    line_start = text.rfind("\n", 0, open_index) + 1
    return text[line_start:open_index].strip(), dict(_ARGS.findall(text[open_index + 1 : close_index]))


def _closing_paren(text: str, open_index: int) -> int:
    depth, quote, i = 0, None, open_index
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ParseError(text)


def _name_before(text: str, open_index: int) -> str:
    """The name `re.search(r"([A-Za-z_][\w.]*)?\s*\(", text)` finds before the first "(" at `open_index`, in linear
    time (the regex retries every suffix of a long word run, quadratic): the identifier that the whitespace before
    the "(" follows, from its first ASCII letter or "_", or "" when there is none."""
    end = len(text[:open_index].rstrip())
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    first = _NAME_START.search(text, start, end)
    return text[first.start() : end] if first else ""


def _strict_parse(text: str) -> tuple[str, dict[str, str]]:
    """Name = the identifier right before the first "(", arguments up to the matching ")", parsed as a Python call
    (single or double quotes, numbers, JSON-style literals), values compared in a canonical JSON form."""
    open_index = text.find("(")
    if open_index < 0:
        raise ParseError(text)
    name = _name_before(text, open_index)
    inner = text[open_index + 1 : _closing_paren(text, open_index)]
    try:
        call = ast.parse(f"f({inner})", mode="eval").body
    except (SyntaxError, ValueError):  # not Python (a null byte is a ValueError before Python 3.12)
        args = {m.group(1): next(g for g in m.groups()[1:] if g is not None) for m in _ANY_QUOTE_ARG.finditer(inner)}
    else:
        args = {}
        for keyword in call.keywords:  # type: ignore[attr-defined]
            if keyword.arg is None:
                raise ParseError(text)
            try:
                value = ast.literal_eval(keyword.value)
            except ValueError:
                value = ast.unparse(keyword.value)
            args[keyword.arg] = value
    return name, {k: json.dumps(v, sort_keys=True, default=str) for k, v in args.items()}


# What a call that does not parse raises (the last two: nesting deeper than the parser takes).
PARSE_FAILURES = (ParseError, AttributeError, IndexError, RecursionError, MemoryError)


def parse_call(text: str, strict_parsing: bool = False) -> tuple[str, dict[str, str]]:
    """(tool name, arguments) of a call by the official parsing or the strict one; raises one of `PARSE_FAILURES`."""
    return (_strict_parse if strict_parsing else _official_parse)(text)


def score_call(
    prediction: str,
    gold: str,
    functions: Sequence[str],
    params: dict[str, list[str]],
    demo_action: str = "",
    strict_parsing: bool = False,
) -> tuple[float, str]:
    """(reward, category) of one predicted call. `demo_action` is the official's text after the last "Assistant:"
    of the prompt: empty (the usual case) checks hallucination/redundancy against the predicted tool's parameters;
    otherwise against `demo_action`'s only when it names an available tool, else both checks are off."""
    try:
        predicted, expected = parse_call(prediction, strict_parsing), parse_call(gold, strict_parsing)
    except PARSE_FAILURES:
        return REWARDS["parse_failure"], "parse_failure"
    return score_parsed(predicted, expected, functions, params, demo_action)


def score_parsed(
    predicted: tuple[str, dict[str, str]],
    expected: tuple[str, dict[str, str]],
    functions: Sequence[str],
    params: dict[str, list[str]],
    demo_action: str = "",
) -> tuple[float, str]:
    """`score_call` on calls already parsed (`parse_call`)."""
    (pred_action, pred_args), (gold_action, gold_args) = predicted, expected
    if pred_action not in functions and pred_action != "":
        return REWARDS["unknown_tool"], "unknown_tool"
    if pred_action != gold_action:
        return REWARDS["wrong_tool"], "wrong_tool"
    schema_tool = pred_action if demo_action == "" else demo_action
    if schema_tool in params:
        schema = set(params[schema_tool])
        hal = not set(pred_args) <= schema
        red = any(k not in gold_args and k in schema for k in pred_args)
    else:
        hal = red = False
    miss = any(k not in pred_args for k in gold_args)
    if hal and red and miss:
        category = "hallucinated_redundant_missing"
    elif hal and (red or miss):
        category = "hallucinated_and_redundant_or_missing"
    elif red and miss:
        category = "redundant_and_missing"
    elif hal:
        category = "hallucinated"
    elif red or miss:
        category = "redundant_or_missing"
    elif pred_args != gold_args:
        category = "wrong_value"
    else:
        category = "exact"
    return REWARDS[category], category


class ToolCallReward(RewardFunction):
    """TRL reward function: IRM's score of each completion's tool call against the row's `gold_call`, with the
    tools of the row's `tools`; an optional `demo_action` column is honoured. Logs `irm/frac_<category>`.

    Bounded cost: the completion and the gold call are read up to `max_chars` (8,192) characters each and parsed in
    linear time; a call nested deeper than Python's parser takes is a parse failure."""

    name = "tool_call_reward"  # TRL logs the mean as rewards/tool_call_reward/mean
    columns = ("tools", "gold_call")
    # A call is short: 8k characters are ample, and Python's parser (strict parsing) reads them in milliseconds.
    max_chars = 8192

    def __init__(self, strict_parsing: bool = False):
        self.strict_parsing = bool(strict_parsing)

    def score(
        self, completion: str, tools: Any = None, gold_call: Any = None, demo_action: Any = None, **row: Any
    ) -> Scored:
        try:  # a row whose gold call does not parse or whose tools do not load: not applicable (ours; the
            # official code scores it parse_failure, as if the completion were garbage)
            functions, params = tool_names(tools), tool_params(tools)
            expected = parse_call(cap_text(gold_call, self.max_chars), self.strict_parsing)
        except (*PARSE_FAILURES, TypeError, ValueError, KeyError):
            return Scored(None, {"irm/gold_error_rate": 1.0})
        try:
            predicted = parse_call(completion, self.strict_parsing)
        except PARSE_FAILURES:
            reward, category = REWARDS["parse_failure"], "parse_failure"
        else:
            reward, category = score_parsed(predicted, expected, functions, params, demo_action or "")
        return Scored(reward, {**{f"irm/frac_{n}": float(n == category) for n in REWARDS}, "irm/gold_error_rate": 0.0})


# The card's reward function with the official parsing, importable directly (TRL style).
tool_call_reward = ToolCallReward()
