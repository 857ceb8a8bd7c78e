"""FAIT's error-sensitive segments: where a correct program differs from similar incorrect variants.

Card algorithm, steps 1-3 (shared/papers/fait.md):
1. line diff (`difflib.SequenceMatcher` over lines, trailing whitespace stripped): lines of the correct code in a
   "replace" or "delete" opcode are error-sensitive (S_line); a pure insertion in the variant marks the line of the
   correct code at the insertion point (index clipped to the last line);
2. character diff of each replaced line pair (`SequenceMatcher(None, a, b, autojunk=False)`, a Levenshtein-style
   alignment): characters of the correct line in non-"equal" opcodes (S_tok);
3. union over variants, then characters -> tokens through the tokenizer's offsets.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.training.token_masks import Span, completion_content, spans_to_token_mask, token_mask_to_spans

LINE_MASK = "fault_line_mask"
TOKEN_MASK = "fault_token_mask"
VARIANTS = "incorrect_completions"


@dataclass
class _Line:
    start: int  # offset of the line's first character in the code
    text: str  # without the newline and trailing whitespace

    @property
    def content(self) -> Span:
        """The line without indentation: a change elsewhere in the line must not mark the newline+indent token
        that many BPE tokenizers merge with the previous line's end (indentation changes are caught by S_tok)."""
        indent = len(self.text) - len(self.text.lstrip())
        return (self.start + indent, self.start + len(self.text))


def _lines(code: str) -> list[_Line]:
    out, pos = [], 0
    for raw in code.splitlines(keepends=True):
        out.append(_Line(pos, raw.rstrip()))
        pos += len(raw)
    return out


def _char_diff(a: str, b: str) -> list[tuple[int, int]]:
    """Character ranges of `a` that differ from `b` (non-"equal" opcodes); a pure insertion marks the character of
    `a` at the insertion point, clipped to the last one, as the line rule does for lines."""
    out = []
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            out.append((i1, i2))
        elif tag == "insert" and a:
            i = min(i1, len(a) - 1)
            out.append((i, i + 1))
    return out


def fault_spans(correct: str, variants: Sequence[str]) -> tuple[list[Span], list[Span]]:
    """(S_line, S_tok): character spans of `correct` that are error-sensitive against any of `variants`.

    Unions over variants, so adding a variant never removes a span (card test 6)."""
    lines = _lines(correct)
    keys = [line.text for line in lines]
    line_spans: list[Span] = []
    tok_spans: list[Span] = []
    for variant in variants:
        other = [raw.rstrip() for raw in variant.splitlines()]
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys, other, autojunk=False).get_opcodes():
            if tag == "equal" or not lines:
                continue
            if tag == "insert":
                line_spans.append(lines[min(i1, len(lines) - 1)].content)
                continue
            line_spans.extend(lines[i].content for i in range(i1, i2))
            if tag == "delete":  # a missing line differs in every character
                tok_spans.extend((lines[i].start, lines[i].start + len(lines[i].text)) for i in range(i1, i2))
            elif i2 - i1 == j2 - j1:  # replaced line pairs, aligned one to one
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                    tok_spans.extend(
                        (lines[i].start + s, lines[i].start + e) for s, e in _char_diff(keys[i], other[j])
                    )
            else:  # blocks of different sizes: align the joined blocks, then map back to the lines
                block = "\n".join(keys[i1:i2])
                where = [lines[i].start + k for i in range(i1, i2) for k in range(len(keys[i]) + 1)]
                for s, e in _char_diff(block, "\n".join(other[j1:j2])):
                    tok_spans.extend((where[p], where[p] + 1) for p in range(s, e) if block[p] != "\n")
    return line_spans, tok_spans


def masks_from_spans(
    offsets,
    line_spans: Sequence[Span],
    tok_spans: Sequence[Span],
    use_line_level: bool = True,
    use_token_level: bool = True,
) -> tuple[list[int], list[int]]:
    """Token masks from character spans. A token marked at token level is in an error-sensitive line by definition,
    so the line mask includes the token mask (tok_mask ⊆ line_mask), even when the token is indentation."""
    tok = spans_to_token_mask(offsets, tok_spans) if use_token_level else [0] * len(offsets)
    if not use_line_level:
        return [0] * len(offsets), tok
    line = spans_to_token_mask(offsets, line_spans)
    return [max(a, b) for a, b in zip(line, tok, strict=True)], tok


def _content_offsets(tokenizer, content: str):
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("fait_masks needs a fast tokenizer (offset mappings)")
    return tokenizer(content, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def fait_masks(
    example: dict[str, Any], tokenizer, use_token_level: bool = True, use_line_level: bool = True
) -> dict[str, Any]:
    """The card's transform: `fault_line_mask` and `fault_token_mask` (0/1 per token of the completion text alone,
    `tokenizer(completion, add_special_tokens=False)`) from the row's `completion` and `incorrect_completions`."""
    content = completion_content(example["completion"])
    variants = [completion_content(v) if not isinstance(v, str) else v for v in example[VARIANTS] or []]
    line_spans, tok_spans = fault_spans(content, variants)
    line, tok = masks_from_spans(
        _content_offsets(tokenizer, content), line_spans, tok_spans, use_line_level, use_token_level
    )
    return {**example, LINE_MASK: line, TOKEN_MASK: tok}


@dataclass
class FAITSpans:
    """Per prepared row, the (line, token) character spans of the completion, for `trl_ext.training.token_masks`: computed
    from the variants, or read back from precomputed `fault_*_mask` columns (tokens of the completion alone)."""

    source: str = "variants"
    tokenizer: Any = None

    line_key: str = "fait_line_mask"
    token_key: str = "fait_token_mask"

    def __call__(self, example: dict[str, Any]) -> dict[str, list[Span]]:
        content = completion_content(example["completion"])
        if self.source == "variants":
            variants = example.get(VARIANTS)
            if variants is None:
                raise ValueError(f"FAIT needs the column {VARIANTS!r} (or fait_masks_from='columns')")
            line_spans, tok_spans = fault_spans(content, variants)
            line_spans = line_spans + tok_spans  # tok_mask ⊆ line_mask, as in `masks_from_spans`
        else:
            offsets = _content_offsets(self.tokenizer, content)
            line_spans = token_mask_to_spans(offsets, example[LINE_MASK])
            tok_spans = token_mask_to_spans(offsets, example[TOKEN_MASK])
        return {self.line_key: line_spans, self.token_key: tok_spans}


def make_fait_masks_transform(
    tokenizer=None, model=None, use_token_level: bool = True, use_line_level: bool = True, num_proc: int | None = None
) -> Callable:
    """Registry factory: `fn(dataset) -> dataset` adding the two mask columns (`model` is passed by the runner and
    not needed)."""
    if tokenizer is None:
        raise ValueError("the fait_masks transform needs the tokenizer of the model to be trained")

    def apply(dataset):
        return dataset.map(
            fait_masks,
            fn_kwargs={"tokenizer": tokenizer, "use_token_level": use_token_level, "use_line_level": use_line_level},
            num_proc=num_proc,
            desc="FAIT masks",
        )

    return apply
