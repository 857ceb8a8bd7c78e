"""LTSFTConfig: SFTConfig plus Lottery-Ticket Sparse Fine-Tuning's phases, budget and L1 term."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from trl import SFTConfig

SCOPES = ("global", "per_module")


@dataclass
class LTSFTConfig(SFTConfig):
    r"""
    Configuration for [`LTSFTTrainer`], from "Composable Sparse Fine-Tuning for Cross-Lingual Transfer"
    (https://arxiv.org/abs/2110.07560), official code cambridgeltl/composable-sft.

    Each of `n_iterations` iterations: full fine-tuning of the maskable tensors (`full_ft_steps`, fresh optimizer and
    schedule), selection of the K // n_iterations not yet chosen entries that moved most from theta0, rewind to the
    iteration's start, then sparse fine-tuning of the chosen entries only (`sparse_ft_steps`, fresh optimizer and
    schedule, weight decay 0). The result theta0 + phi is the trained model; phi is also saved as
    `sparse_diff.safetensors`. The run's length is set per phase: leave `max_steps` unset.
    """

    num_tunable: int | None = field(
        default=None, metadata={"help": "K, the number of entries of the sparse diff (default: density x maskable)."}
    )
    density: float = field(
        default=0.01, metadata={"help": "K as a fraction of the maskable entries, used when num_tunable is unset."}
    )
    n_iterations: int = field(default=1, metadata={"help": "Full -> select -> rewind -> sparse iterations (1)."})
    full_ft_steps: int = field(default=1000, metadata={"help": "Optimizer steps of each full phase (1000)."})
    sparse_ft_steps: int = field(default=1000, metadata={"help": "Optimizer steps of each sparse phase (1000)."})
    full_ft_epochs: float | None = field(
        default=None, metadata={"help": "Epochs of each full phase instead of full_ft_steps (official task SFT: 5)."}
    )
    sparse_ft_epochs: float | None = field(
        default=None, metadata={"help": "Epochs of each sparse phase instead of sparse_ft_steps."}
    )
    l1_full: float = field(
        default=0.0,
        metadata={"help": "lambda of the L1 term (lambda/N) sum|theta - theta0| in the full phases (official: 0)."},
    )
    l1_sparse: float = field(default=0.0, metadata={"help": "lambda of the L1 term in the sparse phases (0)."})
    maskable: str = field(
        default="all-linear",
        metadata={
            "help": "Tensors that train and may enter the diff: all-linear (every nn.Linear but the LM head), all "
            "(every parameter but frozen norms / LM head, the official set) or a regex on parameter names. The "
            "others stay frozen."
        },
    )
    freeze_norms: bool = field(default=True, metadata={"help": "Keep normalisation weights frozen (official)."})
    freeze_lm_head: bool = field(
        default=False, metadata={"help": "Keep the LM head frozen (official language SFTs; tied: the embeddings too)."}
    )
    scope: Literal["global", "per_module"] = field(
        default="global",
        metadata={
            "help": "global: the top-K over all maskable tensors, ties kept (official); per_module: floor(K/M x "
            "numel) entries in each tensor (peft Supertuning's budget shape)."
        },
    )
    lang_diff_path: str | None = field(
        default=None,
        metadata={
            "help": "A saved sparse diff (file or folder) applied before training: the task diff is learned on top of "
            "it and measured from that point (the paper's language SFT under a task SFT)."
        },
    )

    def __post_init__(self) -> None:
        if self.num_tunable is not None and self.num_tunable < 1:
            raise ValueError(f"num_tunable={self.num_tunable} must be >= 1 (or unset to use density).")
        if not (math.isfinite(self.density) and 0.0 < self.density <= 1.0):
            raise ValueError(f"density={self.density} must be in (0, 1].")
        if self.n_iterations < 1:
            raise ValueError(f"n_iterations={self.n_iterations} must be >= 1.")
        for name in ("full_ft_steps", "sparse_ft_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        for name in ("full_ft_epochs", "sparse_ft_epochs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value} must be > 0 (or unset to use the *_steps field).")
        for name in ("l1_full", "l1_sparse"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name}={value} must be a finite number >= 0.")
        if self.scope not in SCOPES:
            raise ValueError(f"scope={self.scope!r}: one of {', '.join(SCOPES)}.")
        if self.max_steps is not None and self.max_steps > 0:
            raise ValueError(
                f"max_steps={self.max_steps}: LT-SFT's length is set per phase; use full_ft_steps / sparse_ft_steps "
                "(or full_ft_epochs / sparse_ft_epochs) and leave max_steps unset."
            )
        super().__post_init__()

    def budget_description(self) -> str:
        """The run's length for `--dry_run` plans: per phase, since `max_steps` is unset."""

        def phase(steps: int, epochs: float | None) -> str:
            return f"{epochs:g} epochs" if epochs is not None else f"{steps} steps"

        one = f"{phase(self.full_ft_steps, self.full_ft_epochs)} full + {phase(self.sparse_ft_steps, self.sparse_ft_epochs)} sparse"
        return one if self.n_iterations == 1 else f"{self.n_iterations} x ({one})"
