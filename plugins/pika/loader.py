"""`load_pika(path, split)`: the released PiKa files (json, jsonl or parquet, given a local path; nothing is
downloaded) as `messages` rows (split "sft") or `prompt`/`chosen`/`rejected` rows (split "dpo")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class PikaFormatError(ValueError):
    pass


def _message(turn: Any, where: str) -> dict[str, str]:
    if not isinstance(turn, dict):
        raise PikaFormatError(f"{where}: a turn must be a mapping, got {type(turn).__name__}.")
    role = turn.get("from", turn.get("role"))
    content = turn.get("value", turn.get("content"))
    if role not in _ROLES or content is None:
        raise PikaFormatError(
            f"{where}: a turn needs 'from' (human/gpt) and 'value' (or 'role' and 'content'); got {sorted(turn)}."
        )
    return {"role": _ROLES[role], "content": str(content)}


def to_messages(row: dict[str, Any], where: str = "row") -> list[dict[str, str]]:
    """A PiKa SFT row ({"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}, {"instruction", "output"}
    [+ "input"], or already {"messages"}) as chat messages with the roles user/assistant."""
    for key in ("conversations", "messages"):
        if key in row:
            turns = row[key]
            if not isinstance(turns, list) or not turns:
                raise PikaFormatError(f"{where}: {key!r} must be a non-empty list of turns.")
            return [_message(t, f"{where}.{key}[{i}]") for i, t in enumerate(turns)]
    if "instruction" in row:
        if "output" not in row:
            raise PikaFormatError(f"{where}: an 'instruction' row needs an 'output' field; got {sorted(row)}.")
        instruction = str(row["instruction"])
        if row.get("input"):
            instruction = f"{instruction}\n\n{row['input']}"
        return [{"role": "user", "content": instruction}, {"role": "assistant", "content": str(row["output"])}]
    raise PikaFormatError(
        f"{where}: expected 'conversations' (from/value turns) or 'instruction' + 'output'; got {sorted(row)}."
    )


def _response(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list) and value:
        turns = [_message(t, where) for t in value]
        return [t for t in turns if t["role"] == "assistant"][-1:] or turns[-1:]
    if isinstance(value, dict):
        return [_message(value, where)]
    raise PikaFormatError(f"{where}: a response must be a string or a list of turns.")


def to_preference(row: dict[str, Any], where: str = "row") -> dict[str, Any]:
    """A PiKa preference row ({"prompt" or "instruction", "chosen", "rejected"}; chosen/rejected as strings or turn
    lists) as TRL's conversational prompt/chosen/rejected."""
    missing = [k for k in ("chosen", "rejected") if k not in row]
    prompt = row.get("prompt", row.get("instruction"))
    if prompt is None and isinstance(row.get("chosen"), list) and row["chosen"]:
        users = [
            t for t in row["chosen"] if isinstance(t, dict) and _ROLES.get(t.get("from", t.get("role"))) == "user"
        ]
        prompt = [_message(t, f"{where}.chosen") for t in users[:1]] or None
    if prompt is None:
        missing.insert(0, "prompt (or instruction)")
    if missing:
        raise PikaFormatError(f"{where}: a preference row needs {', '.join(missing)}; got {sorted(row)}.")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return {
        "prompt": prompt,
        "chosen": _response(row["chosen"], f"{where}.chosen"),
        "rejected": _response(row["rejected"], f"{where}.rejected"),
    }


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"No PiKa file at {path} (load_pika reads local files only).")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text())
        return data if isinstance(data, list) else list(data.get("data", []))
    if suffix == ".parquet":
        from datasets import Dataset

        return Dataset.from_parquet(str(path)).to_list()
    raise PikaFormatError(f"{path}: expected a .json, .jsonl or .parquet file.")


def load_pika(path: str | Path, split: str = "sft"):
    """The PiKa file at `path` as a `datasets.Dataset`: `messages` (split "sft") or prompt/chosen/rejected ("dpo")."""
    if split not in ("sft", "dpo"):
        raise ValueError(f"split must be 'sft' or 'dpo', got {split!r}.")
    from datasets import Dataset

    rows = _read(Path(path))
    convert = (lambda r, w: {"messages": to_messages(r, w)}) if split == "sft" else to_preference
    return Dataset.from_list([convert(r, f"{path}[{i}]") for i, r in enumerate(rows)])
