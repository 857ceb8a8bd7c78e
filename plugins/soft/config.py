"""SoFTConfig: SFTConfig plus the sub-model depths of Sorted Fine-Tuning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here


def default_depths(num_layers: int, step: int = 4, min_frac: float = 0.3) -> list[int]:
    """The default depth set B = {L, L - step, L - 2 step, ...} down to ceil(min_frac * L), ascending.

    L=40 gives the paper's {12, 16, ..., 40}; SmolLM2-135M (L=30) gives {10, 14, 18, 22, 26, 30}; L=4 gives {4}.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers={num_layers} must be >= 1")
    lowest = max(1, math.ceil(min_frac * num_layers - 1e-9))  # 1e-9: 0.3 * 10 is 3.0000000000000004 in floats
    return sorted(range(num_layers, lowest - 1, -step))


@dataclass
class SoFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`SoFTTrainer`], from "Sorted LLaMA: Unlocking the Potential of Intermediate Layers of Large
    Language Models for Dynamic Inference Using Sorted Fine-Tuning (SoFT)" (https://arxiv.org/abs/2309.08968).

    Sub-model n is the first n decoder layers followed by the model's own final norm and LM head. The loss is the
    (weighted) mean over n in B of each sub-model's SFT loss (paper Eq. 1), all from one forward pass; each L_n is the
    token sum over `num_items_in_batch`, as in SFTTrainer.
    """

    own_loss: ClassVar[str] = "SoFT's loss, a mean of NLL losses"

    soft_layers: list[int] | None = field(
        default=None,
        metadata={
            "help": "The depths B of the trained sub-models (must include the full depth L). Default: L, L - "
            "soft_step, ... down to ceil(soft_min_frac * L), the paper's rule (40 layers -> 12, 16, "
            "..., 40)."
        },
    )
    soft_layer_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Weights of the sub-model losses, in the order of soft_layers (ours, not in the paper; "
            "normalised to sum 1). Default: uniform, the paper's mean."
        },
    )
    soft_step: int = field(default=4, metadata={"help": "Layers between consecutive default depths (paper: 4)."})
    soft_min_frac: float = field(
        default=0.3,
        metadata={"help": "The shallowest default depth is ceil(soft_min_frac * L) (paper: 12 of 40 layers)."},
    )

    def __post_init__(self) -> None:
        if self.soft_layers is not None:
            layers = list(self.soft_layers)
            if not layers or any(not isinstance(n, int) or n < 1 for n in layers):
                raise ValueError(f"soft_layers={self.soft_layers} must be a non-empty list of depths >= 1.")
            if len(set(layers)) != len(layers):
                raise ValueError(f"soft_layers={self.soft_layers} repeats a depth; list each depth once.")
        if self.soft_layer_weights is not None:
            weights = list(self.soft_layer_weights)
            if not weights or any(not (w >= 0 and math.isfinite(w)) for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"soft_layer_weights={self.soft_layer_weights} must be finite numbers >= 0 with a positive sum."
                )
            if self.soft_layers is not None and len(weights) != len(self.soft_layers):
                raise ValueError(
                    f"soft_layer_weights has {len(weights)} values for {len(self.soft_layers)} "
                    f"soft_layers; give one weight per depth."
                )
        if not isinstance(self.soft_step, int) or self.soft_step < 1:
            raise ValueError(f"soft_step={self.soft_step!r} must be an integer >= 1 (paper: 4).")
        if not 0.0 < self.soft_min_frac <= 1.0:
            raise ValueError(f"soft_min_frac={self.soft_min_frac} must be in (0, 1] (paper: 0.3).")
        super().__post_init__()

    def depths_for(self, num_layers: int) -> tuple[list[int], list[float]]:
        """The sorted depths B for a model of `num_layers` layers and their normalised weights."""
        if self.soft_layers is None:
            layers = default_depths(num_layers, self.soft_step, self.soft_min_frac)
        else:
            layers = list(self.soft_layers)
            if num_layers not in layers or max(layers) > num_layers:
                raise ValueError(
                    f"soft_layers={self.soft_layers} must include the full depth L={num_layers} and "
                    f"nothing deeper (the model has {num_layers} layers)."
                )
        weights = [1.0] * len(layers) if self.soft_layer_weights is None else list(self.soft_layer_weights)
        if len(weights) != len(layers):
            raise ValueError(f"soft_layer_weights has {len(weights)} values for the {len(layers)} depths {layers}.")
        pairs = sorted(zip(layers, weights, strict=True))
        total = sum(w for _, w in pairs)
        return [n for n, _ in pairs], [w / total for _, w in pairs]
