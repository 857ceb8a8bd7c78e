"""Generation with the thought slots filled (evaluation): each question in the inference layout (no gold steps), the
thoughts computed once per prompt and injected, then greedy decoding from the frozen base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from trl_ext.inference.generation import Generation, cut_at_stop, stop_token_ids

from .data import boxed_answer, generation_batch, lta_format


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: Sequence[str], max_new_tokens: int = 96, batch_size: int = 16
) -> list[str]:
    """The decoded completions of `model` (an `LTAThinkerModel`) for `questions`, greedy, in batches."""
    return [g.text for g in generate_question_completions(model, tokenizer, questions, max_new_tokens, batch_size)]


@torch.no_grad()
def generate_question_completions(
    model,
    tokenizer,
    questions: Sequence[str],
    max_new_tokens: int = 96,
    batch_size: int = 16,
    progress: bool = False,
    **generate_kwargs: Any,
) -> list[Generation]:
    """`trl_ext.inference.Generation`s of `model` for `questions` (greedy unless `generate_kwargs` sample; with
    `num_return_sequences` n, the n completions of a question follow one another), each cut after its first stop
    token."""
    was_training = model.training
    model.eval()
    stop_ids = stop_token_ids(model.base, tokenizer)
    outputs: list[Generation] = []
    device = next(model.parameters()).device
    try:
        for start in tqdm(range(0, len(questions), batch_size), desc="Generating", disable=not progress):
            rows = [
                lta_format({"question": q, "answer": ""}, tokenizer, model.thought_token_ids, False, False)
                for q in questions[start : start + batch_size]
            ]
            batch = {k: v.to(device) for k, v in generation_batch(rows, tokenizer.pad_token_id).items()}
            for key in ("q_and_step_index", "ans_ids", "ans_attention_mask"):
                batch.pop(key)
            new = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **{"do_sample": False, **generate_kwargs},
            )
            per_question = len(new) // len(rows)
            for i, ids in enumerate(new.tolist()):
                ids = cut_at_stop(ids, stop_ids)
                prompt = tuple(rows[i // per_question]["input_ids"])
                outputs.append(
                    Generation(tokenizer.decode(ids, skip_special_tokens=True), len(ids), tuple(ids), prompt)
                )
    finally:
        model.train(was_training)
    return outputs


def question_of(prompt: Any) -> str:
    """The question of a prompt: a conversational prompt's last user turn, or the plain text."""
    if isinstance(prompt, list):
        turns = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if not turns:
            raise ValueError("an lta-thinker prompt needs a user turn holding the question")
        return str(turns[-1])
    return str(prompt)


def exact_match(texts: Sequence[str], answers: Sequence[str]) -> float:
    """Share of `texts` whose last \\boxed{} equals the gold answer (the card's metric)."""
    hits = sum(boxed_answer(t) == str(a).strip() for t, a in zip(texts, answers, strict=True))
    return hits / max(len(texts), 1)
