"""What an arm is measured with on the held-out rows: one number per row, so the table can give a confidence
interval over the rows. Every metric generates (or scores) with the core's batched `inference/` code and the same
settings for every arm.

| `--eval` | per row | needs |
| --- | --- | --- |
| `exact_match` / `contains` / `numeric_match` / any judge (`judge=pkg.mod:fn`) | 1 if the greedy answer matches the gold | prompt, gold (`answer`) |
| `pass@k` (`:k=4:samples=8:temperature=0.8:judge=python_unittest`) | the unbiased pass@k of `samples` samples | prompt, gold (tests) |
| `perplexity` | exp(token-mean NLL of the reference completion) | prompt, completion |
| `choice` (`:options=[' yes',' no']` or `:options_column=C`) | 1 if the most likely option is the gold one (rank classification, no generation) | prompt, gold (`completion`) |
| `reward:NAME` (a registered reward, its options after `:`) | the reward of the greedy completion | prompt, the reward's columns |
| `callback:NAME` (a registered evaluation callback; `figure=` picks its figure) | the figure (an interval when the callback keeps its items' values) | the callback's |
| `length` | the greedy completion's tokens, its stop token included (response length; lower is better in the table's sense) | prompt |
| `unchanged` (`:normalize=true` compares SQuAD-normalised text) | 1 if the greedy answer is the untrained model's, character for character (locality: an edit or a fine-tune left the row alone) | prompt |

Options every metric takes: `prompt_column=C` prompts with another column of the rows (an edit's paraphrase, an
unrelated probe), `rows=N` measures the first N rows only, `label=NAME` names the metric's column (the same metric
twice, e.g. on two prompt columns), `dataset=D`, `dataset_config=F`, `split=S` measure on other data than the
comparison's evaluation split (general ability on data unrelated to the training mix; an arm's `eval_transforms` do
not apply there).

Rewards, judges and evaluation callbacks come from the registry, so a plugin that adds one adds a metric here.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trl_ext.run.recipe import RecipeError

_JUDGED = ("exact_match", "contains", "numeric_match")
# options of every metric, not of its judge, reward or callback
_COMMON = ("label", "prompt_column", "rows", "dataset", "dataset_config", "split")


@dataclass
class MetricSpec:
    """A parsed `--eval NAME[:key=value...]`: the metric's name and options, plus what every arm generates with."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    # `unchanged`: the untrained model's greedy answers to the metric's rows, filled in before any arm trains
    reference: list[str] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        if "label" in self.options:
            return str(self.options["label"])
        if self.name == "pass@k":
            return f"pass@{int(self.options.get('k', 1))}"
        return self.name

    @property
    def higher_is_better(self) -> bool:
        return self.name not in ("perplexity", "length")


def parse_metric(spec: str) -> MetricSpec:
    """`exact_match`, `pass@k:k=4`, `reward:think2sql_qatch:db_column=db`, `callback:mcq_eval:figure=accuracy`."""
    from trl_ext.run.specs import parse_spec

    kind, _, rest = spec.partition(":")
    if kind in ("reward", "callback"):
        if not rest:
            raise RecipeError(f"--eval {spec}: name the {kind}, e.g. --eval {kind}:NAME")
        name, options = parse_spec(rest)
        return MetricSpec(f"{kind}:{name}", options)
    name, options = parse_spec(spec)
    if name not in (*_JUDGED, "judge", "pass@k", "perplexity", "choice", "unchanged", "length"):
        raise RecipeError(
            f"Unknown --eval metric {name!r}: exact_match, contains, numeric_match, judge:judge=pkg.mod:fn, pass@k, perplexity, "
            "choice:options=[...], unchanged, length, reward:NAME or callback:NAME."
        )
    if "rows" in options and not (isinstance(options["rows"], int) and options["rows"] > 0):
        raise RecipeError(f"--eval {spec}: rows= takes a positive number of rows, not {options['rows']!r}.")
    if name == "choice" and ("options" in options) == ("options_column" in options):
        raise RecipeError(
            "--eval choice: give the options once, as a list (choice:options=[' positive',' negative']) or as a "
            "column holding each row's (choice:options_column=choices)."
        )
    return MetricSpec(name, options)


