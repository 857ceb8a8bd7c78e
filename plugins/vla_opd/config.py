"""VlaOpdConfig: DistillationConfig plus VLA-OPD's choice of divergence and estimator."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DistillationConfig

DIVERGENCES = ("reverse_kl", "forward_kl", "hard_ce")
ESTIMATORS = ("full", "sampled")
# DistillationConfig.beta for the dense divergences: 1 = KL(student || teacher), 0 = KL(teacher || student)
BETA = {"reverse_kl": 1.0, "forward_kl": 0.0}


@dataclass
class VlaOpdConfig(DistillationConfig):
    r"""
    Configuration for [`VlaOpdTrainer`], from "VLA-OPD: Bridging Offline SFT and Online RL for Vision-Language-Action
    Models via On-Policy Distillation" (https://arxiv.org/abs/2603.26666), mapped to language models.

    The student samples its own completions; a frozen teacher scores every completion position, and the student
    minimises the token-mean reverse KL(p_student || q_teacher) over the completion tokens of the batch (both at
    `temperature`). `divergence` selects the paper's ablations (forward KL, hard CE on the teacher's argmax) and
    `estimator="sampled"` the policy-gradient estimator of the reverse KL on the sampled tokens. `beta` is set from
    `divergence` (TRL's DistillationConfig: 1 = reverse KL, 0 = forward KL); other TRL fields keep their meaning.
    """

    divergence: str = field(
        default="reverse_kl",
        metadata={
            "help": "The per-token objective on the student's own samples: 'reverse_kl' sum_v p(v)[log p(v) - log q(v)] "
            "(the paper's method), 'forward_kl' sum_v q(v)[log q(v) - log p(v)] (ablation), 'hard_ce' "
            "-log p(argmax_v q(v)) (ablation).",
            "choices": list(DIVERGENCES),
        },
    )
    estimator: str = field(
        default="full",
        metadata={
            "help": "'full': the divergence over the whole vocabulary (TRL's chunked kernel). 'sampled' (reverse_kl "
            "only): -a_t log p(y_t) with the detached a_t = log q(y_t) - log p(y_t) on the sampled token y_t, whose "
            "expected gradient is the reverse-KL gradient (cheaper, noisier).",
            "choices": list(ESTIMATORS),
        },
    )
    num_generations: int = field(
        default=1,
        metadata={
            "help": "G, completions per prompt (ours: the paper's rollout counts are VLA-specific). TRL's "
            "DistillationTrainer makes one completion per row, so each training row is repeated G times (an epoch "
            "is G times longer; the loss is a token mean, no group baseline, so repeats need not share a batch)."
        },
    )
    log_opd_metrics: bool = field(
        default=True,
        metadata={
            "help": "Log opd/reverse_kl, opd/forward_kl, opd/student_entropy, opd/teacher_entropy and "
            "opd/teacher_top1_agreement (one extra no-grad projection of both LM heads per completion token)."
        },
    )

    def __post_init__(self):
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence={self.divergence!r}; allowed: {', '.join(DIVERGENCES)}.")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r}; allowed: {', '.join(ESTIMATORS)}.")
        if self.estimator == "sampled" and self.divergence != "reverse_kl":
            raise ValueError(
                f"estimator='sampled' estimates the reverse KL only; got divergence={self.divergence!r} (use "
                "estimator='full')."
            )
        if self.num_generations < 1:
            raise ValueError(f"num_generations={self.num_generations}; it must be at least 1.")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature}; it must be positive.")
        if self.divergence in BETA:
            # beta keeps TRL's default 1.0 unless set: then it must be the one `divergence` means
            if self.beta not in (1.0, BETA[self.divergence]):
                raise ValueError(
                    f"beta={self.beta} with divergence={self.divergence!r}: VLA-OPD selects its divergence with "
                    f"`divergence` (beta {BETA[self.divergence]:g}); for TRL's generalized JSD use "
                    "`trl-ext train distillation --beta`."
                )
            self.beta = BETA[self.divergence]
        super().__post_init__()
