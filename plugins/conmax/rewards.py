"""`conmax_confidence`: ConMax's reward R_c = α·S_ans + (1−α)·S_think under a frozen auxiliary model, with its gate.

Per completion ô (the policy's compression of the row's `trace` z for the query in `query`, gold answer `answer`):
ẑ = the `<compressed>…</compressed>` span of ô; R = `invalid_reward` when the span is missing (with `require_span`),
empty, or not shorter than z in auxiliary tokens (with `require_shorter`); otherwise R_c from one auxiliary forward
(see `scoring.py`). Rows whose trace, query or answer is not text are not applicable (None) whatever the completion,
gate included, and count in `conmax/gold_error_rate`; so are sequences longer than `aux_max_length`.

The auxiliary model is loaded on first use through `trl_ext.inference.scoring.load_scorer` (cached per process,
frozen, never handed to the trainer) and scores the whole batch in batches of `aux_batch_size`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from trl_ext.inference.scoring import load_scorer
from trl_ext.rewards import RewardFunction, cap_text, log_metric

from .config import ConMaxConfig
from .scoring import answer_text, clean, combine, compressed_trace, conmax_scores, query_text

logger = logging.getLogger(__name__)

COLUMNS = ("query", "trace", "answer")


@functools.lru_cache(maxsize=2)
def _policy_tokenizer(name_or_path: str):
    from trl_ext.models import load_tokenizer

    return load_tokenizer(name_or_path)


class ConMaxConfidenceReward(RewardFunction):
    """ConMax's confidence reward (arXiv:2601.04973). Options are `ConMaxConfig`'s fields, or `config=`."""

    name = "conmax_confidence"
    columns = COLUMNS

    def __init__(self, config: ConMaxConfig | None = None, **options: Any):
        if config is not None and options:
            raise ValueError("conmax_confidence: give either `config` or its fields as options, not both")
        self.config = config if config is not None else ConMaxConfig(**options)

    def scorer(self):
        """(model, tokenizer) of π_φ, loaded once per process."""
        return load_scorer(self.config.aux_model_name_or_path, self.config.aux_dtype)

    def score(self, completion: str, **row: Any) -> float | None:  # one item: the batched path, on a batch of one
        return self(completions=[completion], **{c: [row.get(c)] for c in COLUMNS})[0]

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        cfg = self.config
        rewards: list[float | None] = [0.0 if text is None else None for text in texts]
        candidates = []  # (index, ẑ, z, x, y) of the items the gate lets through
        text_items = invalid = gold_errors = 0
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if text is None:
                continue
            text_items += 1
            trace, query = cap_text(row.get("trace"), self.max_chars), cap_text(row.get("query"), self.max_chars)
            if not _row_ok(trace, query, row.get("answer")):
                gold_errors += 1
                continue  # no trace to compress, or no query or gold answer to score it by: not applicable
            z_hat = compressed_trace(text, cfg)
            if not z_hat:
                rewards[i] = cfg.invalid_reward
                invalid += 1
                continue
            candidates.append((i, z_hat, trace, query, row.get("answer")))
        scored = []
        if candidates:
            try:
                scored = self._score(candidates, kwargs)
            except Exception as exc:  # the scorer failing must not crash training: these items score 0.0
                self._failed(exc)
                for i, *_ in candidates:
                    rewards[i] = 0.0
        for i, value, gated in scored:
            rewards[i] = value
            invalid += gated
        if text_items:
            log_metric(kwargs, "conmax/invalid_frac", invalid / text_items)
            log_metric(kwargs, "conmax/gold_error_rate", gold_errors / text_items)
        return rewards

    def _score(self, candidates: list[tuple], kwargs: dict[str, Any]) -> list[tuple[int, float | None, bool]]:
        cfg = self.config
        model, tokenizer = self.scorer()
        count = _policy_tokenizer(cfg.policy_tokenizer) if cfg.policy_tokenizer else tokenizer
        out: list[tuple[int, float | None, bool]] = []
        todo, ratios = [], []
        for i, z_hat, trace, query, answer in candidates:
            z_hat, trace = clean(z_hat), clean(trace)
            if cfg.require_shorter and _num_tokens(tokenizer, z_hat) >= _num_tokens(tokenizer, trace):
                out.append((i, cfg.invalid_reward, True))
                continue
            ratios.append(_num_tokens(count, z_hat) / max(_num_tokens(count, trace), 1))
            todo.append((i, z_hat, query, answer))
        if not todo:
            return out
        scores = conmax_scores(model, tokenizer, [t[2] for t in todo], [t[1] for t in todo], [t[3] for t in todo], cfg)
        s_ans, s_think, unscored = [], [], 0
        for (i, *_), pair in zip(todo, scores, strict=True):
            if pair is None:
                unscored += 1
                out.append((i, None, False))
                continue
            s_ans.append(pair[0])
            s_think.append(pair[1])
            out.append((i, combine(pair[0], pair[1], cfg.alpha), False))
        if s_ans:
            log_metric(kwargs, "conmax/S_ans", sum(s_ans) / len(s_ans))
            log_metric(kwargs, "conmax/S_think", sum(s_think) / len(s_think))
        log_metric(kwargs, "conmax/compression_ratio", sum(ratios) / len(ratios))
        log_metric(kwargs, "conmax/not_applicable_frac", unscored / len(todo))
        return out


def _row_ok(trace: Any, query: Any, answer: Any) -> bool:
    """Whether a row can be scored: a non-empty trace z, a query x (text or chat messages) and a gold answer y."""
    if not isinstance(trace, str) or not trace.strip():
        return False
    return answer_text(answer) is not None and query_text(query, None, use_chat_template=False) is not None


def _num_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
