"""`mcq_eval`: irac_sft's MCQ evaluation as a TrainerCallback. It renders each held-out item with the chosen prompt
config (format, order, few-shot), generates (greedy at temperature 0, else sampled with the same seed per item),
parses the letter with the format's parser and logs eval/mcq_acc (unparseable = wrong), eval/parse_rate,
eval/letter_tv (the total-variation position bias), eval/acc/<domain>, eval/pred_frac/<A..D> and eval/temperature.
"""

from __future__ import annotations

from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback, eval_rows

from .mcq import FORMATS, ORDERS, mcq_metrics, option_list, parse_answer, render_prompt


class MCQEvalCallback(GenerationEvalCallback):
    """`eval_ds`: rows with question, options, answer (a letter) and optionally domain — a `datasets.Dataset`, a
    list of dicts, or a dataset name (default builtin:irac_mcq, its `split`)."""

    label = "mcq_eval"

    def __init__(
        self,
        eval_ds: Any = "builtin:irac_mcq",
        fmt: str = "json",
        order: str = "explanation_first",
        temperature: float = 0.0,
        max_new_tokens: int = 512,
        split: str = "test",
        num_samples: int | None = None,
        batch_size: int = 8,
        seed: int = 0,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
    ) -> None:
        if fmt not in FORMATS or order not in ORDERS:
            raise ValueError(f"mcq_eval: fmt must be one of {FORMATS} and order one of {ORDERS}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"mcq_eval: max_new_tokens={max_new_tokens!r} must be an integer >= 1")
        if float(temperature) < 0:
            raise ValueError(f"mcq_eval: temperature={temperature!r} must be >= 0")
        self.source, self.fmt, self.order, self.temperature = eval_ds, fmt, order, float(temperature)
        self.max_new_tokens, self.split, self.num_samples, self.batch_size = (
            max_new_tokens,
            split,
            num_samples,
            batch_size,
        )
        super().__init__(every_n_steps, at_train_end)
        self.seed = seed
        self._rows: list[dict[str, Any]] | None = None
        self.last_texts: list[str] = []

    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            required = ("question", "options", "answer")
            self._rows = eval_rows(self.source, self.split, "mcq_eval", required, self.num_samples)
        return self._rows

    def generate(self, model: Any, tokenizer: Any) -> list[str]:
        from trl_ext.inference.generation import generate

        rows = self.rows()
        prompts = [[{"role": "user", "content": render_prompt(r["question"], option_list(r["options"]), self.fmt,
                                                              self.order)}] for r in rows]  # fmt: skip
        if self.temperature == 0:
            return generate(model, tokenizer, prompts, self.max_new_tokens, self.batch_size, progress=False)
        import torch

        texts = []
        for i, prompt in enumerate(prompts):  # the same seed per item, whatever the batch: comparable runs
            torch.manual_seed(self.seed + i)
            texts += generate(model, tokenizer, [prompt], self.max_new_tokens, 1, progress=False,
                              temperature=self.temperature)  # fmt: skip
        return texts

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        rows = self.rows()
        texts = self.generate(model, tokenizer)
        self.last_texts = texts
        predicted = [parse_answer(t, self.fmt) for t in texts]
        gold = [str(r["answer"]).strip().upper() for r in rows]
        domains = [r.get("domain", "all") for r in rows]
        figures = mcq_metrics(predicted, gold, domains)
        # the items behind the accuracy, for an interval in `trl-ext compare` (the same rule as mcq_metrics')
        self.item_mean("eval/mcq_acc", [float(p is not None and p == g) for p, g in zip(predicted, gold, strict=True)])
        return {**figures, "eval/temperature": self.temperature}

    def printed(self, figures: dict[str, float]) -> dict[str, float]:
        return {k: figures[k] for k in ("eval/mcq_acc", "eval/parse_rate", "eval/letter_tv")}
