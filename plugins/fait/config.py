"""FAITConfig: SFTConfig plus the token-weighting fields of Fault-Aware Fine-Tuning."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

FAIT_DYNAMIC = ("renorm", "none")
FAIT_MASK_SOURCES = ("variants", "columns")


def import_weight_fn(path: str) -> Callable:
    """`package.module:function` or `package.module.function` -> the callable."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name:
        raise ValueError(f"fait_weight_fn={path!r} must be an import path like 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"fait_weight_fn={path!r} cannot be imported: {exc}") from exc
    if not callable(fn):
        raise ValueError(f"fait_weight_fn={path!r} is not callable")
    return fn


@dataclass
class FAITConfig(FusedSFTConfig):
    r"""
    Configuration for [`FAITTrainer`], from "FAIT: Fault-Aware Fine-Tuning for Better Code Generation"
    (https://arxiv.org/abs/2503.16913).

    Per completion token j with line mask l_j and token mask t_j (error-sensitive against incorrect variants):
    w_j = 1 + fait_line_weight * l_j + fait_token_weight * t_j, optionally rescaled per sequence to mean 1
    (`fait_dynamic="renorm"`); loss = sum_j w_j * (-log p_j) / N with N = the completion tokens of the global batch,
    as in SFTTrainer. The weight values are ours (the paper's dynamic formula was not recovered): a = b = 0 is plain
    SFT.
    """

    own_loss: ClassVar[str] = "FAIT's weighted loss"

    fait_line_weight: float = field(
        default=1.0,
        metadata={"help": "a: extra weight of tokens in error-sensitive lines (ours, to confirm; 0 disables)."},
    )
    fait_token_weight: float = field(
        default=1.0,
        metadata={"help": "b: extra weight of tokens that differ at character level (ours, to confirm; 0 disables)."},
    )
    fait_dynamic: str = field(
        default="renorm",
        metadata={
            "help": "'renorm': rescale each sequence's weights to mean 1 so the step size stays SFT's; "
            "'none': raw weights.",
            "choices": list(FAIT_DYNAMIC),
        },
    )
    fait_weight_fn: str | None = field(
        default=None,
        metadata={
            "help": "Import path 'module:function' of a custom weight rule, called as "
            "fn(line_mask, token_mask, label_mask, config) on [batch, seq-1] tensors, returning the "
            "weights; replaces the static rule and fait_dynamic."
        },
    )
    fait_masks_from: str = field(
        default="variants",
        metadata={
            "help": "'variants': diff `completion` against the `incorrect_completions` column; 'columns': read "
            "precomputed `fault_line_mask` / `fault_token_mask` (the fait_masks transform).",
            "choices": list(FAIT_MASK_SOURCES),
        },
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (paper: one)."})
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: FAIT's mask columns have to reach its collator."},
    )

    def __post_init__(self) -> None:
        for name in ("fait_line_weight", "fait_token_weight"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):  # also rejects NaN
                raise ValueError(f"{name}={value} must be a finite number >= 0.")
        if self.fait_dynamic not in FAIT_DYNAMIC:
            raise ValueError(
                f"fait_dynamic={self.fait_dynamic!r} is not supported; choose one of {', '.join(FAIT_DYNAMIC)}."
            )
        if self.fait_masks_from not in FAIT_MASK_SOURCES:
            raise ValueError(
                f"fait_masks_from={self.fait_masks_from!r} is not supported; choose one of "
                f"{', '.join(FAIT_MASK_SOURCES)}."
            )
        if self.fait_weight_fn is not None:
            import_weight_fn(self.fait_weight_fn)
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would drop FAIT's mask columns before the collator; leave it False."
            )
        if self.packing or self.padding_free:
            raise ValueError(
                f"packing={self.packing} / padding_free={self.padding_free}: FAIT aligns its masks to "
                "unpacked, padded sequences; set both to False."
            )
        super().__post_init__()

    @property
    def columns(self) -> list[str]:
        """Dataset columns FAIT reads besides the prompt."""
        if self.fait_masks_from == "columns":
            return ["completion", "fault_line_mask", "fault_token_mask"]
        return ["completion", "incorrect_completions"]
