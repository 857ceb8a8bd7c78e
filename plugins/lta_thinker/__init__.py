"""LTA-Thinker (arXiv 2509.12875): a frozen LLM whose K latent-thought slots are filled by a small trainable thought
generator (one Transformer block + a projection), trained with SFT plus a semantic-alignment KL and a reasoning-focus
InfoNCE. `trl-ext train lta-thinker`; `builtin:lta_steps` data; `lta_gsm8k` turns GSM8K answers into steps. See
README.md."""

from trl_ext import Dataset, Method, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

_M = "trl_ext_plugins.lta_thinker"

# These import torch and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LTAThinkerConfig": ".config",
        "LTAThinkerTrainer": ".trainer",
        "LTAThinkerModel": ".model",
        "ThoughtGenerator": ".model",
        "generator_parameter_count": ".model",
        "lta_format": ".data",
        "LTACollator": ".data",
        "semantic_alignment_kl": ".loss",
        "reasoning_focus_infonce": ".loss",
        "thought_variance": ".loss",
        "generate_answers": ".generation",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="lta-thinker",
            trainer=f"{_M}.trainer:LTAThinkerTrainer",
            config=f"{_M}.config:LTAThinkerConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            default_dataset="builtin:lta_steps",
            required_columns=("question", "steps", "answer"),
            output_marker="lta_thinker.json",
            load_output=f"{_M}.model:load_output",
            description="Frozen base; a trainable thought generator (1 post-norm Transformer block T + linear P on "
            "the base's input embeddings) writes K=32 latent thoughts into the prompt; loss 0.33 SFT (fused head) + "
            "0.33 KL(softmax H[q] || softmax H[thought]) + 0.33 InfoNCE(question vs answer-closest step, tau 0.1). "
            "Trainable parameters = 5d^2 + 2df + f + 8d (d hidden, f intermediate): 3,434,496 on SmolLM2-135M.",
            example="trl-ext train lta-thinker --model_name_or_path smollm2-135m --dataset_name builtin:lta_steps "
            "--num_thought_tokens 8 --max_steps 50",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="lta_steps",
            factory=f"{_M}.data:build",
            forms=("sft",),
            family="builtin",
            paper=PAPER,
            description="Arithmetic word problems (1-2 steps) with gold steps and answers for lta-thinker, plus the "
            "same solution as prompt/completion for a plain-SFT baseline; 1000 train / 200 test.",
            columns={"sft": ("question", "steps", "answer", "prompt", "completion")},
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="lta_gsm8k",
            factory=f"{_M}.data:make_gsm8k_transform",
            family="data",
            paper=PAPER,
            required_columns=("question", "answer"),
            description="GSM8K-style rows (answer = reasoning lines + '#### x') to lta-thinker's question, steps "
            "(one per line, <<calculator>> notes removed) and answer.",
        )
    )


__all__ = ["PAPER"]
