"""LTAThinkerConfig: SFTConfig plus the fields of LTA-Thinker (card defaults = the official code's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

SFT_NORMALIZATIONS = ("official", "trl")


@dataclass
class LTAThinkerConfig(FusedSFTConfig):
    r"""
    Configuration for [`LTAThinkerTrainer`], from "LTA-thinker" (https://arxiv.org/abs/2509.12875).

    A frozen base model reads K latent thoughts, written into K placeholder slots of its prompt by a trainable thought
    generator (one post-norm Transformer block T on the base's input embeddings, then a linear projection P). Loss:
    `sft_weight * L_sft + kl_weight * L_kl + con_weight * L_con` (L_kl and L_con in training only). Defaults are the
    official code's: K = 32, weights 0.33 each, tau = 0.1, lr 1e-4.
    """

    own_loss: ClassVar[str] = "LTA-Thinker's own loss (SFT + KL + InfoNCE, weighted by sft/kl/con_weight)"

    num_thought_tokens: int = field(
        default=32, metadata={"help": "K, the number of latent thought slots (official: 32; 0 = no thoughts)."}
    )
    sft_weight: float = field(default=0.33, metadata={"help": "w_sft, weight of the SFT loss (official: 0.33)."})
    kl_weight: float = field(
        default=0.33, metadata={"help": "w_kl, weight of the semantic-alignment KL term (official: 0.33)."}
    )
    con_weight: float = field(
        default=0.33, metadata={"help": "w_con, weight of the reasoning-focus InfoNCE term (official: 0.33)."}
    )
    temperature: float = field(default=0.1, metadata={"help": "tau of the InfoNCE logits (official: 0.1)."})
    thought_token_ids: list[int] | None = field(
        default=None,
        metadata={
            "help": "K distinct reserved token ids whose frozen embeddings are the thoughts' priors (Qwen: 151646+). "
            "Default: K extra ids past the vocabulary, embedded by a frozen prior table saved with the generator."
        },
    )
    generator_heads: int = field(default=1, metadata={"help": "Attention heads of the thought block T (official: 1)."})
    generator_ffn_dim: int | None = field(
        default=None, metadata={"help": "FFN width of T (default: the base model's intermediate_size)."}
    )
    sft_normalization: str = field(
        default="official",
        metadata={
            "help": "'official': the SFT term is each micro-batch's token mean, averaged over accumulation steps "
            "(and processes), as the official code; 'trl': SFTTrainer's token sum over the whole accumulation window.",
            "choices": list(SFT_NORMALIZATIONS),
        },
    )
    train_base_lora: bool = field(
        default=False,
        metadata={
            "help": "Official optional flag (off in the paper's runs): also train a LoRA on the base (the official "
            "r=16, alpha 32, dropout 0.1 on q_proj and v_proj), saved with the generator."
        },
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (official: 1e-4)."})

    def __post_init__(self) -> None:
        k = self.num_thought_tokens
        if not (isinstance(k, int) and k >= 0):
            raise ValueError(f"num_thought_tokens={k!r} must be an int >= 0 (official: 32).")
        for name in ("sft_weight", "kl_weight", "con_weight"):
            value = getattr(self, name)
            if not (value >= 0.0):  # also rejects NaN
                raise ValueError(f"{name}={value} must be a number >= 0 (official: 0.33).")
        if not (self.temperature > 0.0):
            raise ValueError(f"temperature={self.temperature} must be > 0 (official: 0.1).")
        if self.thought_token_ids is not None:
            ids = [int(i) for i in self.thought_token_ids]
            if len(ids) != k or len(set(ids)) != k or min(ids, default=0) < 0:
                raise ValueError(
                    f"thought_token_ids={self.thought_token_ids} must be {k} distinct non-negative ids "
                    f"(one per thought slot, num_thought_tokens={k})."
                )
            self.thought_token_ids = ids
        if self.generator_heads < 1:
            raise ValueError(f"generator_heads={self.generator_heads} must be >= 1 (official: 1).")
        if self.generator_ffn_dim is not None and self.generator_ffn_dim < 1:
            raise ValueError(f"generator_ffn_dim={self.generator_ffn_dim} must be >= 1, or None (base's).")
        if self.sft_normalization not in SFT_NORMALIZATIONS:
            raise ValueError(
                f"sft_normalization={self.sft_normalization!r} is not supported; choose one of "
                f"{', '.join(SFT_NORMALIZATIONS)}."
            )
        if self.packing or self.padding_free:
            raise ValueError(
                "packing / padding_free cannot be used with LTA-Thinker: each row carries its own thought slots and "
                "assistant sequence, indexed per row."
            )
        super().__post_init__()
