"""SpIELConfig: SFTConfig plus SpIEL's budget and drop/regrow schedule."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from .support import DEFAULT_TARGETS


@dataclass
class SpIELConfig(SFTConfig):
    r"""
    Configuration for [`SpIELTrainer`], from "Scaling Sparse Fine-Tuning to Large Language Models"
    (https://arxiv.org/abs/2401.16405): SFT of k sparse deltas per targeted linear whose support is renewed every
    `reselection_steps` optimizer steps (drop the smallest |delta|, regrow the largest accumulated gradient).

    Budget (official): T = num_tunable, else density x all the model's parameters, split over the targets in
    proportion to their size. Schedule defaults S=20, A=5, zeta0=0.2 linear (sft-llm scripts); eps 1e-6 (official).
    """

    density: float = field(
        default=0.01,
        metadata={
            "help": "Trainable deltas as a fraction of ALL the model's parameters (official), when num_tunable "
            "is unset. On SmolLM2-135M the targets' own density is 1.267x this."
        },
    )
    num_tunable: int | None = field(
        default=None, metadata={"help": "T, the total number of trainable deltas (overrides density)."}
    )
    target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        metadata={"help": "Linear layers that get sparse deltas (names matched as peft does)."},
    )
    reselection_steps: int = field(
        default=20, metadata={"help": "S: a drop/regrow every S optimizer steps; 0 keeps the random support fixed."}
    )
    selection_accumulation_steps: int = field(
        default=5, metadata={"help": "A: optimizer steps of candidate-gradient accumulation before each regrowth."}
    )
    initial_reselection_rate: float = field(
        default=0.2, metadata={"help": "zeta0: the fraction of deltas replaced, decayed over training."}
    )
    reselection_rate_policy: str = field(
        default="linear",
        metadata={
            "help": "linear: p = 1 at the first selection, then zeta0 (1 - t/T); cosine: zeta0 (1 + cos)/2 "
            "(official, no p = 1 first).",
            "choices": ["linear", "cosine"],
        },
    )
    selection: str = field(
        default="rigl",
        metadata={
            "help": "rigl: SpIEL-AG, regrow by accumulated gradient (shipped). sm3: SpIEL-MA, needs the "
            "authors' sparse SM3 optimizer (not shipped).",
            "choices": ["rigl", "sm3"],
        },
    )
    delta_dtype: str = field(
        default="float32", metadata={"help": "dtype of the deltas (official float32; the only one supported)."}
    )
    spiel_seed: int | None = field(
        default=None, metadata={"help": "Seed of the initial random support (None: the run's --seed)."}
    )
    learning_rate: float = field(
        default=1e-4, metadata={"help": "Peak learning rate (the top of the card's SpIEL-AG grid 1e-4..3e-6; ours)."}
    )
    adam_epsilon: float = field(default=1e-6, metadata={"help": "Adam epsilon (official SpIEL: 1e-6)."})
    warmup_steps: float = field(default=0.03, metadata={"help": "Warm-up, a fraction of the steps when < 1 (3%)."})

    def __post_init__(self) -> None:
        from .callback import validate_schedule

        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density={self.density} must be in (0, 1]")
        if self.num_tunable is not None and self.num_tunable < 1:
            raise ValueError(f"num_tunable={self.num_tunable} must be a positive count (or None: use density)")
        if self.reselection_steps < 0:
            raise ValueError(f"reselection_steps={self.reselection_steps} must be >= 0 (0: fixed support)")
        if self.reselection_steps:
            validate_schedule(
                self.reselection_steps,
                self.selection_accumulation_steps,
                self.initial_reselection_rate,
                self.reselection_rate_policy,
            )
        if self.selection == "sm3":
            raise ValueError(
                "selection='sm3' (SpIEL-MA) needs the authors' sparse SM3 optimizer, which trl-ext does not ship; "
                "use selection='rigl' (SpIEL-AG, the paper's main variant)."
            )
        if self.selection != "rigl":
            raise ValueError(f"selection must be 'rigl' or 'sm3', got {self.selection!r}")
        if self.delta_dtype != "float32":
            raise ValueError(f"delta_dtype={self.delta_dtype!r}: only float32 deltas are supported (official)")
        super().__post_init__()
