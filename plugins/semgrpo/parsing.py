"""Reading a completion: its answer and explanation spans, the accuracy of the answer and the format.

Spans are found with `str.find` on the lower-cased text (tags are ASCII and case-insensitive), so parsing is linear in the
completion's length whatever it holds (a regex with a lazy `.*?` is quadratic on many unclosed tags). A span is the
text between an opening tag and the next closing tag; an opening tag with no closing tag after it opens no span.
"""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")
# ASCII-only lower-casing keeps every index of the text (str.lower turns "İ" into two characters); tags are ASCII.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_EDGE_PUNCTUATION = "()[]{}.:;,*\"'`"


def spans(text: str, tag: str) -> list[tuple[int, int, str]]:
    """(start of the opening tag, end of the closing tag, content) of each `<tag>...</tag>` span, in order."""
    lower = text.translate(_ASCII_LOWER)
    opening, closing = f"<{tag.lower()}>", f"</{tag.lower()}>"
    found, position = [], 0
    while True:
        start = lower.find(opening, position)
        if start < 0:
            return found
        end = lower.find(closing, start + len(opening))
        if end < 0:
            return found
        found.append((start, end + len(closing), text[start + len(opening) : end]))
        position = end + len(closing)


def answers(text: str, tag: str = "answer") -> list[str]:
    """The contents of every answer span."""
    return [content for _, _, content in spans(text, tag)]


def explanation(text: str, answer_tag: str = "answer", explanation_tag: str = "explanation") -> str:
    """expl(o): the explanation spans' contents (several joined by a newline), or, without an explanation span, the
    completion with its answer spans removed; stripped. An empty explanation span gives "" (the text around it does not
    stand in)."""
    found = spans(text, explanation_tag)
    if found:
        return "\n".join(content.strip() for _, _, content in found).strip()
    pieces, position = [], 0
    for start, end, _ in spans(text, answer_tag):
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return " ".join(piece.strip() for piece in pieces if piece.strip())


def normalize_answer(value: str) -> str:
    """Case- and space-insensitive form of an option: "( b )" and "B." both become "b" (the punctuation stripped
    from the ends is ours)."""
    return _SPACE.sub("", value).strip(_EDGE_PUNCTUATION).casefold()


def accuracy(text: str, gold: str, answer_tag: str = "answer") -> float:
    """R_acc: 1 if the answer span matches the gold option after `normalize_answer`, else 0. Without an answer span,
    0; with several, 1 only if every one matches (listing all options is no way to be right)."""
    found = answers(text, answer_tag)
    target = normalize_answer(gold)
    return float(bool(found) and bool(target) and all(normalize_answer(a) == target for a in found))


def format_ok(text: str, answer_tag: str = "answer", explanation_tag: str = "explanation", explanation_first=False):
    """R_fmt's test: each of the four tags occurs exactly once and they nest in order,
    <answer>...</answer> then <explanation>...</explanation> (or the reverse with `explanation_first`)."""
    lower = text.translate(_ASCII_LOWER)
    first, second = (explanation_tag, answer_tag) if explanation_first else (answer_tag, explanation_tag)
    tags = [f"<{first.lower()}>", f"</{first.lower()}>", f"<{second.lower()}>", f"</{second.lower()}>"]
    if any(lower.count(tag) != 1 for tag in tags):
        return False
    positions = [lower.find(tag) for tag in tags]
    return positions == sorted(positions)
