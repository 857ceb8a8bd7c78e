"""LocFTConfig: SFTConfig plus LocFT-BF's localisation, skip and early-stop rules, with the official defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig


@dataclass
class LocFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`LocFTTrainer`], from "Fine-tuning Done Right in Model Editing" (LocFT-BF,
    https://arxiv.org/abs/2509.22072).

    Breadth-first fine-tuning of ONE weight tensor (`rewrite_module` at `edit_layer`) on all edit requests together,
    for several epochs of shuffled mini-batches. Loss: each request's token-mean NLL on its target, averaged over the
    requests of the batch. A batch whose loss is below `skip_loss_below` takes no optimizer step; training stops
    after an epoch whose mean loss is below `early_stop_epoch_loss`. Defaults are the official hyper-parameters for
    Qwen2.5-7B / Llama-3-8B (lr 5e-4, 100 requests per batch, 25 epochs, Adam with constant lr, no weight decay,
    no clipping): AdamW with weight decay 0 is Adam.
    """

    own_loss: ClassVar[str] = "LocFT-BF's per-request mean loss"

    edit_layer: int | None = field(
        default=None,
        metadata={
            "help": "Layer whose tensor is trained; None: round(0.2 * num_hidden_layers) (Qwen2.5-7B: 6 of 28)."
        },
    )
    rewrite_module: str = field(
        default="model.layers.{}.mlp.down_proj.weight",
        metadata={
            "help": "Parameter name with {} for the layer: the one tensor trained. A module name (e.g. "
            "'model.layers.{}' as for Mistral) trains every parameter under it. Matched exactly, not as a substring."
        },
    )
    skip_loss_below: float = field(
        default=1e-2, metadata={"help": "A batch whose loss is below this takes no optimizer step (official: 1e-2)."}
    )
    early_stop_epoch_loss: float = field(
        default=1e-2,
        metadata={"help": "Stop after an epoch whose mean request loss is below this (official: 1e-2; 0: never)."},
    )
    per_sequence_mean: bool = field(
        default=True,
        metadata={
            "help": "Each request's token mean, then the mean over requests (official); False: TRL's token mean."
        },
    )
    eval_edits: bool = field(
        default=True,
        metadata={"help": "Measure edit/reliability_em, edit/generalization_em and edit/locality at the end."},
    )
    edit_eval_max_new_tokens: int = field(default=32, metadata={"help": "Greedy answer length (official: 32)."})
    edit_eval_limit: int | None = field(default=None, metadata={"help": "Evaluate the first n requests only."})

    learning_rate: float = field(default=5e-4, metadata={"help": "Adam learning rate (official: 5e-4)."})
    per_device_train_batch_size: int = field(default=100, metadata={"help": "Requests per batch (official: 100)."})
    num_train_epochs: float = field(default=25.0, metadata={"help": "Epochs (official `num_steps`: 25)."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Constant lr (official: no scheduler)."})
    optim: str = field(default="adamw_torch", metadata={"help": "AdamW with weight_decay 0, i.e. torch Adam."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "No gradient clipping (official)."})

    def __post_init__(self) -> None:
        if self.edit_layer is not None and (isinstance(self.edit_layer, bool) or self.edit_layer < 0):
            raise ValueError(f"edit_layer={self.edit_layer!r} must be an integer >= 0, or None for 20% of the depth.")
        if self.rewrite_module.count("{}") != 1:
            raise ValueError(f"rewrite_module={self.rewrite_module!r} must contain exactly one '{{}}' for the layer.")
        for name in ("skip_loss_below", "early_stop_epoch_loss"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name}={value} must be a finite number >= 0 (0 turns the rule off).")
        if self.edit_eval_max_new_tokens < 1:
            raise ValueError(f"edit_eval_max_new_tokens={self.edit_eval_max_new_tokens} must be >= 1.")
        if self.packing or self.padding_free:
            raise ValueError(
                f"packing={self.packing} / padding_free={self.padding_free}: LocFT-BF averages each request's loss "
                "on its own row; set both to False."
            )
        super().__post_init__()
