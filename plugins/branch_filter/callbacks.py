"""`branch_rate`: the card's eval-time diagnostic as a TrainerCallback. On held-out prompts it generates (greedy),
then logs the mean branch rate of the generations (the same `branch_score` as the filter), the accuracy (a
pluggable judge; default: the last number of the answer equals the gold answer) and the mean generation length in
tokens, as `eval/branch_rate`, `eval/accuracy` and `eval/len`. Students trained on branchy data should show the
higher generated branch rate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback, eval_rows
from trl_ext.evaluation.judges import final_number, numeric_match

from .score import MIN_STEP_CHARS, branch_score


def numeric_judge(completion: str, answer: Any) -> bool:
    """True when the final number of the completion's answer (the text after </think> when it holds one) equals the
    gold answer: the shared `numeric_match` judge."""
    if not isinstance(completion, str):
        return False
    tail = completion.rsplit("</think>", 1)[-1]
    return numeric_match(None, tail if final_number(tail) is not None else completion, answer)


def generation_item_values(
    texts: Sequence[str],
    answers: Sequence[Any] | None = None,
    lengths: Sequence[int] | None = None,
    judge: Callable[[str, Any], bool] = numeric_judge,
    classifier: Callable[[str, list[str]], bool] | None = None,
    min_step_chars: int = MIN_STEP_CHARS,
) -> dict[str, list[float]]:
    """Per generation: eval/branch_rate, eval/accuracy (1/0, when answers are given), eval/len (generated tokens
    when `lengths` are given, else whitespace words)."""
    out = {
        "eval/branch_rate": [float(branch_score(t, classifier, min_step_chars)["branch_rate"]) for t in texts],
        "eval/len": [float(n) for n in (lengths if lengths is not None else [len(t.split()) for t in texts])],
    }
    if answers is not None:
        out["eval/accuracy"] = [float(bool(judge(t, a))) for t, a in zip(texts, answers, strict=True)]
    return out


def generation_metrics(
    texts: Sequence[str],
    answers: Sequence[Any] | None = None,
    lengths: Sequence[int] | None = None,
    judge: Callable[[str, Any], bool] = numeric_judge,
    classifier: Callable[[str, list[str]], bool] | None = None,
    min_step_chars: int = MIN_STEP_CHARS,
) -> dict[str, float]:
    """The means of `generation_item_values` over the generations (empty for no generation)."""
    if not texts:
        return {}
    items = generation_item_values(texts, answers, lengths, judge, classifier, min_step_chars)
    return {name: sum(values) / len(values) for name, values in items.items()}


class BranchRateCallback(GenerationEvalCallback):
    """Generate on `eval_prompts` every `every_n_steps` optimizer steps (and at each evaluation, and when training
    ends unless `at_train_end=False`) and log eval/branch_rate, eval/accuracy and eval/len.

    `eval_prompts`: a list of prompts (strings or messages), a `datasets.Dataset` with `prompt` (and `answer`), or a
    dataset name (default builtin:branch_traces, its `split`). `answers`: gold answers for a list of prompts.
    """

    label = "branch_rate"

    def __init__(
        self,
        eval_prompts: Any = "builtin:branch_traces",
        answers: Sequence[Any] | None = None,
        max_new_tokens: int = 2048,
        every_n_steps: int | None = None,
        split: str = "test",
        num_samples: int | None = None,
        batch_size: int = 8,
        judge: Callable[[str, Any], bool] | None = None,
        classifier: Callable[[str, list[str]], bool] | None = None,
        at_train_end: bool = True,
    ) -> None:
        for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"branch_rate: {name}={value!r} must be an integer >= 1")
        super().__init__(every_n_steps, at_train_end)
        self.source, self.answers, self.split, self.num_samples = eval_prompts, answers, split, num_samples
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.judge, self.classifier = judge or numeric_judge, classifier
        self._items: tuple[list[Any], list[Any] | None] | None = None

    def items(self) -> tuple[list[Any], list[Any] | None]:
        if self._items is None:
            source, answers = self.source, self.answers
            if isinstance(source, str) or hasattr(source, "column_names"):
                rows = eval_rows(source, self.split, "branch_rate", required=("prompt",))
                answers = [row["answer"] for row in rows] if rows and "answer" in rows[0] else answers
                source = [row["prompt"] for row in rows]
            prompts = list(source)
            answers = list(answers) if answers is not None else None
            if self.num_samples is not None:
                prompts = prompts[: self.num_samples]
                answers = answers[: self.num_samples] if answers is not None else None
            self._items = (prompts, answers)
        return self._items

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        from trl_ext.inference.generation import generate_completions

        prompts, answers = self.items()
        outs = generate_completions(model, tokenizer, prompts, self.max_new_tokens, self.batch_size, progress=False)
        if not outs:
            return {}
        items = generation_item_values(
            [g.text for g in outs], answers, [g.num_tokens for g in outs], self.judge, self.classifier
        )
        return self.item_means(items)
