"""PKT (prioritized key tokens): which target tokens the tool-call loss weights, and the weights.

The official `code/pkt/utils.py` finds the tokens by LLaMA sentencepiece strings; here they are located by character
offsets in the rendered target (`trl_ext.training.token_masks`), so any fast tokenizer works:

- pre set P: the token holding the tool name's first character, and, for every other available tool whose name
  shares a non-empty prefix with the gold name, the token holding the first character where the two differ
  (official: position start + common_prefix_len; a gold name that is a prefix of another gives the "(" after it);
- para set Q: the tokens spelling each argument terminator of the official list (`',` `')` `)` `")` ...) after the
  call's opening parenthesis; if none is found, the last token of the target (the official "second-to-last" token,
  whose last token is the end-of-sequence marker);
- O: the other target tokens. w_P = min(|O|/|P|, max_weight) if |P| < |O| else 1; weight 1 on Q and O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trl_ext.training.token_masks import Span, completion_content

PRE_MASK, PARA_MASK = "pkt_pre_mask", "pkt_para_mask"
# The official terminator tokens, with sentencepiece's word-start marker "▁" read as a space.
DEFAULT_TERMINATORS: tuple[str, ...] = (
    "',",
    "')",
    ")",
    ")_",
    "()",
    "()_",
    " '')",
    " ')",
    '")',
    ' ")',
    ' "")',
    '.")',
    ')")',
)
# The official target starts with the tool name and runs to the first "(".
DEFAULT_CALL_REGEX = r"\s*(?P<name>[^\s(]+)\("


def tool_names(tools: Any) -> list[str]:
    """Names in a `tools` column value: a JSON string or a list of OpenAI-style schemas
    ({"type": "function", "function": {"name": ...}}) or bare {"name": ...} dicts."""
    if tools is None:
        return []
    if isinstance(tools, str):
        tools = json.loads(tools)
    names = []
    for tool in tools:
        spec = tool.get("function", tool) if isinstance(tool, dict) else {}
        if spec.get("name"):
            names.append(spec["name"])
    return names


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def pkt_spans(
    target: str,
    names: Sequence[str],
    call_regex: str = DEFAULT_CALL_REGEX,
    terminators: Sequence[str] = DEFAULT_TERMINATORS,
) -> dict[str, list[Span]]:
    """Character spans of P and Q in `target`; empty for a target that is not a call (e.g. a final answer)."""
    match = re.match(call_regex, target)
    if match is None or not match.group("name"):
        return {PRE_MASK: [], PARA_MASK: []}
    start, gold = match.start("name"), match.group("name")
    pre = [(start, start + 1)]
    for other in names:
        if other == gold:
            continue
        shared = _common_prefix(gold, other)
        if shared > 0:
            pre.append((start + shared, start + shared + 1))  # P is a set: same token twice counts once
    para = []
    if terminators:
        pattern = "|".join(re.escape(t) for t in sorted(set(terminators), key=len, reverse=True))
        para = [m.span() for m in re.finditer(pattern, target[match.end() :])]
        para = [(s + match.end(), e + match.end()) for s, e in para]
    if not para:
        para = [(len(target.rstrip()) - 1, len(target.rstrip()))]
    return {PRE_MASK: pre, PARA_MASK: para}


@dataclass
class PKTSpans:
    """Per prepared row, P and Q spans of its completion, for `trl_ext.training.token_masks` (picklable for Dataset.map)."""

    call_regex: str = DEFAULT_CALL_REGEX
    terminators: tuple[str, ...] = field(default_factory=lambda: DEFAULT_TERMINATORS)
    tools_column: str | None = "tools"

    def __call__(self, example: dict[str, Any]) -> dict[str, list[Span]]:
        names = tool_names(example.get(self.tools_column)) if self.tools_column else []
        return pkt_spans(completion_content(example["completion"]), names, self.call_regex, self.terminators)


def pkt_weights(
    pre: torch.Tensor, para: torch.Tensor, label_mask: torch.Tensor, max_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numerator weights c, denominator weights d (both [B, T']) and w_P ([B]) so that a sequence's loss is
    sum_t c_t e_t / sum_t d_t = (w_P sum_P e + sum_Q e + sum_O e) / (w_P |P| + |Q| + |O|).

    As the official GCELoss: a token in both P and Q adds w_P e + e to the numerator but w_P to the denominator,
    and |O| excludes Q (so for `f()` w_P = 1, not 2)."""
    m = label_mask.to(torch.float32)
    p, q = pre.float() * m, para.float() * m
    o = m * (1 - p) * (1 - q)
    n_p, n_o = p.sum(dim=1), o.sum(dim=1)
    w_p = torch.where(n_p < n_o, torch.clamp(n_o / n_p.clamp(min=1), max=max_weight), torch.ones_like(n_p))
    w_p = torch.where(n_p > 0, w_p, torch.ones_like(w_p))
    c = w_p[:, None] * p + q + o
    d = torch.where(p > 0, w_p[:, None], torch.ones_like(p)) * m
    return c, d, w_p
