"""The masked copy: units (whitespace-split words, or tokens as character spans), Bernoulli(t) masks, optional
collapsing of mask runs, and one training pair per row. Pure Python; a tokenizer only for `unit="token"`."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from .config import MaskFTConfig

_SPLIT = re.compile(r"(\s+)")


def row_rng(seed: int, epoch: int, row: int, copy: int = 0) -> random.Random:
    """The random stream of one row in one epoch (and copy): a pure function of its arguments."""
    return random.Random(f"maskft:{seed}:{epoch}:{row}:{copy}")


def collapse_mask_runs(text: str, mask_str: str = "<mask>") -> str:
    """ "x <mask> <mask> y" -> "x <mask> y": runs of masks separated by whitespace only become one."""
    m = re.escape(mask_str)
    return re.sub(rf"{m}(?:\s*{m})+", mask_str, text)


def word_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` as (piece, is_unit) pairs: whitespace runs kept verbatim between the words (the units)."""
    return [(p, not p.isspace()) for p in _SPLIT.split(text) if p]


def token_pieces(text: str, tokenizer) -> list[tuple[str, bool]]:
    """`text` as (piece, is_unit) pairs along the tokenizer's character offsets: tokens sharing characters (the
    bytes of one multi-byte character) merge into one unit, so no character is ever split; a unit's leading
    whitespace stays outside the mask."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: list[list[int]] = []
    for start, end in enc["offset_mapping"]:
        if end <= start:
            continue
        if spans and start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    pieces: list[tuple[str, bool]] = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            pieces.append((text[cursor:start], False))
        chunk = text[start:end]
        stripped = chunk.lstrip()
        if len(stripped) < len(chunk):
            pieces.append((chunk[: len(chunk) - len(stripped)], False))
        if stripped:
            pieces.append((stripped, True))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], False))
    return pieces


@dataclass
class Masked:
    text: str
    t: float
    units: int
    masked: int


def mask_text(text: str, t: float, rng: random.Random, cfg: MaskFTConfig, tokenizer=None) -> Masked:
    """Replace each unit of `text` by `cfg.mask_str` with probability `t` (one `rng.random()` draw per unit)."""
    if cfg.unit == "token":
        if tokenizer is None:
            raise ValueError("unit='token' needs a tokenizer")
        pieces = token_pieces(text, tokenizer)
    else:
        pieces = word_pieces(text)
    out, units, masked = [], 0, 0
    for piece, is_unit in pieces:
        if not is_unit:
            out.append(piece)
            continue
        units += 1
        if rng.random() < t:
            masked += 1
            out.append(cfg.mask_str)
        else:
            out.append(piece)
    result = "".join(out)
    if cfg.collapse_runs:
        result = collapse_mask_runs(result, cfg.mask_str)
    return Masked(result, t, units, masked)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content") or "")
    raise ValueError(f"expected a string or a list of messages, got {type(value).__name__}")


def _append_to_prompt(prompt: Any, suffix: str) -> Any:
    if isinstance(prompt, str):
        return prompt + suffix
    messages = [dict(m) for m in prompt]
    messages[-1]["content"] = str(messages[-1].get("content") or "") + suffix
    return messages


def build_pair(
    row: dict[str, Any], cfg: MaskFTConfig, rng: random.Random, tokenizer=None
) -> tuple[dict, Masked | None]:
    """One training pair {prompt, completion} for a row, and the masking it used (None for a plain pair)."""
    if cfg.mode == "knowledge":
        document = row[cfg.text_column]
        if not isinstance(document, str):
            raise ValueError(f"knowledge mode needs a text column {cfg.text_column!r} of strings")
        t = rng.uniform(cfg.t_min, cfg.t_max)
        masked = mask_text(document, t, rng, cfg, tokenizer)
        prompt_text = cfg.template.format(masked=masked.text, mask=cfg.mask_str)
        if cfg.conversational:
            pair = {
                "prompt": [{"role": "user", "content": prompt_text}],
                "completion": [{"role": "assistant", "content": document}],
            }
        else:
            pair = {"prompt": prompt_text, "completion": document}
        return pair, masked
    prompt, completion = row["prompt"], row["completion"]
    if rng.random() < cfg.p_plain:
        return {"prompt": prompt, "completion": completion}, None
    t = rng.uniform(cfg.t_min, cfg.t_max)
    masked = mask_text(_text(completion), t, rng, cfg, tokenizer)
    hint = "\n\n" + cfg.sft_template.format(masked=masked.text, mask=cfg.mask_str)
    return {"prompt": _append_to_prompt(prompt, hint), "completion": completion}, masked
