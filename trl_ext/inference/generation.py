"""Batched generation for evaluation, for transforms that answer with the model itself, and for `trl-ext generate`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

# Builds the logits processors of one `generate` call: processors may keep per-row state (which rows have finished
# thinking), so each batch gets fresh ones.
ProcessorFactory = Callable[[], Sequence[Any]]


@dataclass(frozen=True)
class Generation:
    """One completion: its text (special tokens removed) and its number of generated tokens, the EOS included and
    the padding after it not; `token_ids` are those tokens, `prompt_ids` its prompt's (padding removed), for
    scoring exactly the tokens that were sampled."""

    text: str
    num_tokens: int
    token_ids: tuple[int, ...] = ()
    prompt_ids: tuple[int, ...] = ()


def generate(
    model,
    tokenizer,
    prompts: Sequence[Any],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = True,
    num_return_sequences: int = 1,
    temperature: float | None = None,
) -> list[str]:
    """Completions of conversational (chat-template) or plain prompts, left-padded in batches: greedy, or sampled
    at `temperature` when one is given. With `num_return_sequences` n, the n completions of each prompt follow one
    another (`len(prompts) * n` texts); seed torch for reproducible samples."""
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature else {}
    outputs = generate_completions(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        num_return_sequences=num_return_sequences,
        **sampling,
    )
    return [g.text for g in outputs]


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[Any],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = True,
    logits_processors: ProcessorFactory | None = None,
    **generate_kwargs: Any,
) -> list[Generation]:
    """Completions of conversational (chat-template) or plain prompts, left-padded in batches: greedy unless
    `generate_kwargs` say otherwise (`do_sample=True, temperature=...`, `num_return_sequences=n`: the n completions
    of a prompt follow one another). `logits_processors()` is called once per batch for that batch's processors.

    A wrapper model that must prepare its own inputs (lta-thinker fills its thought slots first) generates through
    its `generate_completions(tokenizer, prompts, max_new_tokens=, batch_size=, progress=, **generate_kwargs)`."""
    own = getattr(model, "generate_completions", None)
    if callable(own):
        if logits_processors is not None:
            raise ValueError(f"{type(model).__name__} generates its own way; it takes no logits processors.")
        return own(
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            **generate_kwargs,
        )
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    texts = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) if isinstance(p, list) else p
        for p in prompts
    ]
    stop_ids = stop_token_ids(model, tokenizer)
    outputs: list[Generation] = []
    kwargs = {"do_sample": False, **generate_kwargs}
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="Generating", disable=not progress):
            enc = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            if logits_processors is not None:
                from transformers import LogitsProcessorList

                kwargs["logits_processor"] = LogitsProcessorList(logits_processors())
            with torch.no_grad():
                out = model.generate(
                    **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kwargs
                )
            width = enc["input_ids"].shape[1]
            completion_ids = out[:, width:].tolist()
            # With n return sequences, row r continues prompt r // n of the batch.
            per_prompt = len(completion_ids) // enc["input_ids"].shape[0]
            prompt_ids = [
                tuple(ids[mask.bool()].tolist())
                for ids, mask in zip(enc["input_ids"], enc["attention_mask"], strict=True)
            ]
            for row, ids in enumerate(completion_ids):
                ids = cut_at_stop(ids, stop_ids)
                outputs.append(
                    Generation(
                        tokenizer.decode(ids, skip_special_tokens=True),
                        len(ids),
                        tuple(ids),
                        prompt_ids[row // per_prompt],
                    )
                )
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs


def stop_token_ids(model, tokenizer) -> set[int]:
    """The ids that end a completion: the model's generation-config EOS id(s) and the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None:
        eos.append(tokenizer.eos_token_id)
    return set(eos)


def cut_at_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    # generate pads a finished row (with the pad id, often the EOS id itself): keep up to the first stop token.
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[: i + 1]
    return ids
