"""Per-token masks over the completion, built from character spans of the completion text and aligned to exactly
the tokens `SFTTrainer` trains on, then carried through the collator next to `labels`.

Methods that weight some completion tokens differently (FAIT's error-sensitive tokens, TL-Training's tool-name and
argument-boundary tokens) know *which characters* matter, not which token ids: token boundaries depend on the
tokenizer and on the chat template around the completion. So a method gives spans relative to the completion's text
(the assistant message's content, or the completion string), and this module

1. renders each prepared example the way `SFTTrainer` does (chat template with the row's `tools` and
   `chat_template_kwargs`, or prompt + completion + EOS for plain text), tokenizes the rendered text with
   `return_offsets_mapping`, checks the ids against the `input_ids` SFTTrainer produced (including its truncation),
   and marks every token whose character range overlaps a span;
2. stores the masks as int8 columns aligned with `input_ids` (prompt tokens are never marked);
3. pads them in the collator exactly like `labels`, so `mask[:, 1:][labels[:, 1:] != -100]` lines up with the
   scored targets of `trl_ext.losses.shifted_positions`.

Requires a fast tokenizer (offsets) and prompt-completion data; packing and padding-free batches are refused by the
trainers that use it, because they rearrange tokens after the masks are built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import torch

Span = tuple[int, int]
SpansFn = Callable[[dict[str, Any]], Mapping[str, Sequence[Span]]]

__all__ = [
    "CompletionMaskCollator",
    "attach_completion_masks",
    "masks_for_trainer",
    "RenderedPair",
    "Span",
    "add_completion_masks",
    "completion_content",
    "completion_token_masks",
    "render_prompt_completion",
    "spans_to_token_mask",
    "token_mask_to_spans",
]


class TokenMaskError(ValueError):
    pass


def spans_to_token_mask(offsets: Sequence[Sequence[int]], spans: Sequence[Span]) -> list[int]:
    """1 for every token whose character range [start, end) overlaps one of `spans`, else 0. Tokens with an empty
    range (special tokens added by the tokenizer) are never marked."""
    spans = [(int(s), int(e)) for s, e in spans if e > s]
    if not spans:
        return [0] * len(offsets)
    width = max(e for _, e in spans)
    marked = bytearray(width)
    for s, e in spans:
        marked[max(s, 0) : e] = b"\x01" * (e - max(s, 0))
    out = []
    for start, end in offsets:
        start, end = max(int(start), 0), min(int(end), width)
        out.append(1 if end > start and any(marked[start:end]) else 0)
    return out


def token_mask_to_spans(offsets: Sequence[Sequence[int]], mask: Sequence[int]) -> list[Span]:
    """The character ranges of the marked tokens (the inverse of `spans_to_token_mask` on token boundaries)."""
    if len(offsets) != len(mask):
        raise TokenMaskError(f"a mask of {len(mask)} values for {len(offsets)} tokens")
    return [(int(s), int(e)) for (s, e), m in zip(offsets, mask, strict=True) if m and e > s]


def completion_content(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The text the spans refer to: the completion string, or the content of its single (assistant) message."""
    if isinstance(completion, str):
        return completion
    messages = list(completion)
    if len(messages) != 1:
        raise TokenMaskError(f"a conversational completion must hold exactly one message, got {len(messages)}")
    content = messages[0].get("content")
    if not isinstance(content, str):
        raise TokenMaskError("the completion message's content must be a string (multimodal parts are not supported)")
    return content


@dataclass
class RenderedPair:
    """A prompt-completion pair as SFTTrainer tokenizes it, with character offsets into `text`."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    completion_start: int  # where the completion's content starts in `text`
    completion_text: str


def _template_kwargs(example: Mapping[str, Any], chat_template: str | None) -> dict[str, Any]:
    # As SFTTrainer's tokenize_fn: the row's `tools` (JSON string or list) and `chat_template_kwargs`
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {"chat_template": chat_template, "tools": tools, **(example.get("chat_template_kwargs") or {})}


def render_prompt_completion(tokenizer, example: Mapping[str, Any], chat_template: str | None = None) -> RenderedPair:
    """Render and tokenize `example["prompt"] + example["completion"]` like SFTTrainer (TRL 1.16), with offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise TokenMaskError("token masks need a fast tokenizer (offset mappings); got a slow one")
    prompt, completion = example["prompt"], example["completion"]
    content = completion_content(completion)
    if isinstance(prompt, str):
        if not isinstance(completion, str):
            raise TokenMaskError("a plain-text prompt needs a plain-text completion")
        eos = tokenizer.eos_token
        completion_text = completion if eos is None or completion.endswith(eos) else completion + eos
        text = prompt + completion_text
        enc = tokenizer(text, return_offsets_mapping=True)  # TRL: `processing_class(text=...)`, special tokens on
        start = len(prompt)
    else:
        kwargs = _template_kwargs(example, chat_template)
        text = tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False, **kwargs)
        prompt_text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True, **kwargs)
        hint = 0
        for a, b in zip(prompt_text, text, strict=False):
            if a != b:
                break
            hint += 1
        start = text.find(content, hint)
        if start < 0:
            raise TokenMaskError("the completion's content does not appear verbatim in the chat-template rendering")
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return RenderedPair(text, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], start, content)


