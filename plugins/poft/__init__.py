"""PoFT: Preference-Oriented Supervised Fine-Tuning (arXiv 2412.12865): a Bradley-Terry preference of the target
model over aligned LLMs on the same SFT pairs, with the aligned models' scores precomputed by the `poft_score`
transform. See README.md."""

from trl_ext import Dataset, Method, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL and torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PoFTConfig": ".config",
        "PoFTTrainer": ".trainer",
        "ScoreCollator": ".trainer",
        "make_poft_score_transform": ".scoring",
        "poft_score_dataset": ".scoring",
        "poft_sequence_loss": ".trainer",
        "reduce_reference": ".trainer",
    },
)

SCORE_OPTIONS = {
    "models": "Aligned model(s) to score with: Hub ids, local paths or built-in aliases, separated by '+' "
    "(e.g. models=smollm2-135m). Loaded one at a time with trl_ext.models.load_model.",
    "column": "Column to write (default 'poft_ref_scores': a list with one score per model).",
    "append": "Add to the scores already in the column instead of replacing them (default false).",
    "max_length": "Truncate prompt + response as SFT would; use the training run's max_length (default: none).",
    "batch_size": "Pairs scored per forward pass (default 8).",
    "chat_template": "A Jinja chat template to use instead of the aligned tokenizers' own.",
    "dtype": "dtype to load the aligned models in, e.g. bfloat16 (default: the model's own).",
    "progress": "Show a progress bar while scoring (default true).",
}


@hookimpl
def register_methods(register):
    register(
        Method(
            name="poft",
            trainer="trl_ext_plugins.poft.trainer:PoFTTrainer",
            config="trl_ext_plugins.poft.config:PoFTConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Bradley-Terry preference of the target model over aligned LLMs: -log sigmoid(r_theta - "
            "r_bar) per sequence, with r = mean token log-prob and r_bar precomputed (poft_score transform).",
            default_dataset="builtin:poft_arith",
            required_columns=lambda config: [getattr(config, "poft_score_column", None) or "poft_ref_scores"],
            extra_forwards="trl_ext_plugins.poft.trainer:extra_forwards",
            example="trl-ext train poft --model_name_or_path smollm2-135m --dataset_name builtin:poft_arith "
            "--transforms poft_score:models=smollm2-135m --max_steps 50",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="poft_score",
            family="data",
            paper=PAPER,
            description="Append each aligned model's mean token log-prob of the response (PoFT's r_j) to a list "
            "column, one model in memory at a time.",
            factory="trl_ext_plugins.poft.scoring:make_poft_score_transform",
            options=SCORE_OPTIONS,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="poft_arith",
            factory="trl_ext_plugins.poft.data:build",
            forms=("sft",),
            family="builtin",
            paper=PAPER,
            description="Arithmetic pairs with 30% corrupted responses (character edits, shuffled answers), a clean "
            "test split and GENERATED stand-in aligned scores in poft_ref_scores (re-score with poft_score).",
            columns={"sft": ("prompt", "completion", "answer", "corruption", "poft_ref_scores")},
        )
    )


__all__ = [
    "PAPER",
    "PoFTConfig",
    "PoFTTrainer",
    "ScoreCollator",
    "make_poft_score_transform",
    "poft_score_dataset",
    "poft_sequence_loss",
    "reduce_reference",
]
