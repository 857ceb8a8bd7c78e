"""MAE (mitigating adverse effects): split tool-use trajectories into one sample per assistant turn and drop the turns
whose tool call failed, as `data_split` in the official `code/mae/mae.py` (Junjie-Ye/TL-Training).

Per assistant turn k: if a next message exists and it is not a tool output, the turn is skipped; if the tool output
contains an error marker, the turn is skipped; otherwise the sample is messages[:k+1], trained on turn k only
(here: `prompt` = messages[:k], `completion` = [messages[k]]). The final turn is always kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.data.messages import message_calls

# The official list, verbatim (matched after `normalise`, so "'error'" catches any output containing "error").
DEFAULT_ERROR_MARKERS: tuple[str, ...] = (
    "is not defined",
    "positional argument",
    "unexpected keyword",
    "'related_searches'",
    "ConnectionError",
    '"error":',
    "not supported",
    "Invalid API call",
    "Response error",
    "Object of type SerpResults is not JSON serializable",
    "400 Client Error",
    "'error'",
    "slice indices must be integers or None or have an __index__ method",
    "connection error",
)
TOOL_ROLES = ("function", "tool")
# Official `sentence_extraction`: keep CJK, ASCII letters and digits (and '^', an artefact of the character class),
# then lower-case.
_NOT_KEPT = re.compile("[^\u4e00-\u9fa5^a-z^A-Z^0-9]")


def normalise(text: str) -> str:
    return _NOT_KEPT.sub("", text).lower()


def render_call(message: dict[str, Any]) -> str:
    """An assistant message as the training target. Structured calls (`tool_calls` / `function_call`) become the
    official format `name(arg1="v1", arg2=...)` with JSON-dumped values; plain content is kept as it is."""
    calls = message_calls(message)
    if not calls:
        return message.get("content") or ""
    rendered = []
    for name, args in calls:
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        rendered.append(f"{name}({inner})")
    return "\n".join(rendered)


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else json.dumps(content)


def _plain(message: dict[str, Any]) -> dict[str, str]:
    role = message["role"]
    return {"role": role, "content": render_call(message) if role == "assistant" else _content(message)}


def tl_mae_split(
    example: dict[str, Any],
    error_markers: Sequence[str] = DEFAULT_ERROR_MARKERS,
    drop_errors: bool = True,
    messages_column: str = "messages",
    tool_roles: Sequence[str] = TOOL_ROLES,
) -> list[dict[str, Any]]:
    """One trajectory -> its per-turn samples (card: MAE). Other columns of the row are copied to every sample;
    `turn` is the 1-based index of the assistant turn, as in the official sample ids."""
    messages = [_plain(m) for m in example[messages_column]]
    markers = [normalise(m) for m in error_markers] if drop_errors else []
    rest = {k: v for k, v in example.items() if k != messages_column}
    samples, turn = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        turn += 1
        if index != len(messages) - 1:
            following = messages[index + 1]
            if following["role"] not in tool_roles:
                continue
            output = normalise(following["content"])
            if any(marker in output for marker in markers):
                continue
        samples.append({**rest, "prompt": messages[:index], "completion": [message], "turn": turn})
    return samples


def make_mae_transform(
    error_markers: Sequence[str] | str | None = None,
    drop_errors: bool = True,
    messages_column: str = "messages",
    num_proc: int | None = None,
) -> Callable:
    """Registry factory: `fn(dataset) -> dataset` of per-turn prompt-completion samples (a batched map).
    `error_markers` may be a list or a '|'-separated string; default: the official list."""
    if error_markers is None:
        markers: tuple[str, ...] = DEFAULT_ERROR_MARKERS
    elif isinstance(error_markers, str):
        markers = tuple(m for m in error_markers.split("|") if m)
    else:
        markers = tuple(error_markers)

    def split_batch(batch: dict[str, list]) -> dict[str, list]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        samples = [s for row in rows for s in tl_mae_split(row, markers, drop_errors, messages_column)]
        keys = [k for k in batch if k != messages_column] + ["prompt", "completion", "turn"]
        return {key: [s[key] for s in samples] for key in dict.fromkeys(keys)}

    def apply(dataset):
        if messages_column not in (dataset.column_names or []):
            raise ValueError(
                f"tl_mae_split needs a {messages_column!r} column of conversations; the dataset has "
                f"{dataset.column_names}"
            )
        return dataset.map(
            split_batch, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc="MAE split"
        )

    return apply
