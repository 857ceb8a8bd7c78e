"""Generation with the thought slots filled (evaluation): each question in the inference layout (no gold steps), the
thoughts computed once per prompt and injected, then greedy decoding from the frozen base."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import boxed_answer, generation_batch, lta_format


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: Sequence[str], max_new_tokens: int = 96, batch_size: int = 16
) -> list[str]:
    """The decoded completions of `model` (an `LTAThinkerModel`) for `questions`, greedy, in batches."""
    model.eval()
    texts: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(questions), batch_size):
        rows = [
            lta_format({"question": q, "answer": ""}, tokenizer, model.thought_token_ids, False, False)
            for q in questions[start : start + batch_size]
        ]
        batch = {k: v.to(device) for k, v in generation_batch(rows, tokenizer.pad_token_id).items()}
        batch.pop("q_and_step_index")
        batch.pop("ans_ids")
        batch.pop("ans_attention_mask")
        new = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts += tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts


def exact_match(texts: Sequence[str], answers: Sequence[str]) -> float:
    """Share of `texts` whose last \\boxed{} equals the gold answer (the card's metric)."""
    hits = sum(boxed_answer(t) == str(a).strip() for t, a in zip(texts, answers, strict=True))
    return hits / max(len(texts), 1)
