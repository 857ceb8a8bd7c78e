"""Rows of structured survival cases -> SFT (`prompt` + `completion`) and GRPO (`prompt`) examples.

The input columns are the card's: `patient_summary` (text from the structured clinical fields), `survival_status`
("0:LIVING" / "1:DECEASED"), `survival_months` (a number or a string such as ">60") and, for SFT with CoT,
`expert_cot` (the rationale). Prompts are conversational (system + user message); the SFT target is the card's
format, "<reasoning>…</reasoning>\\nOverall Survival Status: 1:DECEASED\\nEstimated Overall Survival (months): 14.5",
or the two answer lines alone without CoT.

Prompt budget: GRPO in TRL 1.16 never truncates prompts, so the patient summary is cut to `max_summary_chars`
characters (default 1,500, marked "[…]" at the cut). With the system message (under 400 characters) a prompt holds
at most 1,900 characters: at most as many tokens with a byte-level BPE tokenizer, plus the chat template's own.
"""

from __future__ import annotations

from typing import Any

from .scoring import LABELS, gold_months, gold_status

MAX_SUMMARY_CHARS = 1500
_CUT = " […]"
SYSTEM_PROMPT_COT = (
    "You are an oncology assistant. Read the patient's structured clinical summary, reason step by step inside "
    "<reasoning></reasoning>, then answer with exactly two lines:\n"
    "Overall Survival Status: 0:LIVING or 1:DECEASED\n"
    "Estimated Overall Survival (months): a number"
)
SYSTEM_PROMPT_PLAIN = (
    "You are an oncology assistant. Read the patient's structured clinical summary and answer with exactly two "
    "lines:\n"
    "Overall Survival Status: 0:LIVING or 1:DECEASED\n"
    "Estimated Overall Survival (months): a number"
)


def _summary(example: dict[str, Any], max_summary_chars: int) -> str:
    summary = example.get("patient_summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(f"an OncoReason row needs a non-empty text `patient_summary`; got {summary!r:.80}")
    summary = summary.strip()
    if len(summary) > max_summary_chars:
        summary = summary[: max_summary_chars - len(_CUT)] + _CUT
    return summary


def prompt_messages(summary: str, with_cot: bool = True) -> list[dict[str, str]]:
    system = SYSTEM_PROMPT_COT if with_cot else SYSTEM_PROMPT_PLAIN
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Patient summary:\n{summary}"}]


def target_text(status: Any, months: Any, cot: str | None = None) -> str:
    """The card's target: the optional reasoning span, then the status and months lines (months from the gold value
    with any "<", ">", "=" stripped, one decimal)."""
    label, value = gold_status(status), gold_months(months)
    if label is None:
        raise ValueError(f"survival_status {status!r} is not one of 0:LIVING, 1:DECEASED (or 0/1, LIVING/DECEASED)")
    if value is None:
        raise ValueError(f"survival_months {months!r} holds no non-negative number of months")
    answer = f"Overall Survival Status: {LABELS[label]}\nEstimated Overall Survival (months): {value:.1f}"
    return f"<reasoning>\n{cot.strip()}\n</reasoning>\n{answer}" if cot is not None else answer


def onco_to_sft(
    example: dict[str, Any], with_cot: bool = True, max_summary_chars: int = MAX_SUMMARY_CHARS
) -> dict[str, Any]:
    """One case -> `prompt` (system + user messages) and `completion` (one assistant message with the target)."""
    cot = None
    if with_cot:
        cot = example.get("expert_cot")
        if not isinstance(cot, str) or not cot.strip():
            raise ValueError("onco_to_sft with with_cot=true needs a non-empty text `expert_cot` in every row")
    completion = target_text(example.get("survival_status"), example.get("survival_months"), cot)
    return {
        "prompt": prompt_messages(_summary(example, max_summary_chars), with_cot),
        "completion": [{"role": "assistant", "content": completion}],
    }


def onco_to_grpo(example: dict[str, Any], max_summary_chars: int = MAX_SUMMARY_CHARS) -> dict[str, Any]:
    """One case -> `prompt` (system + user messages asking for the reasoning span and the two answer lines)."""
    return {"prompt": prompt_messages(_summary(example, max_summary_chars), with_cot=True)}


def _check_budget(max_summary_chars: Any) -> int:
    if isinstance(max_summary_chars, bool) or not isinstance(max_summary_chars, int) or max_summary_chars < 16:
        raise ValueError(f"max_summary_chars={max_summary_chars!r} must be an integer >= 16")
    return max_summary_chars


def _mapped(fn, fn_kwargs: dict[str, Any]):
    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        drop = [c for c in ("prompt", "completion") if c in dataset.column_names]
        return dataset.map(fn, fn_kwargs=fn_kwargs, remove_columns=drop)

    return transform


def make_sft_transform(with_cot: bool = True, max_summary_chars: int = MAX_SUMMARY_CHARS):
    """The `onco_to_sft` transform: `fn(dataset) -> dataset` adding `prompt` and `completion` (other columns kept)."""
    if not isinstance(with_cot, bool):
        raise ValueError(f"with_cot={with_cot!r} must be true or false")
    return _mapped(onco_to_sft, {"with_cot": with_cot, "max_summary_chars": _check_budget(max_summary_chars)})


def make_grpo_transform(max_summary_chars: int = MAX_SUMMARY_CHARS):
    """The `onco_to_grpo` transform: `fn(dataset) -> dataset` adding `prompt` (other columns kept for the rewards)."""
    return _mapped(onco_to_grpo, {"max_summary_chars": _check_budget(max_summary_chars)})
