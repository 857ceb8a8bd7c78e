"""ExampleSFTTrainer: SFTTrainer whose loss is scaled by `nll_scale`, the smallest method a plugin can add."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import SFTConfig, SFTTrainer


@dataclass
class ExampleSFTConfig(SFTConfig):
    """Configuration for [`ExampleSFTTrainer`]: SFTConfig plus `nll_scale`."""

    nll_scale: float = field(
        default=1.0,
        metadata={"help": "Factor on SFT's token-mean NLL (1.0 is plain SFT)."},
    )

    def __post_init__(self) -> None:
        if not (self.nll_scale > 0.0 and math.isfinite(self.nll_scale)):
            raise ValueError(f"nll_scale={self.nll_scale} must be a finite number > 0 (1.0 is plain SFT).")
        super().__post_init__()


class ExampleSFTTrainer(SFTTrainer):
    """SFT with the loss multiplied by `args.nll_scale` (an example, not a paper)."""

    _name = "ExampleSFT"
    _tag_names = ["trl", "sft", "trl-ext", "example_sft"]

    def __init__(self, model, args: ExampleSFTConfig | None = None, *posargs, **kwargs):
        if args is None:
            args = ExampleSFTConfig(output_dir="example-sft-output")
        if not isinstance(args, ExampleSFTConfig):
            raise TypeError(f"ExampleSFTTrainer needs an ExampleSFTConfig, got {type(args).__name__}")
        super().__init__(model, args, *posargs, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # SFTTrainer's loss is already normalised by `num_items_in_batch`; scaling it keeps that exact.
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if return_outputs:
            loss, outputs = result
            return self.args.nll_scale * loss, outputs
        return self.args.nll_scale * result
