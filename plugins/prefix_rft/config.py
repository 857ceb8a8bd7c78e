"""PrefixRFTConfig: GRPOConfig plus the fields of Prefix-RFT's demonstration prefixes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

SCHEDULES = ("cosine", "linear", "const")
ADVANTAGE_MODES = ("official", "paper")
AGGREGATIONS = ("official", "trl")


@dataclass
class PrefixRFTConfig(GRPOConfig):
    r"""
    Configuration for [`PrefixRFTTrainer`], from "Blending Supervised and Reinforcement Fine-Tuning with Prefix
    Sampling" (Prefix-RFT, https://arxiv.org/abs/2507.01679).

    In each GRPO group of G = num_generations rollouts, the last `num_prefixed_per_group` start from a prefix of the
    row's demonstration (cut at a ratio rho = lo + (hi(t) - lo) u, u ~ Beta(a, b), hi(t) decaying from
    `prefix_ratio_high_start` to `prefix_ratio_high_end`); the prefix tokens are completion tokens and are trained.
    Only the `prefix_entropy_keep_quantile` highest-entropy prefix tokens keep their advantage. Defaults follow the
    official code (ZeroYuHuang/prefix_rft): sub-group-centred advantages, Dr.GRPO aggregation, no KL.
    """

    num_prefixed_per_group: int = field(
        default=1,
        metadata={"help": "m, the rollouts of each group that start from a demonstration prefix (ours: 1; 0 = GRPO)."},
    )
    prefix_rollouts_per_variant: int = field(
        default=1,
        metadata={
            "help": "n, the rollouts that share one prefix (one rho) and form one sub-group; m must be a multiple. "
            "Prefix-token advantages are divided by n (official: its rollout.n; default 1, ours)."
        },
    )
    prefix_ratio_low: float = field(default=0.05, metadata={"help": "lo, the lowest prefix ratio (paper: 0.05)."})
    prefix_ratio_high_start: float = field(
        default=0.95, metadata={"help": "hi(0), the highest prefix ratio at the start (paper: 0.95)."}
    )
    prefix_ratio_high_end: float = field(
        default=0.05, metadata={"help": "hi(T), the highest prefix ratio at the end of the schedule (paper: 0.05)."}
    )
    prefix_schedule: str = field(
        default="cosine",
        metadata={"help": "How hi(t) goes from start to end over T steps.", "choices": list(SCHEDULES)},
    )
    prefix_schedule_steps: int | None = field(
        default=None, metadata={"help": "T, the schedule's length in optimizer steps (default: the run's max_steps)."}
    )
    prefix_beta_a: float = field(default=1.0, metadata={"help": "a of u ~ Beta(a, b) (1, 1: uniform)."})
    prefix_beta_b: float = field(default=1.0, metadata={"help": "b of u ~ Beta(a, b)."})
    min_prefix_len: int = field(
        default=1, metadata={"help": "The shortest prefix in demonstration tokens (official: min_prefix_len)."}
    )
    prefix_entropy_keep_quantile: float = field(
        default=0.2,
        metadata={
            "help": "q: of the N prefix tokens of a micro-batch, N - int((1 - q) N) with the highest entropy keep "
            "their advantage, the others get 0 (paper: 0.2; 1.0 disables)."
        },
    )
    prefix_advantage_mode: str = field(
        default="official",
        metadata={
            "help": "'official': rewards centred within sub-groups of one prefix variant (size 1: mean 0), prefix "
            "tokens get (A - mean of the plain rollouts) / n; 'paper': Dr.GRPO's r - group mean on every token.",
            "choices": list(ADVANTAGE_MODES),
        },
    )
    prefix_loss_aggregation: str = field(
        default="official",
        metadata={
            "help": "'official': the sum of token losses over the micro-batch (all processes') / "
            "max_completion_length / accumulation steps; 'trl': TRL's dr_grpo (that, divided by the rows).",
            "choices": list(AGGREGATIONS),
        },
    )
    prefix_retokenize: bool = field(
        default=True,
        metadata={
            "help": "Render the decoded demonstration prefix after the prompt and tokenise the whole, as the official "
            "code does (its tokens are the completion's prefix); False: append the demonstration's own token ids."
        },
    )
    demo_column: str = field(
        default="demonstration",
        metadata={"help": "The dataset column holding the demonstration y* (text, or an assistant message list)."},
    )
    prefix_seed: int | None = field(
        default=None, metadata={"help": "Seed of the prefix-ratio generator (default: seed)."}
    )
    loss_type: str = field(default="dr_grpo", metadata={"help": "Prefix-RFT's update is Dr.GRPO (official)."})
    scale_rewards: str = field(default="none", metadata={"help": "Dr.GRPO: no division by the reward std (official)."})

    def __post_init__(self) -> None:
        for name in ("num_prefixed_per_group", "min_prefix_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value} must be an integer >= 0.")
        n = self.prefix_rollouts_per_variant
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"prefix_rollouts_per_variant={n} must be a positive integer.")
        if self.num_prefixed_per_group % n:
            raise ValueError(
                f"num_prefixed_per_group={self.num_prefixed_per_group} must be a multiple of "
                f"prefix_rollouts_per_variant={n} (each prefix variant has n rollouts)."
            )
        for name in ("prefix_ratio_low", "prefix_ratio_high_start", "prefix_ratio_high_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name}={value} must be in [0, 1].")
        if min(self.prefix_ratio_high_start, self.prefix_ratio_high_end) < self.prefix_ratio_low:
            raise ValueError("prefix_ratio_high_start and prefix_ratio_high_end must be >= prefix_ratio_low.")
        for name in ("prefix_beta_a", "prefix_beta_b"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be a finite number > 0.")
        if self.prefix_schedule not in SCHEDULES:
            raise ValueError(f"prefix_schedule={self.prefix_schedule!r}: choose one of {', '.join(SCHEDULES)}.")
        if self.prefix_schedule_steps is not None and self.prefix_schedule_steps < 1:
            raise ValueError(f"prefix_schedule_steps={self.prefix_schedule_steps} must be >= 1.")
        if not 0.0 < self.prefix_entropy_keep_quantile <= 1.0:
            raise ValueError(f"prefix_entropy_keep_quantile={self.prefix_entropy_keep_quantile} must be in (0, 1].")
        if self.prefix_advantage_mode not in ADVANTAGE_MODES:
            raise ValueError(
                f"prefix_advantage_mode={self.prefix_advantage_mode!r}: choose one of {', '.join(ADVANTAGE_MODES)}."
            )
        if self.prefix_loss_aggregation not in AGGREGATIONS:
            raise ValueError(
                f"prefix_loss_aggregation={self.prefix_loss_aggregation!r}: choose one of {', '.join(AGGREGATIONS)}."
            )
        if self.prefix_loss_aggregation == "official" and self.loss_type != "dr_grpo":
            raise ValueError(
                f"prefix_loss_aggregation='official' rescales TRL's dr_grpo loss; loss_type={self.loss_type!r} needs "
                "--prefix_loss_aggregation trl."
            )
        if self.prefix_advantage_mode == "official" and (
            self.scale_rewards != "none" or self.multi_objective_aggregation != "sum_then_normalize"
        ):
            raise ValueError(
                "prefix_advantage_mode='official' centres the weighted reward sum within sub-groups, without a std: "
                "leave scale_rewards='none' and multi_objective_aggregation='sum_then_normalize', or use "
                "--prefix_advantage_mode paper."
            )
        if self.top_entropy_quantile < 1.0:
            raise ValueError(
                "top_entropy_quantile masks every completion token by entropy; Prefix-RFT's entropy rule acts on the "
                "prefix tokens only: use --prefix_entropy_keep_quantile and leave top_entropy_quantile at 1.0."
            )
        if self.entropy_coef or self.use_adaptive_entropy:
            raise ValueError(
                "Prefix-RFT keeps the prefix tokens whose advantage it zeroes in every entropy term; TRL's entropy "
                "bonus would drop them. Leave entropy_coef at 0 and use_adaptive_entropy off."
            )
        if self.use_vllm:
            raise ValueError("Prefix-RFT injects prefixes into transformers' generate; use_vllm is not supported.")
        super().__post_init__()
        if self.num_prefixed_per_group >= self.num_generations:
            raise ValueError(
                f"num_prefixed_per_group={self.num_prefixed_per_group} must be < num_generations="
                f"{self.num_generations}: every group keeps at least one plain rollout (its mean is the prefix "
                "tokens' baseline)."
            )