def metric_columns(spec: MetricSpec) -> list[str]:
    """The evaluation rows' columns the metric reads (a reward's or callback's own are checked when it runs)."""
    prompt = str(spec.options.get("prompt_column", "prompt"))
    if spec.name.startswith("callback:"):
        return []  # an evaluation callback reads its own data (its rows only set how many it measures, if any)
    if spec.name == "perplexity":
        return [prompt, "completion"]
    if spec.name == "choice":
        extra = [str(spec.options["options_column"])] if "options_column" in spec.options else []
        return [prompt, str(spec.options.get("gold_column", "completion")), *extra]
    if spec.name in (*_JUDGED, "judge", "pass@k"):
        return [prompt, str(spec.options.get("gold_column", "answer"))]
    return [prompt]


def metric_rows(spec: MetricSpec, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the metric measures: the first `rows=N`, each prompting with `prompt_column` (as its `prompt`)."""
    picked = list(rows[: int(spec.options["rows"])] if "rows" in spec.options else rows)
    column = spec.options.get("prompt_column")
    if column is None:
        return picked
    empty = [i for i, row in enumerate(picked) if row.get(column) in (None, "", [])]
    if empty:
        raise RecipeError(
            f"--eval {spec.label}: {len(empty)} of the {len(picked)} rows have no {column!r} to prompt with (first: row "
            f"{empty[0]}); pick fewer rows with rows=N or rows that all have one."
        )
    return [{**row, "prompt": row[column]} for row in picked]


def reference_answers(spec: MetricSpec, model: Any, tokenizer: Any, rows, max_new_tokens: int, batch_size: int):
    """The greedy answers `unchanged` compares an arm's with, from the model every arm starts from."""
    from trl_ext.inference.generation import generate

    prompts = [row["prompt"] for row in metric_rows(spec, rows)]
    return generate(model, tokenizer, prompts, max_new_tokens, batch_size)


def check_metric(spec: MetricSpec) -> None:
    """Resolve the metric's judge, reward or callback by name without building a model, so a typo fails before
    any arm trains."""
    from trl_ext.plugin.registry import get

    if spec.name.startswith(("reward:", "callback:")):
        kind, name = spec.name.split(":", 1)
        get(kind, name)
        return
    if spec.name in (*_JUDGED, "judge", "pass@k"):
        from trl_ext.evaluation.judges import JUDGES, resolve_judge

        default = "python_unittest" if spec.name == "pass@k" else spec.name
        judge = spec.options.get("judge", default if spec.name != "judge" else None)
        if judge is None:
            raise RecipeError("--eval judge: name it, e.g. --eval judge:judge=package.module:function")
        if judge in JUDGES:
            return
        from trl_ext.plugin.lazy import import_object, is_import_path

        if not is_import_path(judge):
            resolve_judge(judge)  # raises JudgeError naming the closest built-in
        try:
            import_object(judge)  # imported, not built: a model judge loads its model when it runs
        except (ImportError, AttributeError) as err:
            raise RecipeError(f"--eval: judge {judge!r} could not be imported: {err}") from err


def measure(
    spec: MetricSpec,
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    memo: dict[Any, Any] | None = None,
) -> tuple[list[float], dict[str, float]]:
    """(one value per row, or for a callback figure its items' values if it keeps them, else []; the figures to
    report: the metric's mean under its label). `memo`: what was already computed for this one model: its greedy
    answers by prompts and settings, so that metrics reading the same answers (a judge, a reward, `length`) generate
    once, and each callback evaluation by its options, so that several figures of one callback evaluate once."""
    import torch

    from trl_ext.inference.generation import generate

    options = {key: value for key, value in spec.options.items() if key not in _COMMON}
    if spec.name.startswith("callback:"):  # it asks its own questions: the rows may have no prompt
        return _callback_figure(spec.name.split(":", 1)[1], options, model, tokenizer, memo)
    rows = metric_rows(spec, rows)
    gold_column = options.pop("gold_column", "answer")
    prompts = [row["prompt"] for row in rows]
    if spec.name == "unchanged":
        if spec.reference is None or len(spec.reference) != len(rows):
            raise RecipeError("--eval unchanged: the untrained model's answers were not measured for these rows.")
        answers = [o.text for o in greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size, memo)]
        same = (lambda a, b: a == b) if not options.get("normalize") else _same_normalized
        values = [float(same(a, b)) for a, b in zip(answers, spec.reference, strict=True)]
    elif spec.name == "length":
        outputs = greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size, memo)
        values = [float(output.num_tokens) for output in outputs]
    elif spec.name in (*_JUDGED, "judge"):
        from trl_ext.evaluation.judges import judge_all, resolve_judge

        judge = resolve_judge(options.pop("judge", spec.name if spec.name != "judge" else "exact_match"), **options)
        answers = [o.text for o in greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size, memo)]
        values = [float(v) for v in judge_all(judge, prompts, answers, [row[gold_column] for row in rows])]
    elif spec.name == "pass@k":
        from trl_ext.evaluation.judges import judge_all, resolve_judge

        k = int(options.pop("k", 1))
        samples = int(options.pop("samples", max(k, 1)))
        temperature = float(options.pop("temperature", 0.8))
        judge = resolve_judge(options.pop("judge", "python_unittest"), **options)
        if not 1 <= k <= samples:
            raise RecipeError(f"pass@k: need 1 <= k <= samples, got k={k}, samples={samples}.")
        torch.manual_seed(seed)  # the same samples for a given model, whatever ran before
        texts = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens,
            batch_size,
            num_return_sequences=samples,
            temperature=temperature,
        )
        golds = [row[gold_column] for row in rows for _ in range(samples)]
        verdicts = judge_all(judge, [p for p in prompts for _ in range(samples)], texts, golds)
        values = [pass_at_k(samples, sum(verdicts[i * samples : (i + 1) * samples]), k) for i in range(len(rows))]
    elif spec.name == "perplexity":
        from trl_ext.inference.scoring import sequence_logprobs

        scores = sequence_logprobs(model, tokenizer, prompts, [row["completion"] for row in rows], batch_size)
        values = [math.exp(-s["mean_logprob"]) if s["num_tokens"] else math.nan for s in scores]
    elif spec.name == "choice":
        values = _choice_values(
            {k: v for k, v in spec.options.items() if k not in _COMMON}, model, tokenizer, rows, prompts, batch_size
        )
    else:  # reward:NAME (parse_metric admits no other name)
        outputs = greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size, memo)
        values = _reward_values(spec.name.split(":", 1)[1], options, tokenizer, rows, outputs)
    finite = [v for v in values if math.isfinite(v)]
    return values, {spec.label: sum(finite) / len(finite) if finite else math.nan}


