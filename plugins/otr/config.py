"""OTRConfig: SFTConfig plus the fields of One-Token Rollout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

OTR_ESTIMATORS = ("mc", "expected")
OTR_NORMALIZATIONS = ("token", "sequence")


@dataclass
class OTRConfig(FusedSFTConfig):
    r"""
    Configuration for [`OTRTrainer`], from "One-Token Rollout: Guiding Supervised Fine-Tuning of LLMs with Policy
    Gradient" (https://arxiv.org/abs/2509.26313).

    At every response token the policy samples `otr_num_samples` candidate tokens from softmax(sg(z_t) /
    `otr_temperature`); a candidate equal to the dataset token earns reward 1, any other `otr_beta`; the loss is the
    REINFORCE estimate -(1/K) sum_k R_k log pi_theta(a_k | s_t), summed over tokens and divided by
    `num_items_in_batch` as in SFTTrainer (or a per-sequence mean with `otr_normalization="sequence"`).
    Defaults: K = 256 (paper); tau = 1.2 and beta = -0.1 come from a third-party implementation (the paper's text does
    not fix them).
    """

    own_loss: ClassVar[str] = "OTR's own loss (OTR replaces the token loss with its policy-gradient estimate)"

    otr_num_samples: int = field(
        default=256,
        metadata={"help": "K, candidate tokens sampled per response position (paper: 256)."},
    )
    otr_temperature: float = field(
        default=1.2,
        metadata={
            "help": "τ of the exploration policy softmax(z/τ), used for sampling only; the log-probs being "
            "trained stay at temperature 1 (1.2: third-party implementation, paper only says τ>1)."
        },
    )
    otr_beta: float = field(
        default=-0.1,
        metadata={
            "help": "β, the reward of a sampled token that differs from the dataset token (the matching token "
            "gets 1). -0.1 from a third-party implementation; the paper says small and negative."
        },
    )
    otr_estimator: str = field(
        default="mc",
        metadata={
            "help": "'mc': the paper's Monte Carlo rollouts. 'expected' (ours, not in the paper): the exact "
            "expectation over the exploration policy, no sampling; with τ=1 it is (1-β)×DFT.",
            "choices": list(OTR_ESTIMATORS),
        },
    )
    otr_dedupe: bool = field(
        default=True,
        metadata={
            "help": "Aggregate repeated samples into counts before the gradient (dense weights) instead of one "
            "scattered weight per sample. Exact either way; a numerical path, not a different loss."
        },
    )
    otr_sample_chunk_rows: int = field(
        default=256,
        metadata={
            "help": "Response tokens per chunk when projecting through the LM head, sampling and computing the "
            "loss; memory is about 4 float32 (rows, vocab) buffers. Lower it at large vocabularies."
        },
    )
    otr_normalization: str = field(
        default="token",
        metadata={
            "help": "'token': sum over tokens / num_items_in_batch (TRL convention). 'sequence': each "
            "sequence's token mean, averaged over the sequences of the global batch (the paper's SFT "
            "baseline formula).",
            "choices": list(OTR_NORMALIZATIONS),
        },
    )

    def __post_init__(self) -> None:
        if not (isinstance(self.otr_num_samples, int) and self.otr_num_samples >= 1):
            raise ValueError(f"otr_num_samples={self.otr_num_samples!r} must be an integer >= 1 (the paper uses 256).")
        if not (self.otr_temperature > 0.0 and math.isfinite(self.otr_temperature)):
            raise ValueError(f"otr_temperature={self.otr_temperature} must be a finite number > 0 (default 1.2).")
        if not math.isfinite(self.otr_beta) or self.otr_beta > 1.0:
            raise ValueError(
                f"otr_beta={self.otr_beta} must be a finite number <= 1 (the reward of a wrong sample; "
                "the matching token gets 1; default -0.1)."
            )
        if self.otr_estimator not in OTR_ESTIMATORS:
            raise ValueError(
                f"otr_estimator={self.otr_estimator!r} is not supported; choose one of {', '.join(OTR_ESTIMATORS)}."
            )
        if self.otr_normalization not in OTR_NORMALIZATIONS:
            raise ValueError(
                f"otr_normalization={self.otr_normalization!r} is not supported; choose one of "
                f"{', '.join(OTR_NORMALIZATIONS)}."
            )
        if not (isinstance(self.otr_sample_chunk_rows, int) and self.otr_sample_chunk_rows >= 1):
            raise ValueError(f"otr_sample_chunk_rows={self.otr_sample_chunk_rows!r} must be a positive integer.")
        super().__post_init__()
