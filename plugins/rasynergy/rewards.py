"""RA-Synergy's four GRPO rewards with TRL's reward-function signature (see scoring.py for the formulas).

Use them together with the card's weights:
`--rewards ra_format_reward,ra_action_type_reward,ra_tool_call_reward,ra_answer_reward --reward_weights 0.2 0.3 1 1`.
Metrics (logged through `log_metric`, averaged over the rows they apply to): `rasynergy/think_rate`,
`rasynergy/think_words` (mean reasoning length in words), `rasynergy/tool_name_acc`, `rasynergy/arg_exact_rate`
(gold tool rows), `rasynergy/answer_f1` (gold answer rows).

A row whose gold cannot be used scores None, "not applicable" (ours), in the rewards that read it, and counts in that
reward's `rasynergy/<type|tool|answer>_gold_error_rate`: a `gold_type` that is neither "tool" nor "answer" (all
three); on a tool row, a `gold_tool_name` that is not non-empty text or `gold_tool_args` that are not a JSON object
(R_tool); on an answer row, a `gold_answer` that is not non-empty text (R_ans). R_tool on an answer row and R_ans on
a tool row stay 0, as the card defines them; a completion that is not text scores 0.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_ext.rewards import RewardFunction, Scored, log_metric
from trl_ext.rewards.similarity import clipped_cosine_scores

from . import scoring
from .config import RASynergyConfig

TYPE_GOLD_ERROR = "rasynergy/type_gold_error_rate"
TOOL_GOLD_ERROR = "rasynergy/tool_gold_error_rate"
ANSWER_GOLD_ERROR = "rasynergy/answer_gold_error_rate"


def tool_gold_ok(gold_tool_name: Any, gold_tool_args: Any) -> bool:
    """A gold tool row's name is non-empty text and its arguments a JSON object (empty or None: no arguments)."""
    name_ok = isinstance(gold_tool_name, str) and bool(gold_tool_name.strip())
    return name_ok and scoring.load_gold_args(gold_tool_args) is not None


def answer_gold_ok(gold_answer: Any) -> bool:
    """A gold answer row's answer is non-empty text."""
    return isinstance(gold_answer, str) and bool(gold_answer.strip())


class _RAReward(RewardFunction):
    """Parses each completion once per reward; a metric is averaged over the rows that report it (a tool-name
    accuracy over the gold tool rows, not diluted by the answer rows)."""

    def __init__(self, config: RASynergyConfig | None = None, **config_fields: Any):
        self.config = config if config is not None else RASynergyConfig(**config_fields)

    def _turn(self, completion: str) -> scoring.ParsedTurn:
        return scoring.parse_turn(completion, self.config.tool_tag)

    def _finish(self, results: list[Scored], kwargs: Mapping[str, Any]) -> list[float | None]:
        names = dict.fromkeys(name for result in results for name in result.metrics)
        for name in names:
            values = [r.metrics[name] for r in results if name in r.metrics]
            log_metric(kwargs, name, sum(values) / len(values))
        return [result.reward for result in results]


class FormatReward(_RAReward):
    """R_fmt: 1 if exactly one <think> span opens the completion and is followed by exactly one valid tool call or by
    non-empty answer text, else 0. Logs the think rate and the mean reasoning length in words."""

    name = "ra_format_reward"

    def score(self, completion: str, **row: Any) -> Scored:
        turn = self._turn(completion)
        words = len(turn.think.split()) if turn.think is not None else 0
        return Scored(
            scoring.r_format(turn),
            {"rasynergy/think_rate": float(bool(turn.think and turn.think.strip())), "rasynergy/think_words": words},
        )


class ActionTypeReward(_RAReward):
    """R_type: 1 if the completion's action (tool call or answer) is the gold turn's `gold_type`, else 0."""

    name = "ra_action_type_reward"
    columns = ("gold_type",)

    def score(self, completion: str, gold_type: Any = None, **row: Any) -> Scored:
        if scoring.gold_type_of(gold_type) is None:  # no usable gold type: not applicable to this row
            return Scored(None, {TYPE_GOLD_ERROR: 1.0})
        turn = self._turn(completion)
        value = scoring.r_type(turn, gold_type)
        return Scored(value, {"rasynergy/type_acc": value, TYPE_GOLD_ERROR: 0.0})


