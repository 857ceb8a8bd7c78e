"""IFTConfig: SFTConfig plus the fields of Intuitive Fine-Tuning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .loss import PROPAGATION_NORMS, PROPAGATION_SIDES, PROPAGATION_TYPES
from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

IFT_LAMBDA_SCHEDULES = ("linear",)


@dataclass
class IFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`IFTTrainer`], from "Intuitive Fine-Tuning: Towards Simplifying Alignment into a Single
    Process" (https://arxiv.org/abs/2405.11870), following the official code (TsinghuaC3I/Intuitive-Fine-Tuning,
    loss "ift").

    Each step first runs the policy (no gradient) to get its greedy guess for every response token, then trains on
    inputs whose response embeddings are (1 - λ) E[gold] + λ E[guess] ("temporal residual connection"), with token
    losses re-weighted by a γ-discounted sum of the answer's future token losses ("relation propagation"). The loss
    is a per-sequence token mean, averaged over the sequences of the global batch. λ = 0 and γ = 0 is plain SFT with
    that normalisation. Official defaults: λ = 0.2 (static), γ = 0.95, propagation type loss, norm L1, side left.
    The official recipe (RMSprop, lr 5e-7, 7B models) is a recipe, not part of the method: set it with the usual
    `optim` / `learning_rate` flags.
    """

    own_loss: ClassVar[str] = "IFT's own loss"

    ift_lambda: float = field(
        default=0.2,
        metadata={
            "help": "λ, weight of the model's own greedy guess in the response embeddings (official: 0.2). With "
            "ift_lambda_schedule='linear' this is the value reached at the end of warmup."
        },
    )
    ift_lambda_schedule: str | None = field(
        default=None,
        metadata={
            "help": "None: static λ (official default). 'linear': λ rises from ift_min_lambda to ift_lambda "
            "over the warmup steps (warmup_steps / warmup_ratio), then stays."
        },
    )
    ift_min_lambda: float = field(
        default=0.2,
        metadata={"help": "Starting λ of the linear schedule (official min_lambda: 0.2)."},
    )
    ift_gamma: float = field(
        default=0.95,
        metadata={
            "help": "γ, discount of relation propagation (official: 0.95); 1 = plain suffix sums, 0 = no "
            "re-weighting (all weights 1)."
        },
    )
    ift_propagation_type: str = field(
        default="loss",
        metadata={
            "help": "What is propagated: 'loss' (-log p_t / n_b, official default), 'logps' (-log p_t) or "
            "'mask' (1 per token).",
            "choices": list(PROPAGATION_TYPES),
        },
    )
    ift_propagation_norm: str = field(
        default="L1",
        metadata={
            "help": "Sharpening of the propagated sums: 'L1' (as is, official default), 'L2' (squared), "
            "'softmax' (over the answer) or 'log' (log(w+1)).",
            "choices": list(PROPAGATION_NORMS),
        },
    )
    ift_propagation_side: str = field(
        default="left",
        metadata={
            "help": "'left': each token weighted by the discounted sum of the losses from it to the end of the "
            "answer (official default). 'right': prefix sums, inverted (official option; depends on "
            "the smallest prefix sum of the micro-batch).",
            "choices": list(PROPAGATION_SIDES),
        },
    )
    ift_detach_weights: bool = field(
        default=False,
        metadata={
            "help": "Stop the gradient through the propagation weights. False (official): the weights are "
            "functions of the log-probs being trained and the gradient flows through them."
        },
    )
    ift_frozen_embedding_copy: bool = field(
        default=True,
        metadata={
            "help": "Embed the inputs through a stop-gradient copy of the input embedding (official: a copy "
            "re-synced to the trained table after every optimizer step), so the table gets no "
            "input-side gradient. False: through the live embedding (input-side gradient too)."
        },
    )
    ift_argmax_chunk_rows: int = field(
        default=256,
        metadata={"help": "Response tokens per chunk when computing the greedy guesses through the LM head."},
    )

    def __post_init__(self) -> None:
        for name in ("ift_lambda", "ift_min_lambda"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):  # also rejects NaN
                raise ValueError(
                    f"{name}={value} must be in [0, 1] (the official code clamps λ to [0, 1]; default 0.2)."
                )
        if self.ift_lambda_schedule not in (None, *IFT_LAMBDA_SCHEDULES):
            raise ValueError(
                f"ift_lambda_schedule={self.ift_lambda_schedule!r} is not supported; choose None "
                f"(static) or one of {', '.join(IFT_LAMBDA_SCHEDULES)}."
            )
        if not (0.0 <= self.ift_gamma <= 1.0) or not math.isfinite(self.ift_gamma):
            raise ValueError(f"ift_gamma={self.ift_gamma} must be in [0, 1] (official: 0.95).")
        for name, allowed in (
            ("ift_propagation_type", PROPAGATION_TYPES),
            ("ift_propagation_norm", PROPAGATION_NORMS),
            ("ift_propagation_side", PROPAGATION_SIDES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not supported; choose one of {', '.join(allowed)}."
                )
        if not (isinstance(self.ift_argmax_chunk_rows, int) and self.ift_argmax_chunk_rows >= 1):
            raise ValueError(f"ift_argmax_chunk_rows={self.ift_argmax_chunk_rows!r} must be a positive integer.")
        if self.padding_free or self.packing:
            raise ValueError(
                "IFT needs one sequence per row (per-sequence means and its own shifted inputs); set "
                f"packing=False and padding_free=False (got packing={self.packing}, "
                f"padding_free={self.padding_free})."
            )
        super().__post_init__()

    @property
    def max_lambda(self) -> float:
        return max(self.ift_lambda, self.ift_min_lambda if self.ift_lambda_schedule else 0.0)
