"""CurioSFT: entropy-preserving SFT via adaptive self-distillation toward an EMA teacher (arXiv 2602.02244)."""

from trl_ext import Method, Paper, hookimpl

from .config import CurioSFTConfig
from .temperature import TemperatureRule, entropy_guided_temperature, tempered_teacher_targets
from .trainer import CurioSFTTrainer

PAPER = Paper(
    title="Learning While Staying Curious: Entropy-Preserving Supervised Fine-Tuning via Adaptive Self-Distillation "
    "for Large Reasoning Models",
    arxiv="2602.02244",
    citation="""@article{wang2026learning,
  title         = {Learning While Staying Curious: Entropy-Preserving Supervised Fine-Tuning via Adaptive
                   Self-Distillation for Large Reasoning Models},
  author        = {Wang, Hao and Gu, Hao and Piao, Hongming and Gong, Kaixiong and Ye, Yuxiao and Yue, Xiangyu and
                   Han, Sirui and Guo, Yike and Wu, Dapeng},
  journal       = {arXiv preprint arXiv:2602.02244},
  year          = {2026},
  eprint        = {2602.02244},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2602.02244}
}""",
)
CurioSFTTrainer._paper = {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}


@hookimpl
def register_methods(register):
    register(
        Method(
            name="curiosft",
            trainer=CurioSFTTrainer,
            config=CurioSFTConfig,
            base="sft",
            family="distillation",
            paper=PAPER,
            description="NLL plus a squared log-ratio pull toward an EMA self-teacher softened by an entropy-guided "
            "per-token temperature in [1.1, 1.5]: keeps entropy up for the RL stage.",
            extra_forwards=lambda config, model: 1.0 if config.uses_teacher else 0.0,  # the teacher's no-grad forward
            example="trl-ext train curiosft --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--learning_rate 5e-5 --max_steps 50",
        )
    )


__all__ = [
    "CurioSFTConfig",
    "CurioSFTTrainer",
    "PAPER",
    "TemperatureRule",
    "entropy_guided_temperature",
    "tempered_teacher_targets",
]
