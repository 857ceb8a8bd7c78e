"""`dialogues_to_turns`: multi-turn tool-use dialogues (OpenAI messages) -> one GRPO row per assistant turn.

Each row's `prompt` is the gold dialogue up to that turn (no multi-turn rollout is needed: the history is the gold
one), with the tool schemas and the action format rendered into the system message (SmolLM2 and most small models
have no tool template; the same text is used at training and evaluation). Gold columns: `gold_type` ("tool" or
"answer"), `gold_tool_name`, `gold_tool_args` (JSON string), `gold_answer`. History calls are written as the policy
is asked to write them: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.

Token budget: GRPO in TRL 1.16 never truncates prompts, so a prompt is bounded by `max_prompt_chars` (default 4,000
characters, about 1,000 SmolLM2/Qwen tokens at ~4 characters per token): the oldest history turns are dropped (the
system message and the turn's own user message are kept) and a row still over budget is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from trl_ext.data.messages import message_calls

TOOL_ROLES = ("tool", "function")
THINK_INSTRUCTION = (
    "First think step by step inside <think>...</think>. Then either call exactly one tool by writing "
    '<{tag}>{{"name": "<tool name>", "arguments": {{...}}}}</{tag}> or, when no tool is needed, reply to the user in '
    "plain text."
)
DIRECT_INSTRUCTION = (
    'Either call exactly one tool by writing <{tag}>{{"name": "<tool name>", "arguments": {{...}}}}</{tag}> or, when '
    "no tool is needed, reply to the user in plain text."
)
DEFAULT_MAX_PROMPT_CHARS = 4000


def render_call(name: str, arguments: dict[str, Any], tool_tag: str = "tool_call") -> str:
    return f"<{tool_tag}>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + f"</{tool_tag}>"


def render_tools(tools: Any) -> str:
    """One line per tool: `- name(param: type, ...): description` from OpenAI function schemas (a list or its JSON)."""
    if isinstance(tools, str):
        tools = json.loads(tools) if tools.strip() else []
    lines = []
    for tool in tools or []:
        spec = tool.get("function", tool)
        properties = (spec.get("parameters") or {}).get("properties") or {}
        params = ", ".join(f"{p}: {(s or {}).get('type', 'any')}" for p, s in properties.items())
        lines.append(f"- {spec['name']}({params}): {spec.get('description', '')}".rstrip(": "))
    return "\n".join(lines)


def system_message(tools: Any, thinking: bool = True, tool_tag: str = "tool_call", extra: str = "") -> dict[str, str]:
    instruction = (THINK_INSTRUCTION if thinking else DIRECT_INSTRUCTION).format(tag=tool_tag)
    listing = render_tools(tools)
    parts = [extra.strip(), "You are an assistant that can call tools." + (f"\nTools:\n{listing}" if listing else "")]
    return {"role": "system", "content": "\n\n".join([p for p in parts if p] + [instruction])}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else json.dumps(content)


def _plain(message: dict[str, Any], tool_tag: str) -> dict[str, str]:
    role = message.get("role") or "user"
    if role == "assistant":
        calls = message_calls(message)
        if calls:
            return {"role": role, "content": "\n".join(render_call(n, a, tool_tag) for n, a in calls)}
    return {"role": "tool" if role in TOOL_ROLES else role, "content": _text(message.get("content"))}


def _fit(system: dict[str, str], history: list[dict[str, str]], max_chars: int) -> list[dict[str, str]] | None:
    """System + the longest suffix of `history` within `max_chars` characters that starts at a user message, else
    None."""
    size = len(system["content"])
    start = len(history)
    for index in range(len(history) - 1, -1, -1):
        size += len(history[index]["content"])
        if size > max_chars:
            break
        if history[index]["role"] == "user":
            start = index
    if start == len(history):
        return None
    return [system, *history[start:]]


def dialogue_turns(
    messages: list[dict[str, Any]],
    tools: Any = None,
    thinking: bool = True,
    tool_tag: str = "tool_call",
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    with_completion: bool = False,
) -> list[dict[str, Any]]:
    """One dialogue -> one row per assistant turn (see the module docstring). An assistant turn with several calls
    is graded on its first; the dialogue's own system message is kept before the rendered tool list."""
    extra = ""
    if messages and messages[0].get("role") == "system":
        extra, messages = _text(messages[0].get("content")), messages[1:]
    system = system_message(tools, thinking, tool_tag, extra)
    rows, history = [], []
    for message in messages:
        plain = _plain(message, tool_tag)
        if plain["role"] == "assistant":
            calls = message_calls(message)
            prompt = _fit(system, history, max_prompt_chars)
            if prompt is not None:
                name, args = calls[0] if calls else ("", {})
                row = {
                    "prompt": prompt,
                    "gold_type": "tool" if calls else "answer",
                    "gold_tool_name": name,
                    "gold_tool_args": json.dumps(args, ensure_ascii=False) if calls else "",
                    "gold_answer": "" if calls else plain["content"],
                }
                if with_completion:
                    row["completion"] = [{"role": "assistant", "content": plain["content"]}]
                rows.append(row)
        history.append(plain)
    return rows


def make_dialogues_to_turns(
    messages_column: str = "messages",
    tools_column: str = "tools",
    thinking: bool = True,
    tool_tag: str = "tool_call",
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    with_completion: bool = False,
) -> Callable:
    """Registry factory: `fn(dataset) -> dataset` of per-turn rows (a batched map that drops the other columns)."""
    if not isinstance(max_prompt_chars, int) or isinstance(max_prompt_chars, bool) or max_prompt_chars <= 0:
        raise ValueError(f"dialogues_to_turns: max_prompt_chars={max_prompt_chars!r} must be a positive integer")
    thinking, with_completion = _flag(thinking, "thinking"), _flag(with_completion, "with_completion")
    keys = ["prompt", "gold_type", "gold_tool_name", "gold_tool_args", "gold_answer"]
    keys += ["completion"] if with_completion else []

    def split_batch(batch: dict[str, list]) -> dict[str, list]:
        tools = batch.get(tools_column) or [None] * len(batch[messages_column])
        rows = [
            row
            for messages, row_tools in zip(batch[messages_column], tools, strict=True)
            for row in dialogue_turns(messages, row_tools, thinking, tool_tag, max_prompt_chars, with_completion)
        ]
        return {key: [row[key] for row in rows] for key in keys}

    def apply(dataset):
        if messages_column not in (dataset.column_names or []):
            raise ValueError(
                f"dialogues_to_turns needs a {messages_column!r} column of conversations; the dataset has "
                f"{dataset.column_names}"
            )
        return dataset.map(split_batch, batched=True, remove_columns=dataset.column_names, desc="dialogues_to_turns")

    return apply


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"dialogues_to_turns: {name}={value!r} must be true or false")
    return value
