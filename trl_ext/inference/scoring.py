"""Batched sequence log-likelihoods of (prompt, response) pairs under a model.

Pairs are rendered exactly as TRL's `SFTTrainer` renders prompt-completion data (chat template for conversational
prompts, EOS appended to plain-text completions, `keep_start` truncation), so a score is computed on the very tokens
SFT would train on: `-mean_logprob` of a pair is SFTTrainer's token-mean NLL on that single example.

The log-probs come from the last hidden states projected through the LM head in vocabulary chunks
(`trl.kernels.ChunkedLogProbFunction`), only at the completion positions: the `(batch, seq, vocab)` logits are never
built.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from trl.data_utils import common_prefix_length, is_conversational
from trl.kernels import ChunkedLogProbFunction

from trl_ext.compat.models import backbone as decoder_stack
from trl_ext.losses.token_loss import LMHead

Messages = list[dict[str, Any]]


def _as_messages(completion: str | Messages) -> Messages:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)


def tokenize_pair(
    tokenizer, prompt: str | Messages, completion: str | Messages, max_length: int | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of `prompt + completion` and the mask of the completion tokens, as SFTTrainer builds them.

    A conversational prompt goes through the chat template (`add_generation_prompt=True` for the prompt alone); a
    string completion after a conversational prompt is taken as the assistant's message. For plain text, EOS is
    appended to the completion when missing. The completion starts where the tokenized prompt and prompt+completion
    diverge (`trl.data_utils.common_prefix_length`). With `max_length`, the sequence keeps its first `max_length`
    tokens (SFTConfig's default `truncation_mode="keep_start"`).
    """
    if is_conversational({"prompt": prompt}):
        messages = list(prompt) + _as_messages(completion)
        prompt_ids = tokenizer.apply_chat_template(
            list(prompt), tokenize=True, return_dict=True, add_generation_prompt=True
        )["input_ids"]
        input_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    else:
        if not isinstance(completion, str):
            raise TypeError("A plain-text prompt needs a plain-text completion, got a list of messages.")
        eos = tokenizer.eos_token
        if eos is not None and not completion.endswith(eos):
            completion = completion + eos
        prompt_ids = tokenizer(text=prompt)["input_ids"]
        input_ids = tokenizer(text=prompt + completion)["input_ids"]
    input_ids = list(input_ids)
    prompt_len = common_prefix_length(list(prompt_ids), input_ids)
    completion_mask = [0] * prompt_len + [1] * (len(input_ids) - prompt_len)
    if max_length is not None:
        input_ids, completion_mask = input_ids[:max_length], completion_mask[:max_length]
    return input_ids, completion_mask


