"""ChordConfig: GRPOConfig plus CHORD's expert-SFT term, its weight schedule mu(t) and its token weighting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

SFT_VARIANTS = ("nll", "phi", "is")


@dataclass
class ChordConfig(GRPOConfig):
    r"""
    Configuration for [`ChordTrainer`], from "On-Policy RL Meets Off-Policy Experts: Harmonizing Supervised
    Fine-Tuning and Reinforcement Learning via Dynamic Weighting" (CHORD, https://arxiv.org/abs/2508.11408).

    Each micro-batch's loss is L = (1 - mu_t) L_GRPO + mu_t L_SFT: L_GRPO is GRPOTrainer's loss on the rollouts,
    L_SFT the expert-SFT loss on a micro-batch drawn from the expert dataset (`sft_loss_variant`), each with its own
    normaliser. mu_t follows a cosine schedule with warm-up over the optimizer steps. Defaults: CHORD-phi
    (constant mu = 0.1, phi weighting), `loss_type="bnpo"` (the official token mean), clip eps 0.2, beta 0.
    """

    loss_type: str = field(
        default="bnpo",
        metadata={
            "help": "GRPO's loss aggregation; 'bnpo' (token mean of the micro-batch) as Trinity-RFT (CHORD's "
            "code). TRL's default is 'dapo'."
        },
    )
    expert_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "The expert (demonstration) dataset: builtin:NAME, a local file or folder, or a Hub id, in SFT "
            "form (prompt + completion, or messages). Loaded by the sft_grpo base and passed to the trainer as "
            "`expert_dataset` (never stored in the config)."
        },
    )
    expert_dataset_config: str | None = field(
        default=None, metadata={"help": "The expert dataset's config (a built-in dataset's form; default sft)."}
    )
    expert_dataset_split: str = field(default="train", metadata={"help": "The expert dataset's split."})
    sft_loss_variant: str = field(
        default="phi",
        metadata={
            "help": "L_SFT: 'nll' (CHORD-mu, -log p), 'phi' (CHORD-phi, -sg(p(1-p)) log p) or 'is' "
            "(-sg(p) log p, the sft_is ablation = DFT).",
            "choices": list(SFT_VARIANTS),
        },
    )
    mu_warmup_steps: int = field(default=0, metadata={"help": "W: mu rises linearly from 0 to mu_peak over W steps."})
    mu_decay_steps: int = field(
        default=0, metadata={"help": "D: cosine decay from mu_peak to mu_valley over D steps after the warm-up."}
    )
    mu_peak: float = field(default=0.1, metadata={"help": "P: mu at the end of the warm-up (CHORD-phi: 0.1)."})
    mu_valley: float = field(default=0.1, metadata={"help": "V: mu after the decay (CHORD-phi: 0.1)."})
    expert_batch_size: int | None = field(
        default=None,
        metadata={"help": "Expert sequences per micro-batch and process (default per_device_train_batch_size)."},
    )
    expert_max_length: int | None = field(
        default=1024, metadata={"help": "Expert sequences keep their first N tokens (SFT's keep_start; ours)."}
    )
    expert_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the expert sampler's own generator (default: seed). It never draws from the "
            "global RNG, so the rollouts are those of plain GRPO."
        },
    )
    cutoff_prob: float = field(
        default=1.0,
        metadata={
            "help": "c in (0, 1]: log p is clamped to log c (tokens above c get no gradient); 1 = off. The phi "
            "and is weights use the unclamped p."
        },
    )
    sft_token_level: bool = field(
        default=True,
        metadata={
            "help": "True: L_SFT is the mean over the micro-batch's expert tokens; False: the mean per "
            "sequence, then over sequences."
        },
    )
    chord_dual_clip: float | None = field(
        default=None,
        metadata={
            "help": "Dual clip c on the importance ratio (Trinity-RFT's clip_ratio_c = 3.0): sets GRPOConfig."
            "delta, which is the same clip. None: TRL's loss unchanged."
        },
    )

    def __post_init__(self) -> None:
        if self.sft_loss_variant not in SFT_VARIANTS:
            raise ValueError(f"sft_loss_variant={self.sft_loss_variant!r}: choose one of {', '.join(SFT_VARIANTS)}.")
        for name in ("mu_warmup_steps", "mu_decay_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0.")
        for name in ("mu_peak", "mu_valley"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name}={value!r} must be in [0, 1].")
        if not (isinstance(self.cutoff_prob, (int, float)) and 0.0 < self.cutoff_prob <= 1.0):
            raise ValueError(f"cutoff_prob={self.cutoff_prob!r} must be in (0, 1] (1 = no cutoff).")
        if self.expert_batch_size is not None and (
            not isinstance(self.expert_batch_size, int) or self.expert_batch_size < 1
        ):
            raise ValueError(f"expert_batch_size={self.expert_batch_size!r} must be a positive integer.")
        if self.expert_max_length is not None and self.expert_max_length < 2:
            raise ValueError(f"expert_max_length={self.expert_max_length!r} must be >= 2 (or None).")
        if self.chord_dual_clip is not None:
            if not (math.isfinite(self.chord_dual_clip) and self.chord_dual_clip > 1.0):
                raise ValueError(f"chord_dual_clip={self.chord_dual_clip!r} must be a number > 1 (Trinity-RFT: 3.0).")
            if self.delta is not None and self.delta != self.chord_dual_clip:
                raise ValueError(
                    f"chord_dual_clip={self.chord_dual_clip} and delta={self.delta} set the same clip differently; "
                    "give one of them."
                )
            self.delta = float(self.chord_dual_clip)
        super().__post_init__()
        if self.expert_batch_size is None:
            self.expert_batch_size = self.per_device_train_batch_size
        if self.expert_seed is None:
            self.expert_seed = self.seed
