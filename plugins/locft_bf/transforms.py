"""The edit-request transform: (prompt, target_new) -> (prompt, completion), completion = " " + target + EOS."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, DatasetDict

from trl_ext.plugin.options import as_bool

# Accepted names of the request columns (EasyEdit's ZsRE files call them `src` and `alt`).
PROMPT_ALIASES = ("prompt", "src")
TARGET_ALIASES = ("target_new", "alt")


def _find(columns: list[str], aliases: tuple[str, ...], what: str) -> str:
    for name in aliases:
        if name in columns:
            return name
    raise ValueError(f"locft: the edit requests have no {what} column (one of {', '.join(aliases)}); got {columns}")


def edit_completion(target: str, eos_token: str | None = None, append_eos: bool = True) -> str:
    """The completion LocFT trains on: a leading space unless the target has one, then the EOS (once), so that
    generation stops after the answer (the paper stresses it)."""
    text = target if target.startswith(" ") else " " + target
    if append_eos and eos_token and not text.endswith(eos_token):
        text += eos_token
    return text


def edit_requests_to_prompt_completion(
    dataset: Dataset | DatasetDict, eos_token: str | None = None, append_eos: bool = True
) -> Dataset | DatasetDict:
    """Edit requests (`prompt`/`src`, `target_new`/`alt`, optional rephrase and locality columns) as a
    prompt-completion dataset; the other columns are kept (the edit metrics read them). Without `eos_token` the
    completion gets no EOS here: SFTTrainer appends the tokenizer's to every prompt-completion row anyway."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {k: edit_requests_to_prompt_completion(v, eos_token, append_eos) for k, v in dataset.items()}
        )
    prompt_col = _find(dataset.column_names, PROMPT_ALIASES, "prompt")
    target_col = _find(dataset.column_names, TARGET_ALIASES, "target")

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = {"prompt": row[prompt_col], "completion": edit_completion(row[target_col], eos_token, append_eos)}
        if target_col != "target_new":
            out["target_new"] = row[target_col]
        return out

    drop = [c for c in ("completion",) if c in dataset.column_names]
    return dataset.remove_columns(drop).map(convert)


def is_edit_requests(dataset: Any) -> bool:
    """Raw edit requests (a target column, no completion) rather than a prompt-completion dataset."""
    columns = getattr(dataset, "column_names", None) or []
    return "completion" not in columns and any(c in columns for c in TARGET_ALIASES)


def make_locft_transform(model=None, tokenizer=None, append_eos: Any = True):
    """The registry's factory (`locft_requests`): the runner passes the tokenizer, whose EOS is appended."""
    eos = getattr(tokenizer, "eos_token", None)
    return lambda ds: edit_requests_to_prompt_completion(ds, eos, as_bool(append_eos))
