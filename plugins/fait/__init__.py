"""FAIT: Fault-Aware Fine-Tuning for code generation (arXiv 2503.16913): cross-entropy weighted up on the tokens where
a correct solution differs from similar incorrect variants (line- and character-level diffs). See README.md."""

from trl_ext import Dataset, Method, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import TRL, datasets or torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FAITConfig": ".config",
        "FAITTrainer": ".trainer",
        "build_code_mutants": ".data:build",
        "extract_code": ".data",
        "fait_masks": ".masks",
        "fait_weights": ".trainer",
        "fault_spans": ".masks",
        "mutants": ".data",
        "pass_at_1": ".data",
    },
)

__all__ = [
    "FAITConfig",
    "FAITTrainer",
    "PAPER",
    "build_code_mutants",
    "extract_code",
    "fait_masks",
    "fait_weights",
    "fault_spans",
    "mutants",
    "pass_at_1",
]


@hookimpl
def register_methods(register):
    register(
        Method(
            name="fait",
            trainer="trl_ext_plugins.fait.trainer:FAITTrainer",
            config="trl_ext_plugins.fait.config:FAITConfig",
            base="sft",
            family="sft-loss",
            paper=PAPER,
            description="Token-weighted CE: w = 1 + a·line_mask + b·token_mask from diffs against incorrect variants, "
            "renormalised to mean 1 per sequence.",
            default_dataset="builtin:code_mutants",
            required_columns=lambda config: ["prompt", *config.columns],
            extra_forwards=0.0,  # the masks are data; the loss costs what SFT's does
            example="trl-ext train fait --model_name_or_path smollm2-135m --dataset_name builtin:code_mutants "
            "--fait_line_weight 1.0 --fait_token_weight 1.0 --num_train_epochs 1",
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="fait_masks",
            factory="trl_ext_plugins.fait.masks:make_fait_masks_transform",
            needs_model=True,  # for the tokenizer: the masks are over its tokens
            family="sft-loss",
            paper=PAPER,
            required_columns=("completion", "incorrect_completions"),
            options={
                "use_line_level": "Mark tokens of lines that differ from a variant (default true).",
                "use_token_level": "Mark tokens of characters that differ from a variant (default true).",
                "num_proc": "Worker processes for Dataset.map (default: none).",
            },
            description="Add fault_line_mask / fault_token_mask (0/1 per completion token) from line and character "
            "diffs of `completion` against `incorrect_completions`.",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="code_mutants",
            factory="trl_ext_plugins.fait.data:build",
            forms=("sft",),
            family="builtin",
            paper=PAPER,
            description="Small Python functions with unit tests (300 train / 100 test) and 1-3 single-token mutants "
            "each that fail the tests (checked in the sandbox); for fait.",
            columns={"sft": ("prompt", "completion", "incorrect_completions", "tests", "entry_point")},
        )
    )