def _same_normalized(answer: str, reference: str) -> bool:
    from trl_ext.evaluation.judges import normalize_text

    return normalize_text(answer) == normalize_text(reference)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator 1 - C(n-c, k) / C(n, k) of the chance that one of k samples of n passes."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _choice_values(options, model, tokenizer, rows, prompts, batch_size) -> list[float]:
    """Rank classification: each option's log-likelihood after the prompt (the chunked scorer), the argmax against the
    gold text (both stripped of surrounding spaces, so gold "negative" matches the option " negative")."""
    from trl_ext.inference.scoring import option_logprobs

    gold_column = options.get("gold_column", "completion")
    column = options.get("options_column")
    choices = [list(row[column]) for row in rows] if column else [str(o) for o in options["options"]]
    scores = option_logprobs(model, tokenizer, prompts, choices, batch_size=batch_size)
    per_row = choices if column else [choices] * len(rows)
    values = []
    for row, row_choices, row_scores in zip(rows, per_row, scores, strict=True):
        best = max(range(len(row_scores)), key=row_scores.__getitem__)
        values.append(float(str(row_choices[best]).strip() == str(row[gold_column]).strip()))
    return values


def greedy_answers(model, tokenizer, prompts, max_new_tokens: int, batch_size: int, cache: dict | None) -> list:
    """The model's greedy completions of `prompts` (`Generation`s: text and token count), generated once per
    prompts and settings when a `cache` is given (the same answers, measured by several metrics)."""
    import json

    from trl_ext.inference.generation import generate_completions

    key = json.dumps([prompts, max_new_tokens, batch_size], sort_keys=True, default=str)
    if cache is not None and key in cache:
        return cache[key]
    outputs = generate_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if cache is not None:
        cache[key] = outputs
    return outputs


