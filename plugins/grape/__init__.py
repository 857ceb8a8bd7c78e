"""GRAPE: per instruction, keep the candidate response the target base model finds most probable (length-normalised),
then train with plain SFT. A data transform; see README.md."""

from __future__ import annotations

from trl_ext import Paper, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

# These import TRL, datasets and torch: imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "format_summary": ".select",
        "grape_select": ".select",
        "make_grape_transform": ".select",
        "select_best": ".select",
        "summarize_selection": ".select",
    },
)

PAPER = Paper(
    title="The Best Instruction-Tuning Data are Those That Fit",
    arxiv="2502.04194",
    citation="""@article{zhang2025grape,
  title   = {The Best Instruction-Tuning Data are Those That Fit},
  author  = {Zhang, Dylan and Dai, Qirun and Peng, Hao},
  journal = {arXiv preprint arXiv:2502.04194},
  year    = {2025},
  url     = {https://arxiv.org/abs/2502.04194}
}""",
)

OPTIONS = {
    "top_k": "Responses kept per instruction, best first (default 1, the paper's main setting).",
    "batch_size": "Candidates scored per forward pass (default 8).",
    "max_length": "Token limit of prompt + response; use the SFT run's max_length so truncated candidates are scored "
    "on the text SFT will see (default 2048).",
    "input_format": "'grouped' (prompt, candidates[, candidate_sources]) or 'long' (prompt, completion, source, "
    "grouped by prompt_id or the prompt) (default 'grouped').",
    "return_scores": "Add grape_score, grape_rank and grape_source columns (default true).",
    "min_score": "Drop instructions whose best mean token log-prob is below this (default: off).",
    "prompt_column": "Prompt column (default 'prompt').",
    "progress": "Show a progress bar while scoring (default true).",
    "model_name_or_path": "Scoring model when the runner passes none: the target base model, before any training.",
}

__all__ = [
    "PAPER",
    "format_summary",
    "grape_select",
    "make_grape_transform",
    "select_best",
    "summarize_selection",
]


def grape_columns(options: dict) -> tuple[str, ...]:
    """The input columns GRAPE reads for its `input_format` (sources are optional in both forms)."""
    prompt = options.get("prompt_column", "prompt")
    if options.get("input_format", "grouped") == "long":
        return (prompt, options.get("completion_column", "completion"))
    return (prompt, options.get("candidates_column", "candidates"))


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="grape",
            family="data",
            needs_model=True,
            paper=PAPER,
            description="Keep, per instruction, the candidate response with the highest mean token log-prob under "
            "the target base model (GRAPE).",
            required_columns=grape_columns,
            options=OPTIONS,
            example="trl-ext transform grape --dataset_name builtin:arith_candidates --top_k 1 --output best.jsonl",
            factory="trl_ext_plugins.grape.select:make_grape_transform",
        )
    )