def completion_token_masks(
    tokenizer,
    example: Mapping[str, Any],
    spans: Mapping[str, Sequence[Span]],
    input_ids: Sequence[int] | None = None,
    chat_template: str | None = None,
) -> dict[str, list[int]]:
    """Masks over the tokens of the rendered example, one per key of `spans` (character spans relative to the
    completion's content). With `input_ids` (SFTTrainer's, possibly truncated at either end), the masks are cut to
    them, and a rendering that does not reproduce them is an error rather than a silent misalignment."""
    rendered = render_prompt_completion(tokenizer, example, chat_template)
    n_content = len(rendered.completion_text)
    offset = 0
    if input_ids is not None:
        input_ids = list(input_ids)
        full, n = rendered.input_ids, len(input_ids)
        if full[:n] == input_ids:
            offset = 0
        elif n <= len(full) and full[len(full) - n :] == input_ids:
            offset = len(full) - n  # truncation_mode="keep_end"
        else:
            raise TokenMaskError(
                "re-tokenizing the rendered example does not reproduce SFTTrainer's input_ids; the chat template or "
                "tokenizer renders this example differently from TRL (unsupported chat_template_kwargs?)"
            )
    masks = {}
    for key, key_spans in spans.items():
        shifted = []
        for s, e in key_spans:
            if not (0 <= s <= e <= n_content):
                raise TokenMaskError(f"span ({s}, {e}) of {key!r} lies outside the completion (length {n_content})")
            shifted.append((s + rendered.completion_start, e + rendered.completion_start))
        mask = spans_to_token_mask(rendered.offsets, shifted)
        masks[key] = mask if input_ids is None else mask[offset : offset + len(input_ids)]
    return masks


def add_completion_masks(
    dataset,
    tokenizer,
    spans_fn: SpansFn,
    keys: Sequence[str],
    chat_template: str | None = None,
    num_proc: int | None = None,
):
    """Add one int8 column per key, aligned with `input_ids`, to a dataset SFTTrainer has prepared (it keeps the
    original `prompt` / `completion` columns next to `input_ids` and `labels`). `spans_fn(row)` returns
    `{key: [(start, end), ...]}` relative to the completion's content; it must be picklable (a module-level function
    or a small callable object) because `Dataset.map` hashes and may ship it to worker processes."""
    columns = set(dataset.column_names or [])
    missing = {"input_ids", "prompt", "completion"} - columns
    if missing:
        raise TokenMaskError(
            f"the prepared dataset lacks {sorted(missing)}; token masks need prompt-completion rows "
            "tokenized by SFTTrainer (no skip_prepare_dataset, no packing)"
        )

    def build(example):
        spans = spans_fn(example)
        unknown = set(spans) - set(keys)
        if unknown:
            raise TokenMaskError(f"spans for unknown mask keys {sorted(unknown)}")
        spans = {key: spans.get(key, ()) for key in keys}
        return completion_token_masks(tokenizer, example, spans, example["input_ids"], chat_template)

    kwargs: dict[str, Any] = {}
    if isinstance(dataset, datasets.Dataset):  # map-style (IterableDataset.map has no num_proc / desc)
        kwargs = {"num_proc": num_proc, "desc": "Aligning token masks"}
    dataset = dataset.map(build, **kwargs)
    if hasattr(dataset, "cast") and dataset.features is not None:  # int8: the masks are 0/1
        from datasets import Sequence as SequenceFeature
        from datasets import Value

        features = dataset.features.copy()
        for key in keys:
            features[key] = SequenceFeature(Value("int8"))
        dataset = dataset.cast(features)
    return dataset


class CompletionMaskCollator:
    """Wraps SFTTrainer's collator: same batch, plus each mask key padded with 0 to the width of `input_ids`
    (right padding, as the labels), as int8 tensors."""

    def __init__(self, base: Callable[[list[dict[str, Any]]], dict[str, Any]], keys: Sequence[str]):
        self.base = base
        self.keys = tuple(keys)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base(examples)
        width = batch["input_ids"].shape[1]
        if "position_ids" in batch and "attention_mask" not in batch:
            raise TokenMaskError("padding-free batches are not supported with token masks")
        for key in self.keys:
            rows = []
            for example in examples:
                if key not in example:
                    raise TokenMaskError(f"a training row lacks the token-mask column {key!r}")
                values = list(example[key])
                if len(values) != len(example["input_ids"]):
                    raise TokenMaskError(f"{key!r} has {len(values)} values for {len(example['input_ids'])} tokens")
                rows.append(values + [0] * (width - len(values)))
            batch[key] = torch.tensor(rows, dtype=torch.int8)
        return batch


def masks_for_trainer(trainer, dataset, spans_fn: SpansFn, keys: Sequence[str]):
    """`add_completion_masks` with a trainer's tokenizer, chat template and `dataset_num_proc`; a dataset that
    already has the mask columns (or None, or a split name) is returned as it is."""
    if dataset is None or isinstance(dataset, str) or set(keys) <= set(dataset.column_names or []):
        return dataset
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    return add_completion_masks(
        dataset, tokenizer, spans_fn, keys, getattr(trainer, "chat_template", None), trainer.args.dataset_num_proc
    )


def attach_completion_masks(trainer, spans_fn: SpansFn, keys: Sequence[str]) -> None:
    """Call at the end of an SFTTrainer subclass's `__init__`: adds the masks to the prepared train and eval
    datasets and wraps the collator so batches carry them. Datasets passed to `evaluate()` later are SFTTrainer-
    prepared there; pass them through `masks_for_trainer` in `get_eval_dataloader`."""
    trainer.train_dataset = masks_for_trainer(trainer, trainer.train_dataset, spans_fn, keys)
    if isinstance(trainer.eval_dataset, dict):
        trainer.eval_dataset = {
            k: masks_for_trainer(trainer, v, spans_fn, keys) for k, v in trainer.eval_dataset.items()
        }
    else:
        trainer.eval_dataset = masks_for_trainer(trainer, trainer.eval_dataset, spans_fn, keys)
    trainer.data_collator = CompletionMaskCollator(trainer.data_collator, keys)
