"""Q-Tuning: joint sample and token pruning for SFT on the Error-Uncertainty plane (arXiv 2509.23873). Each
micro-batch keeps its Q2 (high perplexity, low entropy) and Q4 (low perplexity, high entropy) samples, prunes the
highest-scoring tokens of the Q2 samples, and trains on the kept tokens. See README.md."""

from trl_ext import Method, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "QTuningConfig": ".config",
        "QTuningTrainer": ".trainer",
        "Selection": ".selection",
        "bisect_quadrants": ".selection",
        "prune_tokens": ".selection",
        "sample_stats": ".selection",
        "select": ".selection",
        "smoothed_scores": ".selection",
        "token_scores": ".selection",
        "top_up": ".selection",
    },
)


@hookimpl
def register_methods(register):
    register(
        Method(
            name="qtuning",
            trainer="trl_ext_plugins.qtuning.trainer:QTuningTrainer",
            config="trl_ext_plugins.qtuning.config:QTuningConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Dynamic joint pruning inside the SFT loss: keep each micro-batch's Q2/Q4 samples on the "
            "perplexity-entropy plane (r_s=25%) and drop the highest smoothed-PPL tokens of Q2 samples (r_tok=70%).",
            extra_forwards="trl_ext_plugins.qtuning.trainer:extra_head_forwards",  # one no-grad head pass
            example="trl-ext train qtuning --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--qt_sample_ratio 0.25 --qt_token_ratio 0.7 --max_steps 50",
        )
    )


__all__ = [
    "PAPER",
    "QTuningConfig",
    "QTuningTrainer",
    "Selection",
    "bisect_quadrants",
    "prune_tokens",
    "sample_stats",
    "select",
    "smoothed_scores",
    "token_scores",
    "top_up",
]
