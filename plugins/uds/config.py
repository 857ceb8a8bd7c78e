"""UDSConfig: SFTConfig plus the fields of UDS online batch selection."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

UDS_PATHS = ("auto", "gram", "logits")


@dataclass
class UDSConfig(FusedSFTConfig):
    r"""
    Configuration for [`UDSSFTTrainer`], from "Utility-Diversity Aware Online Batch Selection for LLM Supervised
    Fine-tuning" (https://arxiv.org/abs/2510.16882).

    Each training micro-batch of b = per_device_train_batch_size rows gets one no-grad forward; row i scores
    ||L_i||_* + alpha * mean_{m in memory} ||z_i - m||_2 (L_i its logits, z_i an r_time x r_vocab sketch of them),
    the `uds_k` best rows are trained on (SFT loss: token mean over the selected rows, divided by the accumulation
    steps) and their sketches enter a FIFO memory of `uds_memory_size`. Defaults follow the official MMLU run script.
    """

    own_loss: ClassVar[str] = "UDS's selection (the SFT loss on the selected rows)"

    uds_k: int = field(default=1, metadata={"help": "K, the rows trained on per micro-batch (official: 1 of 4)."})
    uds_alpha: float = field(
        default=1.5e-3,
        metadata={"help": "alpha, the weight of the inter-sample diversity score (official run: 1.5e-3)."},
    )
    uds_memory_size: int = field(
        default=1024, metadata={"help": "Q, the sketches of selected rows kept in the FIFO memory (official: 1024)."}
    )
    uds_r_time: int = field(default=8, metadata={"help": "r1, sketch size over positions (official: 8)."})
    uds_r_vocab: int = field(default=128, metadata={"help": "r2, sketch size over the vocabulary (official: 128)."})
    uds_start_step: int = field(
        default=0, metadata={"help": "Optimizer steps trained on whole micro-batches before selection starts."}
    )
    uds_include_prompt_rows: bool = field(
        default=True,
        metadata={
            "help": "Score every position with attention_mask 1 (the official run trains on inputs); False: only the "
            "positions that predict a completion token."
        },
    )
    uds_seed: int = field(default=0, metadata={"help": "Seed of the sketch's random signs and frequencies."})
    uds_exact_path: str = field(
        default="auto",
        metadata={
            "help": "'gram': scores from hidden states and the head's Gram matrix (exact for a linear head without "
            "bias or soft-capping); 'logits': one row's full logits at a time; 'auto': gram where exact.",
            "choices": list(UDS_PATHS),
        },
    )
    uds_random: bool = field(
        default=False, metadata={"help": "Ablation: keep K random rows per micro-batch (no scoring pass)."}
    )
    uds_per_process_selection: bool = field(
        default=False,
        metadata={
            "help": "Under several processes (DDP, DeepSpeed ZeRO-1/2/3, FSDP2), let each process select from its own "
            "micro-batch with its own memory, as the official code does. That is not the 1-process result for the "
            "same global batch, so several processes are refused unless this is set (ours)."
        },
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "b, the candidate rows per micro-batch (official: 4)."}
    )
    learning_rate: float = field(default=1.5e-4, metadata={"help": "AdamW learning rate (official LoRA run: 1.5e-4)."})

    def __post_init__(self) -> None:
        for name in ("uds_k", "uds_memory_size", "uds_r_time", "uds_r_vocab"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value} must be a positive integer.")
        if not (isinstance(self.uds_alpha, (int, float)) and math.isfinite(self.uds_alpha) and self.uds_alpha >= 0):
            raise ValueError(f"uds_alpha={self.uds_alpha} must be a finite number >= 0.")
        if self.uds_start_step < 0:
            raise ValueError(f"uds_start_step={self.uds_start_step} must be >= 0.")
        if self.uds_exact_path not in UDS_PATHS:
            raise ValueError(f"uds_exact_path={self.uds_exact_path!r}: choose one of {', '.join(UDS_PATHS)}.")
        if self.packing or self.padding_free:
            raise ValueError(
                "UDS selects rows of each micro-batch, and packing / padding_free put several samples in one row: "
                "leave packing and padding_free off."
            )
        super().__post_init__()

    @property
    def sketch_rows(self) -> int:
        """T_max, the positions the time sketch covers: max_length (the official code's cutoff), else 1024."""
        return self.max_length or 1024
