"""Parsing of component specs: `NAME[:key=value[:key=value]]` on the command line, strings or mappings in YAML.

A value holding `:` or `,` (a URL, a path with a drive, a list) is quoted, `judge:url='http://host:8000'`, or
bracketed, `mix:weights=[0.5,0.5]`: separators inside quotes or brackets do not split."""

from __future__ import annotations

from typing import Any

import yaml


class SpecError(ValueError):
    pass


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def split_outside(text: str, separator: str) -> list[str]:
    """`text` split at `separator`, except inside quotes ('...' or "...") and brackets ([], {}, ())."""
    parts, current, quote, depth = [], [], None, 0
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote:
        raise SpecError(f"Unclosed quote {quote} in {text!r}")
    parts.append("".join(current))
    return parts


def parse_spec(spec: str | dict) -> tuple[str, dict[str, Any]]:
    """`"grape:top_k=2:batch_size=4"` or `{"name": "grape", "top_k": 2}` -> ("grape", {"top_k": 2, ...})."""
    if isinstance(spec, dict):
        options = dict(spec)
        if "name" not in options:
            raise SpecError(f"A component given as a mapping needs a 'name' key: {spec!r}")
        return str(options.pop("name")), options
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"Expected NAME[:key=value...], got {spec!r}")
    name, *pairs = split_outside(spec.strip(), ":")
    options: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpecError(
                f"Option {pair!r} in {spec!r} must look like key=value (quote a value that holds ':' or ',': "
                f"key='a:b')"
            )
        key, value = pair.split("=", 1)
        options[key.strip()] = parse_value(value.strip())
    return name.strip(), options


def format_value(value: Any) -> str:
    """`value` written so that `parse_value` reads it back: text holding a separator, a quote or a bracket is
    quoted; lists and mappings are written in YAML's flow style."""
    if isinstance(value, (list, tuple, dict)):
        return yaml.safe_dump(value if not isinstance(value, tuple) else list(value), default_flow_style=True).strip()
    text = str(value)
    if isinstance(value, str) and (any(c in text for c in ":,[]{}()'\"") or parse_value(text) != text):
        return "'" + text.replace("'", "''") + "'"  # YAML's single-quoted scalar: '' is one quote
    return text


def format_spec(name: str, options: dict[str, Any]) -> str:
    """The inverse of `parse_spec`: `format_spec("judge", {"judge": "pkg.mod:fn"})` -> `judge:judge='pkg.mod:fn'`."""
    return ":".join([name, *(f"{key}={format_value(value)}" for key, value in options.items())])


def parse_spec_list(value: str | list | None) -> list[tuple[str, dict[str, Any]]]:
    """A comma-separated string or a YAML list of specs."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        items: list = [part for part in split_outside(value, ",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    return [parse_spec(item) for item in items]
