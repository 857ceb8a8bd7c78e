"""`example_length`: a GRPO reward with TRL's reward-function signature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def completion_text(completion: Any) -> str | None:
    """The text of a completion: a string, or the content of the last message of a conversational one (None content
    counts as empty); None for anything else, which scores 0.0 (a reward must never raise on a bad completion: it
    would stop the training run)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        if not completion:
            return ""
        last = completion[-1]
        if not isinstance(last, dict):
            return None
        content = last.get("content")
        if content is None:
            return ""
        return content if isinstance(content, str) else None
    return None


def length_reward(min_chars: int = 1, max_chars: int = 200) -> Callable[..., list[float]]:
    """1.0 for a completion of `min_chars` to `max_chars` characters (both inclusive), else 0.0 (also for anything
    that is not a completion: None, numbers, bytes, a message whose content is not text)."""
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 0:
        raise ValueError(f"min_chars={min_chars!r} must be an integer >= 0.")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < min_chars:
        raise ValueError(f"max_chars={max_chars!r} must be an integer >= min_chars ({min_chars}).")

    def example_length(prompts, completions, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions] if isinstance(completions, (list, tuple)) else []
        return [1.0 if text is not None and min_chars <= len(text) <= max_chars else 0.0 for text in texts]

    return example_length
