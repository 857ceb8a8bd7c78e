"""ASFTConfig: SFTConfig plus the fields of Anchored Supervised Fine-Tuning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

ASFT_MODES = ("sft", "dft", "sft_kl", "asft")


@dataclass
class ASFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`ASFTTrainer`], from "Anchored Supervised Fine-Tuning" (https://arxiv.org/abs/2509.23753).

    Per response token t with p_t = pi_theta(y_t | s_t) and the frozen initial model pi_0 as reference:
    `asft`: -sg(p_t) log p_t + kl_weight * KL(pi_0 || pi_theta); `dft`: -sg(p_t) log p_t; `sft`: -log p_t;
    `sft_kl`: -log p_t + kl_weight * KL. The loss is the token sum over `num_items_in_batch`, as in SFTTrainer.
    Defaults follow the official `train.sh`: kl_weight 0.1, learning_rate 5e-5.
    """

    own_loss: ClassVar[str] = "ASFT's own loss (pick the objective with asft_loss: 'dft' reproduces loss_type='dft')"

    asft_loss: str = field(
        default="asft",
        metadata={
            "help": "Loss mode: 'asft' (DFT + KL anchor), 'dft', 'sft' or 'sft_kl' (NLL + KL anchor).",
            "choices": list(ASFT_MODES),
        },
    )
    kl_weight: float = field(
        default=0.1,
        metadata={"help": "λ, the weight of the per-token KL(reference || policy) anchor (paper and code: 0.1)."},
    )
    ref_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Reference model (same vocabulary). Default: a frozen copy of the initial policy, or the "
            "adapter-disabled base model under PEFT."
        },
    )
    kl_chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "Tokens per chunk when projecting through the LM head (default: about 8M logits per "
            "chunk). Lower it to save memory at large vocabularies."
        },
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate (official train.sh: 5e-5)."})

    def __post_init__(self) -> None:
        if self.asft_loss not in ASFT_MODES:
            raise ValueError(f"asft_loss={self.asft_loss!r} is not supported; choose one of {', '.join(ASFT_MODES)}.")
        if not (self.kl_weight >= 0.0):  # also rejects NaN
            raise ValueError(f"kl_weight={self.kl_weight} must be a number >= 0 (the paper uses 0.1).")
        if self.kl_chunk_size is not None and self.kl_chunk_size < 1:
            raise ValueError(f"kl_chunk_size={self.kl_chunk_size} must be a positive number of tokens, or None.")
        super().__post_init__()

    @property
    def uses_kl(self) -> bool:
        return self.asft_loss in ("asft", "sft_kl") and self.kl_weight > 0
