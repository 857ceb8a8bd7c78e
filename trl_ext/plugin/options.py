"""Reading a component's options, which arrive typed from a spec or YAML, or as text from a Python caller."""

from __future__ import annotations

from typing import Any


def as_bool(value: Any) -> bool:
    """An option's truth: a YAML/typed bool as it is, text "1"/"true"/"yes" (any case) as True, other text False
    (a component option may arrive typed from a spec or as text from a Python caller)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)
