"""A reward model (sequence classifier) as a reward function with TRL's signature, for scoring outside a trainer.

GRPOTrainer loads and scores a reward model itself; decoding-time alignment (tq_star) and evaluation need the same
scores without a trainer. The reward model may tokenize differently from the policy, so it is given text: the prompt
(a string, or messages rendered with the reward model's chat template) followed by the completion, re-tokenized.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from trl_ext.rewards.toolkit import completion_text


class RewardModelScorer:
    """`(prompts, completions, **columns) -> list[float]`: the reward model's single logit for each pair, scored in
    batches of `batch_size` (right-padded; the model finds each row's last token through its pad id)."""

    def __init__(self, model, tokenizer, batch_size: int = 8, max_length: int | None = None, name: str = ""):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.__name__ = name or getattr(model.config, "name_or_path", "") or "reward_model"

    def texts(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[str]:
        out = []
        for prompt, completion in zip(prompts, completions, strict=True):
            answer = completion_text(completion) or ""
            if isinstance(prompt, list) and getattr(self.tokenizer, "chat_template", None):
                messages = [*prompt, {"role": "assistant", "content": answer}]
                out.append(self.tokenizer.apply_chat_template(messages, tokenize=False))
            else:
                out.append(f"{prompt if isinstance(prompt, str) else completion_text(prompt) or ''}{answer}")
        return out

    @torch.no_grad()
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
        texts = self.texts(prompts, completions)
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"
        scores: list[float] = []
        try:
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=self.max_length is not None,
                    max_length=self.max_length,
                    add_special_tokens=False,
                ).to(self.model.device)
                logits = self.model(**enc).logits
                scores.extend(logits[:, 0].float().tolist())
        finally:
            self.tokenizer.padding_side = side
        return scores
