"""QTuningConfig: SFTConfig plus the fields of Q-Tuning's joint sample and token pruning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

BUDGET_MODES = ("batch", "per_sample")
DROP_DIRECTIONS = ("high", "low")
ENTROPY_POSITIONS = ("completion", "all")
DENOMINATORS = ("official", "label")


@dataclass
class QTuningConfig(FusedSFTConfig):
    r"""
    Configuration for [`QTuningTrainer`], from "Winning the Pruning Gamble: A Unified Approach to Joint Sample and
    Token Pruning for Efficient SFT" (Q-Tuning, https://arxiv.org/abs/2509.23873).

    Per micro-batch, each sample is placed on the Error-Uncertainty plane (perplexity, mean predictive entropy) from
    the training forward itself; only Q2 (high PPL, low entropy) and Q4 (low PPL, high entropy) samples are kept
    (quantile thresholds by bisection towards `qt_sample_ratio`, topped up to round(r_s N)), and inside Q2 samples the
    tokens with the highest neighbour-smoothed token perplexity are pruned to meet `qt_token_ratio`. The loss is the
    NLL summed over the kept tokens / D (see `qt_denominator`), divided by the accumulation steps. Defaults follow the
    official code (Q-tuning/Q-tuning, `plug=wisely`, `token_method=wise`).
    """

    own_loss: ClassVar[str] = "Q-Tuning's pruned loss"

    qt_sample_ratio: float = field(
        default=0.25, metadata={"help": "r_s, the share of samples kept per micro-batch (paper: 12.5/25/50%)."}
    )
    qt_token_ratio: float = field(
        default=0.7,
        metadata={
            "help": "r_tok, the token keep ratio applied inside Q2 samples (paper: 50/70/100%; 1 = no pruning)."
        },
    )
    qt_lambda: float = field(
        default=0.5, metadata={"help": "lambda, the neighbour weight of the smoothed token score (official: 0.5)."}
    )
    qt_budget_mode: str = field(
        default="batch",
        metadata={
            "help": "'batch': one token budget round(T_all r_s r_tok) over the micro-batch, the highest-scoring Q2 "
            "tokens removed together (the official code); 'per_sample': keep ceil(r_tok |T_n|) tokens in each Q2 "
            "sample (the paper's description).",
            "choices": list(BUDGET_MODES),
        },
    )
    qt_drop: str = field(
        default="high",
        metadata={
            "help": "Which tokens are pruned: 'high' smoothed scores (the code's 'wise'), or 'low' (its 'fwise' "
            "ablation).",
            "choices": list(DROP_DIRECTIONS),
        },
    )
    qt_entropy_positions: str = field(
        default="completion",
        metadata={
            "help": "Where a sample's mean entropy is taken: 'completion' (label positions, from the loss's own head "
            "pass) or 'all' (every attended position, prompt included, as the official code; projects the prompt "
            "positions through the head too, without gradient).",
            "choices": list(ENTROPY_POSITIONS),
        },
    )
    qt_denominator: str = field(
        default="official",
        metadata={
            "help": "D of the loss: 'official' = attended positions of the kept samples (prompt included) minus the "
            "pruned tokens, as the official code; 'label' = the kept label tokens (a true token mean).",
            "choices": list(DENOMINATORS),
        },
    )
    qt_bisect_iters: int = field(default=10, metadata={"help": "Bisection iterations for the quantile level a."})
    qt_tol: float = field(default=0.01, metadata={"help": "Bisection stops when |keep - r_s| < tol."})
    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW learning rate (official LoRA scripts: 1e-4 at batch 8)."}
    )

    def __post_init__(self) -> None:
        for name in ("qt_sample_ratio", "qt_token_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
                raise ValueError(f"{name}={value} must be in (0, 1].")
        if not (isinstance(self.qt_lambda, (int, float)) and 0.0 <= self.qt_lambda <= 1.0):
            raise ValueError(f"qt_lambda={self.qt_lambda} must be in [0, 1].")
        for name, allowed in (
            ("qt_budget_mode", BUDGET_MODES),
            ("qt_drop", DROP_DIRECTIONS),
            ("qt_entropy_positions", ENTROPY_POSITIONS),
            ("qt_denominator", DENOMINATORS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}.")
        if not isinstance(self.qt_bisect_iters, int) or self.qt_bisect_iters < 1:
            raise ValueError(f"qt_bisect_iters={self.qt_bisect_iters} must be a positive integer.")
        if not (isinstance(self.qt_tol, (int, float)) and math.isfinite(self.qt_tol) and self.qt_tol > 0):
            raise ValueError(f"qt_tol={self.qt_tol} must be a finite number > 0.")
        if self.packing or self.padding_free:
            raise ValueError(
                "Q-Tuning selects samples (rows) of each micro-batch, and packing / padding_free put several samples "
                "in one row: leave packing and padding_free off."
            )
        super().__post_init__()
