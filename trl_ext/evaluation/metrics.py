"""Before/after figures for demos and READMEs: exact-match accuracy of greedy answers and the token-mean NLL of
reference completions, on a held-out split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from trl_ext.inference.generation import generate
from trl_ext.inference.scoring import sequence_logprobs


def exact_match(
    model, tokenizer, dataset, is_correct: Callable[[str, str], bool], max_new_tokens: int = 64, batch_size: int = 16
) -> float:
    """Fraction of `dataset` rows whose greedy answer `is_correct(text, row["answer"])`."""
    verdicts = exact_match_items(model, tokenizer, dataset, is_correct, max_new_tokens, batch_size)
    return sum(verdicts) / len(verdicts)


def exact_match_items(
    model, tokenizer, dataset, is_correct: Callable[[str, str], bool], max_new_tokens: int = 64, batch_size: int = 16
) -> list[float]:
    """1.0 or 0.0 per `dataset` row: whether its greedy answer `is_correct(text, row["answer"])` (the items behind
    `exact_match`, for an interval over them)."""
    answers = generate(model, tokenizer, dataset["prompt"], max_new_tokens, batch_size)
    return [float(is_correct(text, gold)) for text, gold in zip(answers, dataset["answer"], strict=True)]


def completion_nll(model, tokenizer, dataset, batch_size: int = 16) -> float:
    """Token-mean NLL of the reference completions (the SFT loss on the split, every token weighted alike)."""
    scores = sequence_logprobs(model, tokenizer, dataset["prompt"], dataset["completion"], batch_size=batch_size)
    tokens = sum(s["num_tokens"] for s in scores)
    return -sum(s["sum_logprob"] for s in scores) / max(tokens, 1)


def kl_drift(
    reference, model, tokenizer, prompts: Sequence[Any], completions: Sequence[Any], batch_size: int = 8
) -> float:
    """Mean per-token KL(reference || model) over the completion tokens, teacher-forced (ASFT's drift measure)."""
    from trl_ext.compat.models import backbone
    from trl_ext.inference.scoring import tokenize_pair
    from trl_ext.losses.token_loss import LMHead, fused_token_loss

    pairs = [tokenize_pair(tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)]
    total, count = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
        attn = torch.zeros_like(ids)
        scored = torch.zeros_like(ids, dtype=torch.bool)
        for row, (seq, mask) in enumerate(chunk):
            ids[row, : len(seq)], attn[row, : len(seq)] = torch.tensor(seq), 1
            scored[row, : len(seq)] = torch.tensor(mask, dtype=torch.bool)
        positions = scored[:, 1:]
        with torch.no_grad():
            h = backbone(model)(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1][positions]
            h0 = backbone(reference)(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1][positions]
            _, stats = fused_token_loss(
                h,
                LMHead.of(model),
                ids[:, 1:][positions],
                normalizer=1,
                ref_hidden=h0,
                ref_head=LMHead.of(reference),
                kl_coef=1.0,
            )
        total += stats.kl.sum().item()
        count += int(positions.sum())
    return total / max(count, 1)
