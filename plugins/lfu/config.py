"""LfUConfig: SFTConfig plus the fields of Learning-from-the-Undesirable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

LFU_CONSISTENCY = ("hidden_mse", "logit_kl")
LFU_GRADIENT = ("official", "exact")
LFU_NORMALIZATION = ("global", "micro_batch")


@dataclass
class LfUConfig(FusedSFTConfig):
    r"""
    Configuration for [`LfUTrainer`], from "Learning from the Undesirable: Robust Adaptation of Language Models without
    Forgetting" (https://arxiv.org/abs/2511.13052).

    Each step: g = grad of the SFT loss on an independent batch B', phi' = phi + alpha * g / ||g||_2 (Eq. 2) on the
    trainable parameters, and loss = L_SFT(phi; B) + lambda * L_cons with L_cons the per-layer MSE between the hidden
    states of B under phi' and (detached) under phi (Eq. 5-6). Defaults follow the official code (`run_lora.sh`):
    alpha 0.1, lambda 5, all layers, LoRA, learning rate 1e-4.
    """

    own_loss: ClassVar[str] = "LfU's SFT term"

    lfu_alpha: float = field(
        default=0.1,
        metadata={
            "help": "alpha, the L2 norm of the undesirable (gradient-ascent) step on the trainable parameters "
            "(paper and code: 0.1; 0.5 breaks the model)."
        },
    )
    lfu_lambda: float = field(
        default=5.0,
        metadata={
            "help": "lambda, the weight of the consistency loss (paper and code: 5, tuned for the per-layer mean "
            "squared error). 0 is plain SFT at SFT's cost."
        },
    )
    lfu_layers: list[int] | None = field(
        default=None,
        metadata={
            "help": "Two integers START END: the inclusive range of hidden_states indices (0 = embedding output, "
            "K = last layer) whose consistency is penalised. Default: all of them."
        },
    )
    lfu_consistency: str = field(
        default="hidden_mse",
        metadata={
            "help": "'hidden_mse' (the paper's Eq. 5) or 'logit_kl' (the Eq. 7 ablation: KL(softmax(sg(z)) || "
            "softmax(z')) per response token).",
            "choices": list(LFU_CONSISTENCY),
        },
    )
    lfu_gradient: str = field(
        default="official",
        metadata={
            "help": "'official': reproduce the official code's gradient, whose SFT-term backward reads the "
            "perturbed weights phi' (it moves them in place after the clean forward); 'exact': the "
            "gradient of the loss as written.",
            "choices": list(LFU_GRADIENT),
        },
    )
    lfu_aux_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Dataset the undesirable batches B' come from (a name for --dataset_name: builtin:NAME, a "
            "local file or a Hub id; its 'train' split). Default: the training set. In Python, pass "
            "`aux_dataset=` to the trainer instead."
        },
    )
    lfu_aux_batch_size: int | None = field(
        default=None,
        metadata={"help": "Rows in each undesirable batch B' (default: per_device_train_batch_size)."},
    )
    lfu_cons_normalization: str = field(
        default="global",
        metadata={
            "help": "'global': the consistency loss is a mean over the response tokens of the whole optimizer "
            "step (accumulation window and processes, like num_items_in_batch), so its gradient does not "
            "depend on the layout (ours); 'micro_batch': the official code's per-micro-batch mean "
            "divided by gradient_accumulation_steps.",
            "choices": list(LFU_NORMALIZATION),
        },
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (official run_lora.sh: 1e-4)."})

    def __post_init__(self) -> None:
        for name in ("lfu_alpha", "lfu_lambda"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value} must be a finite number >= 0.")
        if self.lfu_layers is not None:
            layers = list(self.lfu_layers)
            if len(layers) != 2 or any(not isinstance(i, int) or i < 0 for i in layers) or layers[0] > layers[1]:
                raise ValueError(
                    f"lfu_layers={self.lfu_layers} must be two hidden_states indices START END with "
                    "0 <= START <= END, or None for all layers."
                )
            self.lfu_layers = layers
        if self.lfu_consistency not in LFU_CONSISTENCY:
            raise ValueError(
                f"lfu_consistency={self.lfu_consistency!r} is not supported; choose one of "
                f"{', '.join(LFU_CONSISTENCY)}."
            )
        if self.lfu_gradient not in LFU_GRADIENT:
            raise ValueError(
                f"lfu_gradient={self.lfu_gradient!r} is not supported; choose one of {', '.join(LFU_GRADIENT)}."
            )
        if self.lfu_cons_normalization not in LFU_NORMALIZATION:
            raise ValueError(
                f"lfu_cons_normalization={self.lfu_cons_normalization!r} is not supported; choose one "
                f"of {', '.join(LFU_NORMALIZATION)}."
            )
        if self.lfu_aux_batch_size is not None and self.lfu_aux_batch_size < 1:
            raise ValueError(
                f"lfu_aux_batch_size={self.lfu_aux_batch_size} must be a positive number of rows, or "
                "None (per_device_train_batch_size)."
            )
        super().__post_init__()

    @property
    def regularizes(self) -> bool:
        return self.lfu_lambda > 0
