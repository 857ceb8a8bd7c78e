"""Configuration of VideoRFT's RL-stage rewards (arXiv:2505.12434).

VideoRFT changes only the reward, so this is a plain dataclass, not a TRL config: training is TRL's `GRPOTrainer`
(official: loss_type "grpo", beta 0.04, scale_rewards "group", G=8), configured with `GRPOConfig` as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class VideoRFTRewardConfig:
    """Options of the [VideoRFT](https://arxiv.org/abs/2505.12434) rewards: the frozen dual encoder of the semantic-
    consistency reward, its scale and gate, and the length bonus."""

    encoder_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "The frozen dual encoder of vrft_semantic_reward: a local folder or Hub id of a SigLIP/CLIP "
            "model (official: google/siglip-so400m-patch14-384). None ships with trl-ext; required by that reward."
        },
    )
    w_scale: float = field(default=2.0, metadata={"help": "w in r(f) = min(1, w·max(s(f), 0))."})
    drop_first_sentence: bool = field(
        default=True,
        metadata={"help": "Encode the reasoning without its first sentence (up to and including the first '.')."},
    )
    gate_on_accuracy: bool = field(
        default=True, metadata={"help": "Zero the semantic reward when the accuracy reward is <= acc_gate_threshold."}
    )
    acc_gate_threshold: float = field(default=0.0, metadata={"help": "The gate: R_sem counts only if R_acc > this."})
    len_bonus: float = field(default=0.2, metadata={"help": "Length bonus of a qualifying completion."})
    len_range: tuple[int, int] = field(
        default=(320, 512),
        metadata={"help": "Completion lengths in tokens (EOS included, as the official count) earning the bonus."},
    )
    len_acc_threshold: float = field(
        default=0.1, metadata={"help": "A completion qualifies for the length bonus when R_acc > this."}
    )
    num_generations: int | None = field(
        default=None,
        metadata={
            "help": "Group size of the length bonus (GRPOConfig.num_generations). Default: groups are the runs of "
            "consecutive completions of the same prompt, which is how GRPOTrainer orders them."
        },
    )
    max_frames: int = field(default=16, metadata={"help": "Frames read from a `video` path (evenly spaced)."})
    device: str | None = field(
        default=None, metadata={"help": "Device of the encoder (default: this process's accelerator, else cpu)."}
    )

    def __post_init__(self) -> None:
        if self.encoder_name_or_path is not None and not (
            isinstance(self.encoder_name_or_path, str) and self.encoder_name_or_path.strip()
        ):
            raise ValueError(f"encoder_name_or_path={self.encoder_name_or_path!r} must be a folder or Hub id")
        for name in ("w_scale", "acc_gate_threshold", "len_bonus", "len_acc_threshold"):
            if not _is_real(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a finite number")
        if self.w_scale <= 0:
            raise ValueError(f"w_scale={self.w_scale!r} must be > 0")
        for name in ("drop_first_sentence", "gate_on_accuracy"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        low_high = self.len_range
        if (
            not isinstance(low_high, (list, tuple))
            or len(low_high) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in low_high)
            or not 0 <= low_high[0] <= low_high[1]
        ):
            raise ValueError(f"len_range={low_high!r} must be two integers 0 <= low <= high")
        self.len_range = (int(low_high[0]), int(low_high[1]))
        for name in ("max_frames", "num_generations"):
            value = getattr(self, name)
            if value is None and name == "num_generations":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"device={self.device!r} must be a device name such as 'cpu' or 'cuda:0'")
