"""S3FT: Selective Self-to-Supervised Fine-Tuning. An offline transform that trains on the model's own answer when
a judge accepts it, else on its rewrite of the gold answer, else on the gold answer; then plain SFT. See README.md."""

from __future__ import annotations

from trl_ext import Dataset, Paper, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_PARAPHRASE_TEMPLATE": ".build",
        "make_s3ft_transform": ".build",
        "model_fingerprint": ".build",
        "s3ft_build": ".build",
        "s3ft_metrics": ".build",
        "strip_preamble": ".build",
    },
)

PAPER = Paper(
    title="Selective Self-to-Supervised Fine-Tuning for Generalization in Large Language Models",
    arxiv="2502.08130",
    citation="""@inproceedings{s3ft2025,
  title     = {Selective Self-to-Supervised Fine-Tuning for Generalization in Large Language Models},
  booktitle = {Findings of the Association for Computational Linguistics: NAACL 2025},
  year      = {2025},
  url       = {https://arxiv.org/abs/2502.08130}
}""",
)

OPTIONS = {
    "judge": "numeric_match (default), exact_match, python_unittest, llm_equivalence, or an import path "
    "'package.module:function' to a callable (prompt, candidate, gold) -> bool.",
    "paraphrase": "Try the model's rewrite of the gold answer for rows whose own answer fails (default true).",
    "max_new_tokens": "Token limit of each generation; a generation that reaches it fails the judge (default 512).",
    "batch_size": "Rows per generation batch; also the unit of resumption (default 8).",
    "paraphrase_template": "The rewrite request, with {question} and {reference} (ours; see README).",
    "keep_columns": "Keep the input's other columns in the output (default true).",
    "gold_column": "What the judge compares with (default: tests for python_unittest, else answer when present, "
    "else the gold completion).",
    "system_prompt": "A system message put first, for generation and in the emitted rows alike (default none).",
    "conversational": "Render string prompts as a user message through the chat template (default true).",
    "messages_column": "Read prompt and gold from this messages column instead of prompt/completion.",
    "prompt_column": "Prompt column (default prompt).",
    "completion_column": "Gold completion column (default completion).",
    "judge_model_name_or_path": "llm_equivalence's judge model (default: the model itself; ours).",
    "per_item_timeout": "python_unittest: seconds per program in the sandbox (default 2).",
    "source_column": "Column counted per value in the curation summary (default kind).",
    "curation_dir": "Where to keep generations, verdicts and finished batches outside `trl-ext transform --output`.",
}

__all__ = [
    "DEFAULT_PARAPHRASE_TEMPLATE",
    "OPTIONS",
    "PAPER",
    "make_s3ft_transform",
    "model_fingerprint",
    "s3ft_build",
    "s3ft_metrics",
    "strip_preamble",
]


def s3ft_columns(options: dict) -> tuple[str, ...]:
    if options.get("messages_column"):
        cols: tuple[str, ...] = (options["messages_column"],)
    else:
        cols = (options.get("prompt_column", "prompt"), options.get("completion_column", "completion"))
    if options.get("gold_column"):
        cols += (options["gold_column"],)
    elif options.get("judge") == "python_unittest":
        cols += ("tests",)
    return cols


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="s3ft",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="Per row, the SFT target becomes the model's own greedy answer when a judge accepts it "
            "(self), else the model's rewrite of the gold answer when that passes (paraphrase), else the gold "
            "(gold); adds s3ft_source and s3ft_self_answer. Resumable, shardable, generations and verdicts saved.",
            required_columns=s3ft_columns,
            options=OPTIONS,
            example="trl-ext transform s3ft --model_name_or_path smollm2-135m --dataset_name builtin:s3ft_problems "
            "--split train --max_new_tokens 64 --output s3ft.jsonl",
            factory="trl_ext_plugins.s3ft.build:make_s3ft_transform",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="s3ft_problems",
            factory="trl_ext_plugins.s3ft.data:build",
            forms=("math", "code"),
            family="builtin",
            paper=PAPER,
            description="Self-solvable problems with gold answers: math (64 train / 32 test, half one-step sums "
            "under 20, half arithmetic word problems; gold '#### N') and code (12 / 6 function tasks with assert "
            "tests). For s3ft.",
            columns={
                "math": ("prompt", "completion", "answer", "kind"),
                "code": ("prompt", "completion", "tests", "kind"),
            },
        )
    )
