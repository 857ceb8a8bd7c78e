"""Configuration of SRPPO (arXiv:2510.21090): the self-reward r(x, y) = log π_sft(y|x) − log π_pt(y|x) and the RLOO
run that maximises it.

`SelfRewardConfig` holds the reward's options (the reward `self_reward_log_ratio` alone, usable in any GRPO/RLOO run);
`SRPPOConfig` is TRL's `RLOOConfig` plus the same fields, for `trl-ext train srppo`. The reward is the paper's; the
clip, the truncation rule, the batch size and the dtype are ours (documented per field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from trl import RLOOConfig

DTYPES = ("float32", "bfloat16", "float16")


def _check_reward_fields(cfg: Any, prefix: str) -> None:
    for name in ("reward_scale", "reward_clip", "no_eos_reward"):
        value = getattr(cfg, name)
        if value is None and name != "reward_scale":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{prefix}{name}={value!r} must be a finite number.")
    if cfg.reward_clip is not None and cfg.reward_clip <= 0:
        raise ValueError(f"{prefix}reward_clip={cfg.reward_clip} must be > 0 (it clips to [-c, c]) or None.")
    if (
        isinstance(cfg.reward_batch_size, bool)
        or not isinstance(cfg.reward_batch_size, int)
        or cfg.reward_batch_size < 1
    ):
        raise ValueError(f"{prefix}reward_batch_size={cfg.reward_batch_size!r} must be an integer >= 1.")
    if (
        isinstance(cfg.reward_max_length, bool)
        or not isinstance(cfg.reward_max_length, int)
        or cfg.reward_max_length < 2
    ):
        raise ValueError(f"{prefix}reward_max_length={cfg.reward_max_length!r} must be an integer >= 2.")
    if cfg.reward_dtype not in DTYPES:
        raise ValueError(f"{prefix}reward_dtype={cfg.reward_dtype!r}; allowed: {', '.join(DTYPES)}.")


@dataclass
class SelfRewardConfig:
    """r(x, y) = Σ_j [log π_sft(y_j | x, y_<j) − log π_pt(y_j | x, y_<j)] over the completion's tokens up to and
    including EOS (card step 2), both frozen models at temperature 1 on the same token ids."""

    sft_model_name_or_path: str = field(
        default="",
        metadata={"help": "π_sft: the model SFT-ed on the demonstrations (frozen; the policy starts from it)."},
    )
    base_model_name_or_path: str = field(
        default="",
        metadata={"help": "π_pt: the pretrained model before SFT (frozen). Must share π_sft's tokenizer."},
    )
    length_normalize: bool = field(
        default=False,
        metadata={"help": "Divide the summed log-ratio by the number of completion tokens (paper: false, a sum)."},
    )
    reward_scale: float = field(default=1.0, metadata={"help": "Multiplies the reward (default 1, ours)."})
    reward_clip: float | None = field(
        default=None,
        metadata={"help": "Clip the scaled reward to [-c, c]; None: no clip (default; the paper gives none)."},
    )
    no_eos_reward: float | None = field(
        default=None,
        metadata={
            "help": "Reward of a truncated completion (no EOS: unfinished, the paper's reward sits at EOS); None "
            "(default, ours): scored normally and counted in srppo/no_eos_frac."
        },
    )
    reward_batch_size: int = field(default=8, metadata={"help": "Sequences per frozen-model forward (default 8)."})
    reward_dtype: str = field(
        default="float32", metadata={"help": f"dtype of the frozen models: {', '.join(DTYPES)} (default float32)."}
    )
    reward_max_length: int = field(
        default=4096,
        metadata={
            "help": "Longest prompt + completion scored, in tokens; a longer one is not applicable (reward None, "
            "left out of the baseline) rather than cut (default 4096, ours)."
        },
    )

    def __post_init__(self):
        for name in ("sft_model_name_or_path", "base_model_name_or_path"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(
                    f"self_reward_log_ratio needs {name} (a Hub id, local folder or built-in alias), got "
                    f"{getattr(self, name)!r}."
                )
        _check_reward_fields(self, "self_reward_log_ratio: ")


REWARD_FIELDS = tuple(f.name for f in fields(SelfRewardConfig))


@dataclass
class SRPPOConfig(RLOOConfig):
    """TRL's `RLOOConfig` for SRPPO (arXiv:2510.21090): the policy starts from π_sft, the reward is
    `self_reward_log_ratio`, and RLOO's KL-in-reward (`beta`, against the initial policy = π_sft) plays PPO-RLHF's
    KL penalty. See `SelfRewardConfig` for the reward's fields."""

    sft_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "π_sft, the reward's numerator (frozen). Default: the policy's own model (--model_name_or_path), "
            "as the paper starts the policy from π_sft."
        },
    )
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "π_pt, the pretrained model before SFT (frozen). Required."}
    )
    length_normalize: bool = field(
        default=False, metadata={"help": "Divide the log-ratio by the completion length (paper: false, a sum)."}
    )
    reward_scale: float = field(default=1.0, metadata={"help": "Multiplies the self-reward (default 1, ours)."})
    reward_clip: float | None = field(
        default=None, metadata={"help": "Clip the scaled self-reward to [-c, c]; None: no clip (default)."}
    )
    no_eos_reward: float | None = field(
        default=None,
        metadata={"help": "Self-reward of a truncated completion; None (default): scored normally, counted."},
    )
    reward_batch_size: int = field(default=8, metadata={"help": "Sequences per frozen-model forward (default 8)."})
    reward_dtype: str = field(
        default="float32", metadata={"help": f"dtype of the frozen models: {', '.join(DTYPES)} (default float32)."}
    )
    reward_max_length: int = field(
        default=4096,
        metadata={
            "help": "Longest prompt + completion scored, in tokens; a longer one is not applicable (reward None, "
            "left out of the baseline) rather than cut (default 4096, ours)."
        },
    )
    beta: float = field(
        default=0.05,
        metadata={"help": "KL coefficient against the initial policy π_sft, inside RLOO's reward (card: 0.05)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.base_model_name_or_path:
            raise ValueError(
                "srppo needs --base_model_name_or_path: π_pt, the pretrained model the SFT model was trained from."
            )
        _check_reward_fields(self, "")

    def reward_config(self, policy_name_or_path: str | None) -> SelfRewardConfig:
        """The self-reward's config, π_sft defaulting to the policy's model."""
        sft = self.sft_model_name_or_path or policy_name_or_path
        if not sft:
            raise ValueError("srppo: set --sft_model_name_or_path (the policy's model path is unknown).")
        values = {name: getattr(self, name) for name in REWARD_FIELDS}
        return SelfRewardConfig(**{**values, "sft_model_name_or_path": sft})
