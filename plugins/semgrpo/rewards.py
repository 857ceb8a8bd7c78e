"""semgrpo's rewards as TRL reward functions on trl_ext's reward toolkit.

- `semantic_similarity_reward`: R_sem = cos(v, v*), the cosine between the embeddings (mean pooling + L2, frozen
  encoder, `trl_ext.inference.text_encoder`) of the completion's explanation and the row's `reference_explanation`.
  One call encodes the batch's explanations and its references not seen before in one `encode` (batches of
  `batch_size`); reference embeddings are cached, since each prompt comes back `num_generations` times a step.
- `mcq_accuracy_reward`: R_acc = 1 if the answer span equals the gold option (`answer` column), case- and
  space-insensitive.
- `explanation_format_reward`: R_fmt = 1 if the answer and explanation spans each occur exactly once, in order.

TRL weighs and sums them (`reward_weights`, suggested 1.0 / 1.0 / 0.5, ours); `make_semgrpo_rewards` builds all three
from one `SemanticRewardConfig`. A row whose reference (or gold answer) is not text scores None (not applicable); a
completion that is not text, or whose explanation is empty, scores 0.0.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from trl_ext.rewards import RewardFunction, Scored, cap_text, reward_function

from .config import DEFAULT_WEIGHTS, SemanticRewardConfig
from .parsing import accuracy, explanation, format_ok, normalize_answer

EMPTY = "semantic/empty_explanation_frac"
TRUNCATED = "semantic/truncated_frac"
NO_REFERENCE = "semantic/missing_reference_frac"


class SemanticSimilarityReward(RewardFunction):
    """R_sem: cosine similarity of the explanation's and the reference explanation's sentence embeddings.

    Options are the fields of `SemanticRewardConfig` (or a whole `config`); in Python, `encoder` may be any object
    with `encode(texts)` and `encode_cached(texts, extra)` like `trl_ext.inference.TextEncoder` (tests inject fixed
    vectors this way). The encoder loads on the first call, once per process; the encoder's folder is checked when
    the reward is built, so a missing encoder stops the run before training.
    """

    name = "semantic_similarity_reward"
    columns = ("reference_explanation",)

    def __init__(self, config: SemanticRewardConfig | None = None, encoder: Any = None, **options: Any) -> None:
        if config is None:
            config = SemanticRewardConfig(**options)
        elif options:
            raise ValueError(f"give either config or its fields, not both (got {', '.join(sorted(options))})")
        self.config = config
        self._injected = encoder is not None
        self._encoder = encoder
        if encoder is None:
            from trl_ext.models import resolve_encoder_path

            resolve_encoder_path(config.encoder_name_or_path)  # a clear error now, not at the first step

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from trl_ext.inference.text_encoder import load_text_encoder

            cfg = self.config
            self._encoder = load_text_encoder(
                cfg.encoder_name_or_path,
                max_length=cfg.max_length,
                pooling=cfg.pooling,
                normalize=cfg.normalize,
                batch_size=cfg.batch_size,
                device=cfg.device,
            )
        return self._encoder

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        cfg = self.config
        results: list[Scored] = [Scored(0.0)] * len(texts)
        pending: list[tuple[int, str, str]] = []  # (item, explanation, reference)
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if text is None:
                continue  # not a completion: 0.0
            reference = cap_text(row.get("reference_explanation"), self.max_chars)
            if not isinstance(reference, str) or not reference.strip():
                results[i] = Scored(None, {NO_REFERENCE: 1.0})
                continue
            found = explanation(text, cfg.answer_tag, cfg.explanation_tag)
            if not found:
                results[i] = Scored(0.0, {EMPTY: 1.0, TRUNCATED: 0.0, NO_REFERENCE: 0.0})
                continue
            pending.append((i, found, reference.strip()))
        if pending:
            references, batch = self.encoder.encode_cached([p[2] for p in pending], extra=[p[1] for p in pending])
            similarities = (batch.embeddings.float() * references.float()).sum(dim=-1).tolist()
            for (i, _, _), value, cut in zip(pending, similarities, batch.truncated, strict=True):
                results[i] = Scored(self._transform(value), {EMPTY: 0.0, TRUNCATED: float(cut), NO_REFERENCE: 0.0})
        return self._finish(results, kwargs)

    def _transform(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        if self.config.normalize:  # a cosine; rounding can step past 1
            value = min(1.0, max(-1.0, value))
        return max(0.0, value) if self.config.sim_transform == "clip0" else value

    def __getstate__(self) -> dict[str, Any]:
        # The encoder's weights are not sent to other processes: each loads its own copy on first use.
        return {**self.__dict__, "_encoder": self._encoder if self._injected else None}


@reward_function(name="mcq_accuracy_reward", columns=("answer",))
def mcq_accuracy_reward(completion: str, *, answer_tag: str = "answer", **row: Any) -> float | None:
    """R_acc: 1.0 if the answer span is the gold option (case/space-insensitive), else 0.0; None without a gold."""
    gold = row.get("answer")
    if isinstance(gold, bool) or not isinstance(gold, (str, int)):
        return None
    gold = cap_text(str(gold), 1000)
    if not normalize_answer(gold):
        return None
    return accuracy(completion, gold, answer_tag)


@reward_function(name="explanation_format_reward")
def explanation_format_reward(
    completion: str,
    *,
    answer_tag: str = "answer",
    explanation_tag: str = "explanation",
    explanation_first: bool = False,
    **row: Any,
) -> float:
    """R_fmt: 1.0 if <answer>...</answer> and <explanation>...</explanation> each occur exactly once, in order."""
    return float(format_ok(completion, answer_tag, explanation_tag, explanation_first))


def make_semgrpo_rewards(config: SemanticRewardConfig | None = None) -> tuple[list[RewardFunction], list[float]]:
    """The three rewards built from one config, and the suggested `reward_weights` (1.0, 1.0, 0.5; ours):
    `GRPOTrainer(reward_funcs=rewards, args=GRPOConfig(reward_weights=weights, ...))`. Names carry the options that
    differ from the defaults, as `--rewards NAME:key=value` would."""
    config = config or SemanticRewardConfig()
    default = SemanticRewardConfig()
    changed = {
        f.name: getattr(config, f.name) for f in fields(config) if getattr(config, f.name) != getattr(default, f.name)
    }
    tags = {k: v for k, v in changed.items() if k in ("answer_tag", "explanation_tag", "explanation_first")}
    rewards = [
        SemanticSimilarityReward.from_options(**changed),
        mcq_accuracy_reward.from_options(**{k: v for k, v in tags.items() if k == "answer_tag"}),
        explanation_format_reward.from_options(**tags),
    ]
    return rewards, list(DEFAULT_WEIGHTS)
