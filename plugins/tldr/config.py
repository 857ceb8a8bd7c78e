"""Configuration of TLDR's length-regularised reward (arXiv:2505.07961).

The paper gives the shape (correctness minus a length penalty whose strength depends on a level requested in the
prompt) but not the penalty's form or its strengths; the defaults below are the paper card's choices (ours). TLDR
changes only the reward and the prompts, so this is a plain dataclass: the trainer is TRL's `GRPOTrainer`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_LEVELS = {"short": 0.5, "medium": 0.2, "long": 0.05}
LEVEL_TEMPLATE = "Reasoning budget: {level}."


@dataclass
class TLDRConfig:
    """Options of the [TLDR](https://arxiv.org/abs/2505.07961) reward
    R(o) = 1[correct(o)] − λ_ℓ · (L / L_max) · g(o), with g(o) = 1[correct(o)] when `gate_on_correct`, else 1."""

    levels: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_LEVELS),
        metadata={
            "help": "Length level -> penalty strength λ_ℓ >= 0. Defaults short 0.5, medium 0.2, long 0.05 are ours "
            "(the paper's values were not recoverable). Also accepted as a JSON string."
        },
    )
    gate_on_correct: bool = field(
        default=True,
        metadata={
            "help": "Penalise the length of correct completions only, so that wrong answers are not pushed to be "
            "short rather than right (ours; the card's default)."
        },
    )
    level_template: str = field(
        default=LEVEL_TEMPLATE,
        metadata={"help": "The line appended to a prompt to request a level; must contain '{level}'."},
    )
    length_unit: Literal["tokens"] = field(
        default="tokens",
        metadata={"help": "What L counts: completion tokens (from TRL's completion_ids), the only unit."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.levels, str):
            try:
                self.levels = json.loads(self.levels)
            except json.JSONDecodeError as exc:
                raise ValueError(f"levels={self.levels!r} is not valid JSON: {exc}") from None
        if not isinstance(self.levels, dict) or not self.levels:
            raise ValueError(f"levels must be a non-empty dict {{level: λ}}, got {self.levels!r}")
        for level, strength in self.levels.items():
            if not isinstance(level, str) or not level.strip():
                raise ValueError(f"levels: a level name must be a non-empty string, got {level!r}")
            if not _is_real(strength) or strength < 0:
                raise ValueError(f"levels[{level!r}]={strength!r} must be a finite number >= 0")
        self.levels = {level.strip().lower(): float(strength) for level, strength in self.levels.items()}
        if not isinstance(self.gate_on_correct, bool):
            raise ValueError(f"gate_on_correct={self.gate_on_correct!r} must be True or False")
        if not isinstance(self.level_template, str) or "{level}" not in self.level_template:
            raise ValueError(f"level_template={self.level_template!r} must be a string containing '{{level}}'")
        if self.length_unit != "tokens":
            raise ValueError(f"length_unit={self.length_unit!r} is not supported; allowed: tokens")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
