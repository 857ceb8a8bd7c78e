"""LoRAMoETrainerConfig: SFTConfig plus the localized balancing constraint's fields."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import SFTConfig


@dataclass
class LoRAMoETrainerConfig(SFTConfig):
    r"""
    Configuration for [`LoRAMoETrainer`], from "LoRAMoE: Alleviate World Knowledge Forgetting in Large Language Models
    via MoE-Style Plugin" (https://arxiv.org/abs/2312.09979).

    Loss: SFTTrainer's loss + blc_weight * sum over the LoRAMoE layers of Var(Z) / Mean(Z)^2, Z = C * Q, Q the
    per-sample router mass per expert and C = 1 +- blc_alpha by the sample's task type (training only). The experts'
    shape (E, r, alpha, dropout) is the adapter's: `--adapter loramoe:num_experts=...`, default LoRAMoEConfig().
    Defaults: beta = delta = 0.1 (paper, main runs); lr 2e-4, cosine, 3% warm-up, 1 epoch (official script).
    """

    blc_weight: float = field(
        default=0.1, metadata={"help": "beta, the weight of the localized balancing loss (paper: 0.1; 0 = plain SFT)."}
    )
    blc_alpha: float = field(
        default=0.1, metadata={"help": "delta: C = 1 + delta on the sample's expert group, 1 - delta elsewhere (0.1)."}
    )
    task_type_column: str = field(
        default="task_type",
        metadata={"help": "Integer dataset column: 1 = world-knowledge sample, 0 = other task. Missing: no balance."},
    )
    count_padding_tokens: bool = field(
        default=True,
        metadata={"help": "Sum router mass over padding positions too (official code); False: real tokens only."},
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (official script: 2e-4)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Scheduler (official script: cosine)."})
    warmup_steps: float = field(default=0.03, metadata={"help": "Warm-up, a fraction of the steps when < 1 (0.03)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (official script: 1)."})

    def __post_init__(self) -> None:
        for name in ("blc_weight", "blc_alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name}={value} must be a finite number >= 0.")
        if self.blc_alpha >= 1.0:
            raise ValueError(f"blc_alpha={self.blc_alpha} must be < 1 (C = 1 - delta must stay positive).")
        if self.blc_weight > 0 and (self.packing or self.padding_free):
            raise ValueError(
                f"packing={self.packing} / padding_free={self.padding_free}: the LoRAMoE balance loss needs one row "
                "per sample (its task type); set both to False, or blc_weight=0."
            )
        super().__post_init__()
