"""Batched greedy generation for evaluation and for transforms that answer with the model itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm


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
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    texts = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) if isinstance(p, list) else p
        for p in prompts
    ]
    outputs: list[str] = []
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="Generating", disable=not progress):
            enc = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            with torch.no_grad():
                sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature else {}
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    num_return_sequences=num_return_sequences,
                    **({"do_sample": False} | sampling),
                )
            outputs += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs
