"""Rewards: the toolkit every GRPO reward function is built on (completion text, dataset columns, unique names,
garbage-proof scoring, async rewards, metrics)."""

from .toolkit import (
    DEFAULT_MAX_CHARS,
    TRAINER_KWARGS,
    AsyncRewardFunction,
    RewardFunction,
    Scored,
    column,
    completion_text,
    log_extra,
    log_metric,
    reward_function,
    reward_name,
)

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TRAINER_KWARGS",
    "AsyncRewardFunction",
    "RewardFunction",
    "Scored",
    "column",
    "completion_text",
    "log_extra",
    "log_metric",
    "reward_function",
    "reward_name",
]
