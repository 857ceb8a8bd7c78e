"""self_ensemble_calib (arXiv:2312.13772, Li et al., ACL Findings 2025): self-ensembled classification with a causal LM (the label
set scored over K prompt variants: other in-context demos, other templates, or both; combined by max, mean or vote)
and its calibration report (accuracy, macro-F1, ECE, MCE, Brier), plus the callback `self_ensemble_calib` that logs
both while any method trains (or on a saved model, `trl-ext evaluate`) and `builtin:calib_sentiment`. See README.md."""

from __future__ import annotations

from trl_ext import Callback, Dataset, Paper, hookimpl
from trl_ext.plugin.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CalibrationCallback": ".callback",
        "SelfEnsembleClassifier": ".classifier",
        "TEMPLATES": ".classifier",
        "Variant": ".classifier",
        "ensemble": ".strategies",
        "label_distributions": ".strategies",
        "calibration_report": "trl_ext.evaluation.calibration",
        "expected_calibration_error": "trl_ext.evaluation.calibration",
    },
)

PAPER = Paper(
    title="Large Language Models are Miscalibrated In-Context Learners",
    arxiv="2312.13772",
    citation="""@inproceedings{li2025miscalibrated,
  title     = {Large Language Models are Miscalibrated In-Context Learners},
  author    = {Li, Chengzu and Zhou, Han and Glava{\\v{s}}, Goran and Korhonen, Anna and Vuli{\\'c}, Ivan},
  booktitle = {Findings of the Association for Computational Linguistics: ACL 2025},
  year      = {2025},
  url       = {https://arxiv.org/abs/2312.13772}
}""",
)

__all__ = [
    "PAPER",
    "CalibrationCallback",
    "SelfEnsembleClassifier",
    "TEMPLATES",
    "Variant",
    "calibration_report",
    "ensemble",
    "expected_calibration_error",
    "label_distributions",
]


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="self_ensemble_calib",
            factory="trl_ext_plugins.self_ensemble_calib.callback:CalibrationCallback",
            family="recipe",
            paper=PAPER,
            options={
                "dataset_name": "Classification rows with text and label columns; a bare name is builtin:NAME "
                "(default calib_sentiment).",
                "split": "Held-out split (default test).",
                "demo_split": "Split the in-context demos are drawn from (default train).",
                "num_rows": "Held-out rows per evaluation (default 200).",
                "text_column": "Input column (default text).",
                "label_column": "Label column (default label).",
                "labels": "The label set joined by + (default: the labels in the data); verbalizer ' label'.",
                "templates": "A YAML list of templates with {demos} and {input} slots (default: 5 built-in ones).",
                "variation": "ic (K demo sets), prompt (K templates) or both (default ic).",
                "k": "K, prompt variants per input (default 5).",
                "strategy": "max, mean or vote (default max).",
                "n_demos": "In-context demos per variant (default 4).",
                "renormalize": "max: confidence m(y)/sum_c m(c) (default false).",
                "n_bins": "M, equal-width ECE bins (default 10).",
                "seed": "Seed of the demo sets (default 0).",
                "batch_size": "Sequences per forward (default 32).",
                "progress": "Show the scoring progress bar (default true).",
                "every_n_steps": "Also evaluate every this many optimizer steps.",
                "at_train_end": "Also evaluate when training ends (default true).",
            },
            description="Self-ensembled label scoring over K prompt variants -> calib/acc, ece, mce, macro_f1, "
            "conf_mean, brier, nll of the ensemble and calib/single_acc, single_ece, single_conf_mean of the first "
            "variant alone; a plot of accuracy and ECE over steps at train end.",
            example="trl-ext train sft --dataset_name builtin:calib_sentiment --callbacks "
            "self_ensemble_calib:every_n_steps=10",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="calib_sentiment",
            factory="trl_ext_plugins.self_ensemble_calib.data:build",
            forms=("sft", "cls"),
            family="builtin",
            paper=PAPER,
            description="Short reviews labelled positive/negative (plain, negated, contrastive, hedged), 200 train / "
            "200 held-out; the sft form adds 'Review: ...\\nSentiment:' -> ' label'. For self_ensemble_calib.",
            columns={"sft": ("prompt", "completion", "text", "label"), "cls": ("text", "label")},
        )
    )
