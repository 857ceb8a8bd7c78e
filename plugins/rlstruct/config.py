"""Configuration of the RL-Struct hierarchical JSON reward (arXiv:2512.00319).

The paper names the reward's components but not their formulas or weights; the defaults below are ours (see the
README's Fidelity section). RL-Struct changes only the reward, so this is a plain dataclass, not a TRL config: the
trainer is TRL's `GRPOTrainer`, configured with `GRPOConfig` as usual.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

WEIGHT_KEYS = ("valid", "format", "struct", "content")
DEFAULT_WEIGHTS = {"valid": 1.0, "format": 0.5, "struct": 1.0, "content": 1.0}


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RLStructConfig:
    """Weights and options of the [RL-Struct](https://arxiv.org/abs/2512.00319) reward
    R = w_valid·R_valid + w_format·R_format + w_struct·R_struct + w_content·R_content (content counted only when the
    completion is valid JSON)."""

    weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        metadata={
            "help": "Weights of the reward components, keys among 'valid', 'format', 'struct', 'content'; a key left "
            "out keeps its default. Defaults (1.0, 0.5, 1.0, 1.0) are ours: the paper's weights were not "
            "recoverable. Also accepted as a JSON string."
        },
    )
    extra_key_penalty: float = field(
        default=0.1,
        metadata={
            "help": "Subtracted from R_struct for each key of the JSON object that the schema neither requires nor "
            "allows (hallucinated keys); must be >= 0. The value 0.1 is ours, not recovered from the paper."
        },
    )
    allow_fences_for_valid: bool = field(
        default=True,
        metadata={
            "help": "Whether R_valid (and the structure and content rewards it gates) accepts JSON wrapped in one "
            "```json ... ``` fence pair. R_format always requires the raw text to be JSON."
        },
    )
    numeric_tol: float = field(
        default=1e-6,
        metadata={"help": "Absolute tolerance when comparing numbers in the content reward; must be >= 0."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.weights, str):
            try:
                self.weights = json.loads(self.weights)
            except json.JSONDecodeError as exc:
                raise ValueError(f"weights={self.weights!r} is not valid JSON: {exc}") from None
        if not isinstance(self.weights, dict):
            raise ValueError(
                f"weights must be a dict with keys among {', '.join(WEIGHT_KEYS)}, got {type(self.weights).__name__} "
                f"{self.weights!r}"
            )
        unknown = sorted(set(self.weights) - set(WEIGHT_KEYS))
        if unknown:
            raise ValueError(
                f"weights has unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {', '.join(WEIGHT_KEYS)}"
            )
        for key, value in self.weights.items():
            if not _is_real(value) or value < 0:
                raise ValueError(f"weights[{key!r}]={value!r} must be a finite number >= 0")
        self.weights = {key: float(self.weights.get(key, DEFAULT_WEIGHTS[key])) for key in WEIGHT_KEYS}
        if not _is_real(self.extra_key_penalty) or self.extra_key_penalty < 0:
            raise ValueError(f"extra_key_penalty={self.extra_key_penalty!r} must be a finite number >= 0")
        if not isinstance(self.allow_fences_for_valid, bool):
            raise ValueError(f"allow_fences_for_valid={self.allow_fences_for_valid!r} must be True or False")
        if not _is_real(self.numeric_tol) or self.numeric_tol < 0:
            raise ValueError(f"numeric_tol={self.numeric_tol!r} must be a finite number >= 0")
