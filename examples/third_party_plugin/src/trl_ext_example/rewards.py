"""`example_length`: a GRPO reward with TRL's reward-function signature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the content of the last message of a conversational one."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return str(completion[-1].get("content") or "") if completion else ""
    raise TypeError(f"A completion is a string or a list of messages, got {type(completion).__name__}")


def length_reward(min_chars: int = 1, max_chars: int = 200) -> Callable[..., list[float]]:
    """1.0 for a completion of `min_chars` to `max_chars` characters (both inclusive), else 0.0."""
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 0:
        raise ValueError(f"min_chars={min_chars!r} must be an integer >= 0.")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < min_chars:
        raise ValueError(f"max_chars={max_chars!r} must be an integer >= min_chars ({min_chars}).")

    def example_length(prompts, completions, **kwargs) -> list[float]:
        return [1.0 if min_chars <= len(completion_text(c)) <= max_chars else 0.0 for c in completions]

    return example_length
