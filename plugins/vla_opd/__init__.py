"""VLA-OPD: on-policy distillation from a frozen teacher (arXiv 2603.26666), mapped to language models. The student
samples its own completions and minimises the token-level reverse KL to the teacher at every visited state; forward
KL, hard CE on the teacher's argmax and a sampled reverse-KL estimator are options. See README.md."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VlaOpdConfig": ".config",
        "VlaOpdTrainer": ".trainer",
        "repeat_rows": ".trainer",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="vla_opd",
            trainer="trl_ext_plugins.vla_opd.trainer:VlaOpdTrainer",
            config="trl_ext_plugins.vla_opd.config:VlaOpdConfig",
            base="distillation",
            family="distillation",
            paper=PAPER,
            extra_forwards="trl_ext_plugins.vla_opd.trainer:extra_head_forwards",  # the opd/* metrics pass
            description="On-policy distillation: the student samples, a frozen same-vocabulary teacher scores every "
            "completion token, loss = token-mean reverse KL(student || teacher) (forward_kl / hard_ce ablations, "
            "sampled estimator).",
            example="trl-ext train vla_opd --model_name_or_path smollm2-135m --teacher_model_name_or_path ./teacher "
            "--dataset_name builtin:arith --max_completion_length 64 --max_steps 50",
        )
    )


__all__ = ["PAPER", "VlaOpdConfig", "VlaOpdTrainer", "repeat_rows"]
