"""ConMax's two confidence terms under the frozen auxiliary model π_φ, from one forward per sequence.

The sequence scored for a query x, a compressed trace ẑ and the gold answer y is built from separately tokenized
segments (auxiliary tokenizer), so each term's tokens are known exactly:

    [chat(x) + think_open] [ẑ] [think_close + answer_prefix] [y]

The thinking sequence chat(x) + think_open + ẑ is a prefix of the answer sequence, and π_φ is causal, so one forward
over the whole sequence gives both terms:

    S_think(ẑ) = (1/|ẑ|) Σ_j log p_φ(ẑ_j | ẑ_<j, x)              (the ẑ segment's tokens)
    S_ans(ẑ)   = (1/|y|) Σ_i log p_φ(y_i | y_<i, x, ẑ)            (the y segment's tokens)

Log-probs come from `trl_ext.inference.scoring.token_logprobs` (chunked over the vocabulary, only at the scored
positions: never the (batch, seq, vocab) logits). The G completions of a GRPO group share the query x, so the first
segment is passed as a shared prefix: it runs once per distinct query and its KV cache serves the group's sequences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.inference import scoring as core_scoring

from .config import ConMaxConfig


def clean(text: str) -> str:
    """`text` with what no tokenizer encodes (lone surrogates) replaced by "?"."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def extract_span(text: str, open_tag: str, close_tag: str) -> str | None:
    """The stripped content of the first `open_tag … close_tag` span of `text`, or None when there is no closed span
    (linear time: two `str.find`)."""
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    if end < 0:
        return None
    return text[start:end].strip()


def compressed_trace(completion: str, config: ConMaxConfig) -> str | None:
    """ẑ from the policy's output: the span's content; the whole output (stripped) when the span is missing and
    `require_span` is off; None when the span is missing and required."""
    span = extract_span(completion, config.open_tag, config.close_tag)
    if span is None and not config.require_span:
        return completion.strip()
    return span


def query_text(query: Any, tokenizer, use_chat_template: bool = True) -> str | None:
    """chat(x): the context π_φ reads before thinking, or None when `query` is neither text nor a list of messages
    with text contents."""
    if isinstance(query, str):
        messages = [{"role": "user", "content": clean(query)}]
    elif (
        isinstance(query, (list, tuple))
        and query
        and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role"), str) for m in query
        )
    ):
        messages = [{"role": m["role"], "content": clean(m["content"])} for m in query]
    else:
        return None
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


def answer_text(answer: Any) -> str | None:
    """y as text: a non-empty string, or a finite number written out; None otherwise."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int) or (isinstance(answer, float) and math.isfinite(answer)):
        answer = str(answer)
    if isinstance(answer, str) and answer.strip():
        return clean(answer)
    return None


@dataclass(frozen=True)
class ScoredSequence:
    """Token ids of one auxiliary sequence and where its two scored segments lie."""

    input_ids: list[int]
    think_span: tuple[int, int]  # [start, end) of ẑ's tokens
    answer_span: tuple[int, int]  # [start, end) of y's tokens

    def target_mask(self) -> list[bool]:
        mask = [False] * len(self.input_ids)
        for start, end in (self.think_span, self.answer_span):
            mask[start:end] = [True] * (end - start)
        return mask


def _ids(tokenizer, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def build_sequence(tokenizer, context: str, trace: str, answer: str, config: ConMaxConfig) -> ScoredSequence:
    """[chat(x) + think_open] [ẑ] [think_close + answer_prefix] [y], each segment tokenized on its own. The first
    segment gets the tokenizer's special tokens (BOS) only when no chat template rendered it."""
    rendered = config.aux_chat_template and bool(getattr(tokenizer, "chat_template", None))
    prefix = _ids(tokenizer, context + config.think_open, special=not rendered)
    think = _ids(tokenizer, trace)
    middle = _ids(tokenizer, config.think_close + config.answer_prefix)
    answer_ids = _ids(tokenizer, answer)
    t0 = len(prefix)
    a0 = t0 + len(think) + len(middle)
    return ScoredSequence(prefix + think + middle + answer_ids, (t0, t0 + len(think)), (a0, a0 + len(answer_ids)))


def conmax_scores(
    model, tokenizer, queries: Sequence[Any], traces: Sequence[str], answers: Sequence[Any], config: ConMaxConfig
) -> list[tuple[float, float] | None]:
    """(S_ans, S_think) of each compressed trace ẑ for its query x and gold answer y under π_φ = (`model`,
    `tokenizer`), one forward per batch of `config.aux_batch_size` sequences; None for an item that cannot be scored
    (x or y not text, ẑ or y without tokens, or longer than `config.aux_max_length` tokens)."""
    built: list[ScoredSequence | None] = []
    for query, trace, answer in zip(queries, traces, answers, strict=True):
        context, y = query_text(query, tokenizer, config.aux_chat_template), answer_text(answer)
        if context is None or y is None or not isinstance(trace, str) or not trace:
            built.append(None)
            continue
        seq = build_sequence(tokenizer, context, clean(trace), y, config)
        empty = seq.think_span[0] in (0, seq.think_span[1]) or seq.answer_span[0] == seq.answer_span[1]
        built.append(None if empty or len(seq.input_ids) > config.aux_max_length else seq)
    todo = [i for i, seq in enumerate(built) if seq is not None]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    values = core_scoring.token_logprobs(
        model,
        [built[i].input_ids for i in todo],
        [built[i].target_mask() for i in todo],
        pad_id=pad_id,
        batch_size=config.aux_batch_size,
        prefix_lengths=[built[i].think_span[0] for i in todo],  # chat(x) + think_open: shared by a GRPO group
    )
    out: list[tuple[float, float] | None] = [None] * len(built)
    for i, logps in zip(todo, values, strict=True):
        seq = built[i]
        n_think = seq.think_span[1] - seq.think_span[0]
        think, answer = logps[:n_think], logps[n_think:]
        out[i] = (sum(answer) / len(answer), sum(think) / len(think))
    return out


def combine(s_ans: float, s_think: float, alpha: float) -> float:
    """R_c = α·S_ans + (1−α)·S_think."""
    return alpha * s_ans + (1.0 - alpha) * s_think
