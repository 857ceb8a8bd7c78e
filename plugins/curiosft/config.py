"""CurioSFTConfig: SFTConfig plus the fields of CurioSFT (entropy-preserving SFT by adaptive self-distillation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here

CURIO_KD_FORMS = ("gt_token_sq", "full_kl")


@dataclass
class CurioSFTConfig(FusedSFTConfig):
    r"""
    Configuration for [`CurioSFTTrainer`], from "Learning While Staying Curious: Entropy-Preserving Supervised
    Fine-Tuning via Adaptive Self-Distillation for Large Reasoning Models" (https://arxiv.org/abs/2602.02244).

    Per response token t with student log-prob lp_t = log pi_theta(y_t | s_t) and an EMA teacher whose logits z_t are
    softened by a per-token temperature tau_t in [curio_tau_min, curio_tau_max] chosen from the teacher's entropy:
    `gt_token_sq` (official code): l_t = -lp_t + (curio_kd_coef / 2) * (lp_t - log softmax(z_t / tau_t)[y_t])^2;
    `full_kl`: l_t = -lp_t + curio_kd_coef * KL(softmax(z_t / tau_t) || pi_theta). The loss is the token sum over
    `num_items_in_batch`, as in SFTTrainer. Defaults follow the official `compute_tau_from_logits`, `custom_loss` and
    `scripts/1_sft.sh`.
    """

    own_loss: ClassVar[str] = "CurioSFT's own loss (the NLL part of CurioSFT is plain SFT)"

    curio_kd_coef: float = field(
        default=1.0,
        metadata={
            "help": "alpha_kd, the weight of the self-distillation term (official code: 1, hard-coded). 0 turns "
            "the teacher off: plain NLL SFT."
        },
    )
    curio_tau_min: float = field(
        default=1.1, metadata={"help": "Lowest teacher temperature (factual, low-entropy tokens) (code: 1.1)."}
    )
    curio_tau_max: float = field(
        default=1.5, metadata={"help": "Highest teacher temperature (high-entropy reasoning tokens) (code: 1.5)."}
    )
    curio_topk: int = field(
        default=512,
        metadata={
            "help": "The temperature search measures entropy over the teacher's K largest logits (code: 512; "
            "the full vocabulary when V <= K)."
        },
    )
    curio_bisect_iters: int = field(
        default=20, metadata={"help": "Bisection iterations of the temperature search (code: 20)."}
    )
    curio_entropy_center: float = field(
        default=1.2,
        metadata={"help": "c in the entropy boost delta = delta_max * sigmoid(slope * (H - c)) (code: 1.2)."},
    )
    curio_delta_max: float = field(
        default=0.5, metadata={"help": "delta_max, the largest entropy boost H* - H (code: 0.5)."}
    )
    curio_delta_slope: float = field(
        default=2.0, metadata={"help": "The slope of the sigmoid in the entropy boost (code: 2.0)."}
    )
    curio_low_entropy_threshold: float = field(
        default=0.03,
        metadata={
            "help": "Tokens whose full-vocabulary teacher entropy is at most this get tau = curio_tau_min "
            "(code: 0.03)."
        },
    )
    curio_kd_form: str = field(
        default="gt_token_sq",
        metadata={
            "help": "'gt_token_sq' (official code: squared log-ratio at the gold token) or 'full_kl' "
            "(the paper's wording: KL(tempered teacher || policy) over the vocabulary).",
            "choices": list(CURIO_KD_FORMS),
        },
    )
    ref_model_sync_steps: int = field(
        default=5,
        metadata={"help": "S: the EMA teacher is updated every S optimizer steps (official script: 5)."},
    )
    ref_model_mixup_alpha: float = field(
        default=0.99,
        metadata={
            "help": "alpha in teacher <- (1 - alpha) * teacher + alpha * policy (official script: 0.99; "
            "0 keeps the initial model as teacher)."
        },
    )
    curio_teacher_chunk_rows: int = field(
        default=256,
        metadata={
            "help": "Tokens per chunk in the teacher's temperature pass (each chunk holds rows x vocab "
            "floats); lower it to save memory."
        },
    )
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (official 1_sft.sh: 1e-5)."})

    def __post_init__(self) -> None:
        def at_least(name: str, low: float, strict: bool = False) -> None:
            value = getattr(self, name)
            ok = value > low if strict else value >= low  # comparisons with NaN are False: NaN is refused
            if not (ok and math.isfinite(value)):
                raise ValueError(f"{name}={value} must be a finite number {'>' if strict else '>='} {low}.")

        at_least("curio_kd_coef", 0.0)
        at_least("curio_tau_min", 0.0, strict=True)
        at_least("curio_tau_max", self.curio_tau_min if math.isfinite(self.curio_tau_min) else 0.0)
        at_least("curio_delta_max", 0.0)
        at_least("curio_low_entropy_threshold", 0.0)
        for name in ("curio_entropy_center", "curio_delta_slope"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)} must be a finite number.")
        for name, low in (
            ("curio_topk", 1),
            ("curio_bisect_iters", 0),
            ("ref_model_sync_steps", 1),
            ("curio_teacher_chunk_rows", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
        if not 0.0 <= self.ref_model_mixup_alpha <= 1.0:
            raise ValueError(f"ref_model_mixup_alpha={self.ref_model_mixup_alpha} must be in [0, 1] (code: 0.99).")
        if self.curio_kd_form not in CURIO_KD_FORMS:
            raise ValueError(
                f"curio_kd_form={self.curio_kd_form!r} is not supported; choose one of {', '.join(CURIO_KD_FORMS)}."
            )
        super().__post_init__()

    @property
    def uses_teacher(self) -> bool:
        return self.curio_kd_coef > 0
