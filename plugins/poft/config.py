"""PoFTConfig: SFTConfig plus the fields of Preference-Oriented Supervised Fine-Tuning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

POFT_REDUCE = ("mean", "min", "max")


@dataclass
class PoFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`PoFTTrainer`], from "Preference-Oriented Supervised Fine-Tuning: Favoring Target Model Over
    Aligned Large Language Models" (https://arxiv.org/abs/2412.12865).

    Per example, with r_theta the target model's mean log-prob of the response tokens and r_bar the aligned models'
    precomputed mean (column `poft_score_column`): loss = -log sigmoid(beta * (r_theta - r_bar)), averaged over the
    sequences of the whole optimizer step. Its gradient is the per-sequence-mean SFT gradient times
    tau = sigmoid(beta * (r_bar - r_theta)).
    """

    own_loss: ClassVar[str] = "PoFT's own loss"

    poft_score_column: str = field(
        default="poft_ref_scores",
        metadata={
            "help": "Dataset column with the aligned models' scores r_j (a list of floats, one per aligned "
            "model, or one float r_bar). Fill it with the `poft_score` transform."
        },
    )
    poft_reduce: str = field(
        default="mean",
        metadata={
            "help": "How the M aligned scores make r_bar: 'mean' (the paper's Eq. 5-6), or 'min'/'max' (ours).",
            "choices": list(POFT_REDUCE),
        },
    )
    poft_beta: float = field(
        default=1.0,
        metadata={
            "help": "beta, the scale inside the sigmoid: loss = -log sigmoid(beta * (r_theta - r_bar)). The "
            "paper and the official code use 1."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: the score column has to reach PoFT's collator."},
    )

    def __post_init__(self) -> None:
        if self.poft_reduce not in POFT_REDUCE:
            raise ValueError(
                f"poft_reduce={self.poft_reduce!r} is not supported; choose one of {', '.join(POFT_REDUCE)}."
            )
        if not (isinstance(self.poft_beta, (int, float)) and math.isfinite(self.poft_beta) and self.poft_beta > 0):
            raise ValueError(f"poft_beta={self.poft_beta} must be a finite number > 0 (the paper uses 1).")
        if not self.poft_score_column:
            raise ValueError("poft_score_column='' must name the dataset column holding the aligned scores.")
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would drop the aligned-score column "
                f"{self.poft_score_column!r} before PoFT reads it; leave it False."
            )
        if self.packing or self.padding_free:
            raise ValueError(
                f"packing={self.packing} / padding_free={self.padding_free}: PoFT needs one sequence per "
                "row to compute each sequence's mean log-likelihood; set both to False."
            )
        super().__post_init__()
