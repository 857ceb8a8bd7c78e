"""Configuration of ConMax's confidence reward (arXiv:2601.04973).

ConMax changes only the reward (the policy is trained by TRL's `GRPOTrainer`), so this is a plain dataclass. The
reward terms are the paper's; the weighting, the span tag, the format gate and the length bound are ours (the paper's
values were not recovered), as each field's help says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DTYPES = ("float32", "bfloat16", "float16")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class ConMaxConfig:
    """R_c(ẑ) = α·S_ans(ẑ) + (1−α)·S_think(ẑ) under a frozen auxiliary model π_φ, with
    S_ans = mean log p_φ(y | x, ẑ) over the answer's tokens and S_think = mean log p_φ(ẑ | x) over ẑ's tokens."""

    aux_model_name_or_path: str = field(
        default="smollm2-135m",
        metadata={
            "help": "The frozen auxiliary reasoning model π_φ that scores compressed traces (Hub id, local folder or "
            "built-in alias; scored with its own tokenizer). Default: the built-in smollm2-135m (ours)."
        },
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "Weight α of S_ans; 1−α weighs S_think; in [0, 1]. 0.5 is ours (not recovered)."},
    )
    span_tag: str = field(
        default="compressed",
        metadata={"help": "Tag of the compressed-trace span <tag>…</tag> in the policy's output (ours)."},
    )
    require_span: bool = field(
        default=True,
        metadata={
            "help": "A completion without a closed span scores invalid_reward (the format gate, ours); false: the "
            "whole completion is the compressed trace when the span is missing."
        },
    )
    require_shorter: bool = field(
        default=True,
        metadata={"help": "ẑ must have fewer auxiliary tokens than the trace z, else invalid_reward (ours)."},
    )
    invalid_reward: float = field(
        default=-10.0,
        metadata={"help": "Reward of a gated completion: empty or missing span, no compression (ours: -10)."},
    )
    think_open: str = field(default="<think>", metadata={"help": "Opens the thinking span for π_φ."})
    think_close: str = field(default="</think>", metadata={"help": "Closes the thinking span for π_φ."})
    answer_prefix: str = field(default="\n", metadata={"help": "Text between think_close and the answer y."})
    aux_batch_size: int = field(default=8, metadata={"help": "Sequences per auxiliary forward."})
    aux_dtype: str = field(default="float32", metadata={"help": f"Auxiliary model dtype: {', '.join(DTYPES)}."})
    aux_chat_template: bool = field(
        default=True,
        metadata={
            "help": "Render the query x with the auxiliary tokenizer's chat template (a string becomes one user "
            "turn) when it has one; false: plain text followed by a newline."
        },
    )
    aux_max_length: int = field(
        default=4096,
        metadata={
            "help": "Longest auxiliary sequence scored (x + ẑ + y in aux tokens); a longer one is not applicable "
            "(reward None, counted in conmax/not_applicable_frac) rather than blamed on the policy (ours)."
        },
    )
    policy_tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer of the policy, for conmax/compression_ratio in policy tokens as the paper measures "
            "it; default: the auxiliary tokenizer (identical when the policy and π_φ share it)."
        },
    )

    def __post_init__(self) -> None:
        if not isinstance(self.aux_model_name_or_path, str) or not self.aux_model_name_or_path:
            raise ValueError(f"aux_model_name_or_path={self.aux_model_name_or_path!r} must be a non-empty string")
        if not _is_real(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha!r} must be a number in [0, 1]")
        if not isinstance(self.span_tag, str) or not self.span_tag or any(c in self.span_tag for c in "<>/ "):
            raise ValueError(f"span_tag={self.span_tag!r} must be a non-empty tag name without <, >, / or spaces")
        for name in ("require_span", "require_shorter", "aux_chat_template"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        if not _is_real(self.invalid_reward):
            raise ValueError(f"invalid_reward={self.invalid_reward!r} must be a finite number")
        for name in ("think_open", "think_close", "answer_prefix"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a string")
        for name in ("aux_batch_size", "aux_max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if self.aux_dtype not in DTYPES:
            raise ValueError(f"aux_dtype={self.aux_dtype!r} must be one of {', '.join(DTYPES)}")
        if self.policy_tokenizer is not None and (
            not isinstance(self.policy_tokenizer, str) or not self.policy_tokenizer
        ):
            raise ValueError(f"policy_tokenizer={self.policy_tokenizer!r} must be a tokenizer name or path, or None")

    @property
    def open_tag(self) -> str:
        return f"<{self.span_tag}>"

    @property
    def close_tag(self) -> str:
        return f"</{self.span_tag}>"
