"""Rewards for GRPO-based methods: the reward toolkit every built-in reward is built on (completion text, columns,
unique names, 0.0 for garbage, None for not applicable, async scoring) and, in `sandbox`, the process that runs
model-generated code."""

from trl_ext.rewards.toolkit import (
    DEFAULT_MAX_CHARS,
    TRAINER_KWARGS,
    AsyncRewardFunction,
    RewardFunction,
    RewardSetupError,
    Scored,
    cap_text,
    column,
    completion_text,
    log_extra,
    log_metric,
    per_row,
    reward_function,
    reward_name,
    take_rows,
)

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TRAINER_KWARGS",
    "AsyncRewardFunction",
    "RewardFunction",
    "RewardSetupError",
    "Scored",
    "cap_text",
    "column",
    "completion_text",
    "log_extra",
    "log_metric",
    "per_row",
    "reward_function",
    "reward_name",
    "take_rows",
]
