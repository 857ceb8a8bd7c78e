"""CurioSFT: entropy-preserving SFT via adaptive self-distillation toward an EMA teacher (arXiv 2602.02244)."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CurioSFTConfig": ".config",
        "CurioSFTTrainer": ".trainer",
        "TemperatureRule": ".temperature",
        "entropy_guided_temperature": ".temperature",
        "tempered_teacher_targets": ".temperature",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="curiosft",
            trainer="trl_ext_plugins.curiosft.trainer:CurioSFTTrainer",
            config="trl_ext_plugins.curiosft.config:CurioSFTConfig",
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
