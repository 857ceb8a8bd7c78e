"""Chat messages in the OpenAI format, read the same way by every tool-use plugin: the structured calls of an
assistant message (`tool_calls`, or the older single `function_call`)."""

from __future__ import annotations

import json
from typing import Any


def message_calls(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each structured call of an assistant message, in order; [] for a message without any.
    A call is `{"function": {"name", "arguments"}}` (or the function dict itself); `arguments` is a dict or its JSON
    string (OpenAI's), empty or missing meaning none. Malformed arguments raise ValueError (json.JSONDecodeError)."""
    calls = message.get("tool_calls") or (
        [{"function": message["function_call"]}] if message.get("function_call") else []
    )
    out = []
    for call in calls:
        function = call.get("function", call)
        args = function.get("arguments") or {}
        args = json.loads(args) if isinstance(args, str) else args
        out.append((function["name"], args))
    return out