class ToolCallReward(_RAReward):
    """R_tool (gold tool rows): name_weight·1[name == n*] + (1 − name_weight)·ArgF1; 0 for a wrong type, invalid
    JSON or a wrong name. Logs the tool-name accuracy and the argument exact-match rate over gold tool rows."""

    name = "ra_tool_call_reward"
    columns = ("gold_type", "gold_tool_name", "gold_tool_args")

    def score(
        self, completion: str, gold_type: Any = None, gold_tool_name: Any = None, gold_tool_args: Any = None, **row
    ) -> Scored:
        kind = scoring.gold_type_of(gold_type)
        if kind is None or (kind == "tool" and not tool_gold_ok(gold_tool_name, gold_tool_args)):
            return Scored(None, {TOOL_GOLD_ERROR: 1.0})  # no usable gold: not applicable to this row
        turn = self._turn(completion)
        reward = scoring.r_tool(turn, gold_type, gold_tool_name, gold_tool_args, self.config.name_weight)
        if kind != "tool":
            return Scored(reward, {TOOL_GOLD_ERROR: 0.0})  # an answer row: R_tool = 0 (the card)
        gold_args = scoring.load_gold_args(gold_tool_args)
        name_ok = turn.call is not None and isinstance(gold_tool_name, str) and turn.call[0] == gold_tool_name.strip()
        args_exact = name_ok and gold_args is not None and scoring.argument_f1(turn.call[1], gold_args) == 1.0
        return Scored(
            reward,
            {
                "rasynergy/tool_name_acc": float(name_ok),
                "rasynergy/arg_exact_rate": float(args_exact),
                TOOL_GOLD_ERROR: 0.0,
            },
        )


class AnswerReward(_RAReward):
    """R_ans (gold answer rows): similarity of the answer text to `gold_answer`, token F1 (`answer_sim="token_f1"`)
    or the cosine of their sentence embeddings clipped at 0 (`answer_sim="embedding"`, encoder
    `encoder_name_or_path`, loaded on the first call; one batched encode per call, gold answers cached); 0 for a tool
    call or no answer; None for an empty gold answer or gold type. Logs rasynergy/answer_f1 (or rasynergy/answer_cos)
    over gold answer rows.
    In Python, `encoder` may inject a ready `TextEncoder` (or anything with its `encode_cached`)."""

    name = "ra_answer_reward"
    columns = ("gold_type", "gold_answer")

    def __init__(self, config: RASynergyConfig | None = None, encoder: Any = None, **config_fields: Any):
        super().__init__(config, **config_fields)
        self._embedder = None
        if self.config.answer_sim == "embedding":
            from trl_ext.inference.text_encoder import LazyTextEncoder

            self._embedder = LazyTextEncoder(self.config.encoder_name_or_path, encoder=encoder)

    def score(self, completion: str, gold_type: Any = None, gold_answer: Any = None, **row: Any) -> Scored:
        kind = scoring.gold_type_of(gold_type)
        if kind is None or (kind == "answer" and not answer_gold_ok(gold_answer)):
            return Scored(None, {ANSWER_GOLD_ERROR: 1.0})  # no usable gold: not applicable to this row
        reward = scoring.r_answer(self._turn(completion), gold_type, gold_answer)
        if kind != "answer":
            return Scored(reward, {ANSWER_GOLD_ERROR: 0.0})  # a tool row: R_ans = 0 (the card)
        return Scored(reward, {"rasynergy/answer_f1": reward, ANSWER_GOLD_ERROR: 0.0})

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        if self._embedder is None:
            return super().__call__(prompts, completions, completion_ids, **kwargs)
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        results = [Scored(0.0)] * len(texts)
        pending: list[tuple[int, str, str]] = []  # (item, answer, gold answer)
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if text is None:
                continue
            kind, gold = scoring.gold_type_of(row.get("gold_type")), row.get("gold_answer")
            if kind is None or (kind == "answer" and not answer_gold_ok(gold)):
                results[i] = Scored(None, {ANSWER_GOLD_ERROR: 1.0})  # no usable gold: not applicable to this row
                continue
            if kind != "answer":
                results[i] = Scored(0.0, {ANSWER_GOLD_ERROR: 0.0})  # a tool row: R_ans = 0 (the card)
                continue
            results[i] = Scored(0.0, {"rasynergy/answer_cos": 0.0, ANSWER_GOLD_ERROR: 0.0})
            turn = self._turn(text)
            if turn.type != "answer" or not turn.answer.strip():
                continue
            pending.append((i, turn.answer.strip(), gold[: self.max_chars].strip()))
        for i, scored in clipped_cosine_scores(self._embedder, pending, "rasynergy/answer_cos").items():
            results[i] = Scored(scored.reward, {**scored.metrics, ANSWER_GOLD_ERROR: 0.0})
        return self._finish(results, kwargs)


# The card's reward functions with the default options, importable directly (TRL style).
ra_format_reward = FormatReward()
ra_action_type_reward = ActionTypeReward()
ra_tool_call_reward = ToolCallReward()
ra_answer_reward = AnswerReward()
