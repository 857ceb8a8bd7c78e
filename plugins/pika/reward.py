"""`pika_rm`: the card's stand-in reward model as a reward, so answers are judged the way the `pika` transform judged
candidates: a response's token-mean log-probability under a frozen model, rendered as SFT renders it (chat template
when conversational), minus `length_penalty` x its token count. The demo's win-rate reads it on each arm's greedy
answers (`trl-ext compare ... --eval reward:pika_rm`); in a GRPO run it is a (weak) learned-RM substitute.

The model is loaded once per process through `trl_ext.inference.scoring.load_scorer` and scores in batches through
the chunked head (`loglik_scores`), never the full logits.
"""

from __future__ import annotations

from typing import Any

from trl_ext.inference.curation import loglik_scores
from trl_ext.inference.scoring import load_scorer
from trl_ext.plugin.options import as_bool
from trl_ext.rewards import RewardFunction, log_metric
from trl_ext.run.arguments import DEFAULT_MODEL

from .select import _as_completion, _as_prompt


class PikaStandinReward(RewardFunction):
    """PiKa's stand-in reward model (arXiv:2510.06670): mean token log-prob of the response under `model_name_or_path`
    minus `length_penalty` x tokens; None where the response renders to no token, 0.0 for a non-text completion."""

    name = "pika_rm"

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        length_penalty: float = 0.0,
        conversational: bool = True,
        dtype: str = "float32",
        batch_size: int = 16,
        max_length: int | None = 1024,
    ):
        self.model_name_or_path = model_name_or_path
        self.length_penalty = float(length_penalty)
        self.conversational = as_bool(conversational)
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.max_length = None if max_length is None else int(max_length)

    def score(self, completion: str, **row: Any) -> float | None:  # one item: the batched path, on a batch of one
        return self(prompts=[row.get("prompt")], completions=[completion])[0]

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        rewards: list[float | None] = [0.0 if text is None else None for text in texts]
        todo = [i for i, (text, row) in enumerate(zip(texts, rows, strict=True)) if text is not None and row["prompt"]]
        if not todo:
            return rewards
        try:
            model, tokenizer = load_scorer(self.model_name_or_path, self.dtype)
            scored = loglik_scores(
                model,
                tokenizer,
                [_as_prompt(rows[i]["prompt"], self.conversational) for i in todo],
                [_as_completion(texts[i], self.conversational) for i in todo],
                batch_size=self.batch_size,
                max_length=self.max_length,
            )
        except Exception as exc:  # the scorer failing must not crash training: these items score 0.0
            self._failed(exc)
            return [0.0 if r is None else r for r in rewards]
        lengths = []
        for i, s in zip(todo, scored, strict=True):
            if s["num_tokens"]:
                rewards[i] = s["mean_logprob"] - self.length_penalty * s["num_tokens"]
                lengths.append(s["num_tokens"])
        if lengths:
            log_metric(kwargs, "pika/response_tokens", sum(lengths) / len(lengths))
        return rewards
