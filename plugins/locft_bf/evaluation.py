"""LocFT's edit metrics (official evaluation): greedy answers of at most 32 new tokens scored by SQuAD-style exact
match against the new target, on the edit prompt (reliability) and on its paraphrase (generalisation); locality is the
share of unrelated prompts whose answer did not change (pre-edit answers recorded when training begins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback, eval_rows
from trl_ext.evaluation.judges import normalize_text
from trl_ext.inference.generation import generate

from .transforms import PROMPT_ALIASES, TARGET_ALIASES


def edit_em(generated: str, target: str) -> float:
    """1.0 when the generated text equals the target after SQuAD normalisation (lower case, punctuation and a/an/the
    removed, whitespace collapsed), else 0.0: the whole answer must match, so a run-on answer scores 0."""
    return float(normalize_text(generated) == normalize_text(target))


def _column(row: dict[str, Any], aliases: Sequence[str]) -> Any:
    return next((row[name] for name in aliases if row.get(name) is not None), None)


def request_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with `prompt` and `target_new` (aliases `src`, `alt`) and the optional rephrase/locality columns."""
    out = []
    for row in rows:
        prompt, target = _column(row, PROMPT_ALIASES), _column(row, TARGET_ALIASES)
        if prompt is None or target is None:
            raise ValueError(f"edit metrics: a row lacks a prompt ({'/'.join(PROMPT_ALIASES)}) or a target "
                             f"({'/'.join(TARGET_ALIASES)}): {sorted(row)}")  # fmt: skip
        out.append({**row, "prompt": prompt, "target_new": target})
    return out


class EditMetrics(GenerationEvalCallback):
    """Logs edit/reliability_em, edit/generalization_em (rows with `rephrase_prompt`) and edit/locality (rows with
    `locality_prompt`: unchanged greedy answer vs the model's answer when training began) at the end of training."""

    label = "edit"

    def __init__(
        self,
        requests: Sequence[dict[str, Any]],
        max_new_tokens: int = 32,
        batch_size: int = 16,
        every_n_steps: int | None = None,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, at_train_end=True)
        self.requests = request_rows(requests)
        self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
        self.locality_prompts = [r["locality_prompt"] for r in self.requests if r.get("locality_prompt")]
        self.locality_before: list[str] | None = None

    def _answers(self, model, tokenizer, prompts: list[str]) -> list[str]:
        return generate(model, tokenizer, prompts, self.max_new_tokens, self.batch_size, progress=False)

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.locality_prompts and state.is_world_process_zero and model is not None and processing_class:
            self.locality_before = self._answers(model, processing_class, self.locality_prompts)

    def evaluate(self, model, tokenizer) -> dict[str, float]:
        answers = self._answers(model, tokenizer, [r["prompt"] for r in self.requests])
        figures = {
            "edit/reliability_em": _mean(
                edit_em(a, r["target_new"]) for a, r in zip(answers, self.requests, strict=True)
            )
        }
        rephrased = [r for r in self.requests if r.get("rephrase_prompt")]
        if rephrased:
            answers = self._answers(model, tokenizer, [r["rephrase_prompt"] for r in rephrased])
            figures["edit/generalization_em"] = _mean(
                edit_em(a, r["target_new"]) for a, r in zip(answers, rephrased, strict=True)
            )
        if self.locality_prompts and self.locality_before is not None:
            after = self._answers(model, tokenizer, self.locality_prompts)
            figures["edit/locality"] = _mean(edit_em(a, b) for a, b in zip(after, self.locality_before, strict=True))
        return figures


def _mean(values) -> float:
    values = list(values)
    return sum(values) / max(len(values), 1)


def make_edit_metrics(
    dataset: Any = "builtin:locft_edits",
    split: str = "train",
    n: int | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    every_n_steps: int | None = None,
) -> EditMetrics:
    """The registry's factory (`locft_edit_metrics`): the edit requests of `dataset` (a name, a Dataset, rows)."""
    rows = eval_rows(dataset, split, "locft_edit_metrics", limit=None if n is None else int(n))
    return EditMetrics(
        rows, int(max_new_tokens), int(batch_size), None if every_n_steps is None else int(every_n_steps)
    )