@torch.no_grad()
def sequence_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str | Messages],
    completions: Sequence[str | Messages],
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = True,
    vocab_chunk_size: int = 8192,
) -> list[dict[str, float]]:
    """Log-likelihood of each completion given its prompt: one dict per pair, in input order, with `sum_logprob`,
    `num_tokens` (completion tokens scored) and `mean_logprob` (`sum / num`, `-inf` when no completion token is left,
    e.g. after truncation).

    Pairs are rendered with `tokenize_pair`, batched by length, right-padded with an attention mask, and scored in
    eval mode without gradients (the model's training mode is restored afterwards). The first token of a sequence has
    no context and is never scored, as in SFT.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"Got {len(prompts)} prompts and {len(completions)} completions; they must pair up.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    encoded = [tokenize_pair(tokenizer, p, c, max_length) for p, c in zip(prompts, completions, strict=True)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    per_token = token_logprobs(
        model,
        [ids for ids, _ in encoded],
        [mask for _, mask in encoded],
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        vocab_chunk_size=vocab_chunk_size,
    )
    results = []
    for values in per_token:
        total, n = float(sum(values)), len(values)
        results.append({"sum_logprob": total, "num_tokens": n, "mean_logprob": total / n if n else -math.inf})
    return results


@torch.no_grad()
def token_logprobs(
    model,
    sequences: Sequence[Sequence[int]],
    target_masks: Sequence[Sequence[int | bool]],
    pad_id: int = 0,
    batch_size: int = 8,
    progress: bool = False,
    vocab_chunk_size: int = 8192,
) -> list[list[float]]:
    """`log p(token_t | tokens_<t)` of the tokens each mask marks, per sequence, in token order.

    `target_masks[i][t]` truthy marks token `t` of `sequences[i]` as scored; token 0 has no context and is never
    scored. One forward per batch of sequences (sorted by length, right-padded with `pad_id` under an attention
    mask) in eval mode without gradients (the training mode is restored); the log-probs come from the last hidden
    states at the scored positions only, through the LM head in vocabulary chunks: no `(batch, seq, vocab)` logits.
    Several spans of one sequence (a reasoning trace and the answer after it) are thus scored by one forward.
    """
    if len(sequences) != len(target_masks):
        raise ValueError(f"Got {len(sequences)} sequences and {len(target_masks)} masks; they must pair up.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    for i, (ids, mask) in enumerate(zip(sequences, target_masks, strict=True)):
        if len(ids) != len(mask):
            raise ValueError(f"sequence {i} has {len(ids)} tokens but its mask has {len(mask)} entries.")
    results: list[list[float]] = [[] for _ in sequences]
    model_ = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: LoRA lives inside
    backbone = decoder_stack(model_)
    lm_head = LMHead.of(model_)
    device = model_.get_input_embeddings().weight.device

    order = sorted((i for i in range(len(sequences)) if len(sequences[i])), key=lambda i: -len(sequences[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="Scoring", unit="batch", disable=not progress):
            width = max(len(sequences[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            target_mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, i in enumerate(batch):
                ids = sequences[i]
                input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
                target_mask[row, : len(ids)] = torch.tensor([bool(m) for m in target_masks[i]], dtype=torch.bool)
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            # With the model split across devices (`device_map`), the backbone can end on another device than the head.
            head_device = lm_head.weight.device
            hidden, input_ids = hidden.to(head_device), input_ids.to(head_device)
            # Position t predicts token t + 1: score the positions whose next token is marked.
            scored = target_mask[:, 1:].to(head_device)
            targets = input_ids[:, 1:][scored]
            if not targets.numel():
                continue
            log_probs = ChunkedLogProbFunction.apply(
                hidden[:, :-1][scored],
                lm_head.weight,
                lm_head.bias,
                targets,
                1.0,
                vocab_chunk_size,
                lm_head.softcap,
                lm_head.logit_scale,
                ("log_probs",),
            )[0]
            counts = scored.sum(dim=1).tolist()
            for i, values in zip(batch, log_probs.float().split(counts), strict=True):
                results[i] = values.tolist()
    finally:
        model.train(was_training)
    return results


@functools.lru_cache(maxsize=2)
def load_scorer(name_or_path: str, dtype: str = "float32", device: str | None = None):
    """A frozen scoring model and its tokenizer, loaded once per process (`name_or_path`, `dtype`, `device`) through
    `trl_ext.models` (Hub ids, local folders, built-in aliases): eval mode, `requires_grad=False` on every parameter,
    on `device` (default: this process's accelerator when there is one, else the CPU). It is held by this cache, not
    by a trainer, so no optimizer, accelerator wrapper or checkpoint ever sees it."""
    from trl_ext.models import load_model, load_tokenizer

    model = load_model(name_or_path, dtype=dtype)
    tokenizer = load_tokenizer(name_or_path)
    model.requires_grad_(False)
    model.eval()
    return model.to(device or default_device()), tokenizer


def default_device() -> str:
    """This process's accelerator (`LOCAL_RANK` picks among several), or "cpu"."""
    if not torch.accelerator.is_available():
        return "cpu"
    accelerator = torch.accelerator.current_accelerator()
    return f"{accelerator.type}:{int(os.environ.get('LOCAL_RANK', '0'))}"