def _reward_values(name, options, tokenizer, rows, outputs) -> list[float]:
    from trl_ext.plugin.registry import get

    reward = get("reward", name).build(**options)
    prompts = [row["prompt"] for row in rows]
    conversational = isinstance(prompts[0], list)
    completions = [[{"role": "assistant", "content": o.text}] if conversational else o.text for o in outputs]
    columns = {key: [row[key] for row in rows] for key in rows[0] if key not in ("prompt", "completion")}
    result = reward(
        prompts=prompts,
        completions=completions,
        completion_ids=[tokenizer(o.text, add_special_tokens=False)["input_ids"] for o in outputs],
        trainer_state=None,
        log_metric=lambda *a, **k: None,
        log_extra=lambda *a, **k: None,
        **columns,
    )
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return [math.nan if v is None else float(v) for v in result]


def _callback_figure(name, options, model, tokenizer, memo=None) -> tuple[list[float], dict[str, float]]:
    from trl_ext.evaluation.callback import GenerationEvalCallback
    from trl_ext.plugin.registry import get

    figure = options.pop("figure", None)
    key = ("callback", name, tuple(sorted((k, str(v)) for k, v in options.items())))
    if memo is not None and key in memo:
        figures, items = memo[key]
    else:
        callback = get("callback", name).build(**options)
        if not isinstance(callback, GenerationEvalCallback):
            raise RecipeError(f"--eval callback:{name}: not an evaluation callback (GenerationEvalCallback).")
        figures = callback.evaluate(model, tokenizer)
        items = dict(getattr(callback, "item_values", {}))  # the items behind its mean figures, if it keeps them
        if memo is not None:
            memo[key] = figures, items
    if figure is None:
        figure = next(iter(figures))
    if figure not in figures:
        raise RecipeError(f"--eval callback:{name}: no figure {figure!r}; it gives {', '.join(figures)}.")
    return list(items.get(figure, [])), {f"{name}/{figure}": float(figures[figure])}


def mean_and_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """Mean and the normal-approximation 95% interval mean ± z·s/√n over the finite values (s: sample std; the
    interval is the mean itself for fewer than two values)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    n = len(finite)
    mean = sum(finite) / n
    if n < 2:
        return mean, mean, mean
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = z * std / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_difference(values: Sequence[float], reference: Sequence[float]) -> dict[str, float] | None:
    """The mean per-row difference values - reference with its paired 95% interval (rows where both are finite): the
    same rows measured twice, so the interval leaves out how hard each row is and is narrower than the two arms'
    intervals side by side. None when the two were not measured on the same rows."""
    if not values or len(values) != len(reference):
        return None
    deltas = [v - r for v, r in zip(values, reference, strict=True) if math.isfinite(v) and math.isfinite(r)]
    if not deltas:
        return None
    mean, low, high = mean_and_interval(deltas)
    return {"mean": mean, "ci_low": low, "ci_high": high, "rows": len(deltas)}


def head_to_head(
    values: Sequence[float], other: Sequence[float], higher_is_better: bool = True
) -> dict[str, Any] | None:
    """Arm A against arm B on the same rows (where both are finite): how many rows A wins, ties and loses (by the
    metric's direction), its win rate wins / rows (the papers' pairwise win rate; ties apart, not halved) and the
    paired mean difference A - B with its 95% interval. None when the two were not measured on the same rows."""
    delta = paired_difference(values, other)
    if delta is None:
        return None
    pairs = [(a, b) for a, b in zip(values, other, strict=True) if math.isfinite(a) and math.isfinite(b)]
    wins = sum((a > b) if higher_is_better else (a < b) for a, b in pairs)
    ties = sum(a == b for a, b in pairs)
    return {
        "wins": wins,
        "ties": ties,
        "losses": len(pairs) - wins - ties,
        "rows": len(pairs),
        "win_rate": wins / len(pairs),
        "mean": delta["mean"],
        "ci_low": delta["ci_low"],
        "ci_high": delta["ci_high"],
    }
