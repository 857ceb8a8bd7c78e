"""S3FT's data construction (card "Algorithm"): per example, train on the base model's own answer when the judge
accepts it ("self"), else on the model's rewrite of the gold answer when that passes ("paraphrase"), else on the
gold answer ("gold"). The output feeds a plain SFTTrainer.

Generation runs batch by batch through `trl_ext.data.curation.run_curation` (progress bar; finished batches saved
with a hash of their rows under a key that holds a fingerprint of the model and every option, so a restarted run
does not generate them again; shardable over processes with the same output) and `trl_ext.inference.generation`
(batched, greedy, the same chat template and system prompt the SFT run will see: the rows it emits carry that
prompt). A generation that hits `max_new_tokens` was cut off and fails the judge. Judges come from
`trl_ext.evaluation.judges`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation
from trl_ext.evaluation.judges import judge_all, judge_name, resolve_judge
from trl_ext.inference.curation import model_fingerprint  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

SOURCES = ("self", "paraphrase", "gold")

# Ours (the paper's prompt was not recovered): the card's wording, reworded.
DEFAULT_PARAPHRASE_TEMPLATE = (
    "Here is a question and a reference answer to it.\n\n"
    "Question:\n{question}\n\n"
    "Reference answer:\n{reference}\n\n"
    "Rewrite the reference answer in your own words and your usual style. Keep every fact, every step and the final "
    "answer exactly as they are. Reply with the rewritten answer only."
)

# A generator answers a list of prompts (chat message lists or plain strings) greedily: one
# `trl_ext.inference.generation.Generation` (text, num_tokens) per prompt.
Generator = Callable[[list[Any], int], Sequence[Any]]

_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|absolutely|here(?:'s| is| are)|below is|the rewritten|rewritten)"
    r"[^\n]{0,80}?:[ \t]*(?:\n|$)",
    re.IGNORECASE,
)


def strip_preamble(text: str) -> str:
    """Drop a leading line such as "Sure! Here is the rewritten answer:" (the card: strip any preamble)."""
    return _PREAMBLE.sub("", str(text), count=1).strip()


def _content(value: Any) -> str:
    if isinstance(value, list):
        return str(value[-1].get("content", "")) if value else ""
    return "" if value is None else str(value)


def _question(prompt: Any) -> str:
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt)


def _default_generator(model, tokenizer, batch_size: int) -> Generator:
    from trl_ext.inference.generation import generate_completions

    def generator(prompts: list[Any], max_new_tokens: int):
        return generate_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                    progress=False)  # fmt: skip

    return generator


def _texts_and_lengths(outputs: Sequence[Any], n: int) -> tuple[list[str], list[int]]:
    outputs = list(outputs)
    if len(outputs) != n:
        raise ValueError(f"s3ft: the generator returned {len(outputs)} completions for {n} prompts.")
    texts = [str(getattr(o, "text", o)) for o in outputs]
    lengths = [int(getattr(o, "num_tokens", 0)) for o in outputs]
    return texts, lengths


def make_s3ft_transform(
    model=None,
    tokenizer=None,
    judge: str | Callable[..., bool] = "numeric_match",
    paraphrase: bool = True,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    paraphrase_template: str = DEFAULT_PARAPHRASE_TEMPLATE,
    keep_columns: bool = True,
    prompt_column: str = "prompt",
    completion_column: str = "completion",
    messages_column: str | None = None,
    gold_column: str | None = None,
    system_prompt: str | None = None,
    conversational: bool = True,
    judge_model_name_or_path: str | None = None,
    per_item_timeout: float = 2.0,
    source_column: str = "kind",
    curation_dir: str | None = None,
    model_name_or_path: str | None = None,
    generator: Generator | None = None,
):
    """The `s3ft` transform: rows (`prompt` + gold `completion`, or `messages`) -> the same rows with the training
    target chosen per row, plus `s3ft_source` ("self" | "paraphrase" | "gold") and `s3ft_self_answer`.

    `judge`: a name from `trl_ext.evaluation.judges` (`numeric_match`, `exact_match`, `python_unittest`,
    `llm_equivalence`), an import path "package.module:function", or a callable `(prompt, candidate, gold) -> bool`.
    The gold the judge compares with is `gold_column` when given, else `tests` for `python_unittest`, else the row's
    `answer` when it has one, else the gold completion's text. `llm_equivalence` judges with
    `judge_model_name_or_path` (default: the model itself; ours).

    Prompts are generated exactly as SFT will render them: chat messages through the tokenizer's chat template (a
    plain-string prompt becomes one user message when `conversational`, and `system_prompt`, when given, is put first),
    and the emitted rows carry that same prompt. `generator(prompts, max_new_tokens)` replaces the model's greedy
    batched generation (tests, or an external server).
    """
    if model is None and generator is None:
        if model_name_or_path is None:
            raise ValueError("s3ft generates with the model about to be trained: pass --model_name_or_path.")
        from trl_ext.models import load_model, load_tokenizer

        model, tokenizer = load_model(model_name_or_path), load_tokenizer(model_name_or_path)
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) and batch_size ({batch_size}) must be >= 1.")
    for field in ("{question}", "{reference}"):
        if field not in paraphrase_template:
            raise ValueError(f"paraphrase_template must contain {field}.")
    judge_fn = _build_judge(judge, model, tokenizer, judge_model_name_or_path, per_item_timeout)
    is_unittest = judge_name(judge_fn) == "python_unittest"
    gen = generator if generator is not None else _default_generator(model, tokenizer, batch_size)
    generator_id = model_fingerprint(model) if generator is None else judge_name(generator)

    def prompt_of(row: dict[str, Any]) -> Any:
        if messages_column is not None:
            messages = list(row[messages_column])
            prompt = messages[:-1] if messages and messages[-1].get("role") == "assistant" else messages
        else:
            prompt = row[prompt_column]
        if isinstance(prompt, str):
            if not conversational:
                return prompt if system_prompt is None else f"{system_prompt}\n\n{prompt}"
            prompt = [{"role": "user", "content": prompt}]
        prompt = [dict(m) for m in prompt]
        if system_prompt is not None and not (prompt and prompt[0].get("role") == "system"):
            prompt = [{"role": "system", "content": system_prompt}] + prompt
        return prompt

    def gold_text_of(row: dict[str, Any]) -> str:
        if messages_column is not None:
            messages = row[messages_column]
            return _content(messages[-1:]) if messages and messages[-1].get("role") == "assistant" else ""
        return _content(row[completion_column])

    def judge_gold_of(row: dict[str, Any]) -> Any:
        if gold_column is not None:
            return row[gold_column]
        if is_unittest:
            return row.get("tests")
        return row["answer"] if row.get("answer") not in (None, "") else gold_text_of(row)

    def paraphrase_prompt(prompt: Any, reference: str) -> Any:
        request = paraphrase_template.format(question=_question(prompt), reference=reference)
        if isinstance(prompt, str):
            return request
        return [m for m in prompt if m.get("role") == "system"] + [{"role": "user", "content": request}]

    def length(text: str) -> int:
        if tokenizer is not None:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text.split())

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        prompts = [prompt_of(r) for r in rows]
        golds = [gold_text_of(r) for r in rows]
        judge_golds = [judge_gold_of(r) for r in rows]
        # Step 1: the model's own greedy answer; a cut-off one (max_new_tokens reached) fails without being judged.
        answers, n_tokens = _texts_and_lengths(gen(prompts, max_new_tokens), len(rows))
        truncated = [n >= max_new_tokens for n in n_tokens]
        judged = [i for i in range(len(rows)) if not truncated[i]]
        verdicts = judge_all(judge_fn, [prompts[i] for i in judged], [answers[i] for i in judged],
                             [judge_golds[i] for i in judged])  # fmt: skip
        self_pass = [False] * len(rows)
        for i, ok in zip(judged, verdicts, strict=True):
            self_pass[i] = ok
        # Step 2: the gold answer rewritten by the model itself, for the rows that failed step 1.
        para: dict[int, tuple[str, int, bool, bool]] = {}
        failed = [i for i in range(len(rows)) if not self_pass[i]]
        if paraphrase and failed:
            texts, lengths = _texts_and_lengths(
                gen([paraphrase_prompt(prompts[i], golds[i]) for i in failed], max_new_tokens), len(failed)
            )
            texts = [strip_preamble(t) for t in texts]
            cut = [n >= max_new_tokens for n in lengths]
            ok_idx = [j for j in range(len(failed)) if not cut[j] and texts[j]]
            verdicts = judge_all(judge_fn, [prompts[failed[j]] for j in ok_idx], [texts[j] for j in ok_idx],
                                 [judge_golds[failed[j]] for j in ok_idx])  # fmt: skip
            passed = {j for j, ok in zip(ok_idx, verdicts, strict=True) if ok}
            for j, i in enumerate(failed):
                para[i] = (texts[j], lengths[j], cut[j], j in passed)
        out = []
        for i in range(len(rows)):
            if self_pass[i]:
                source, target = "self", answers[i]
            elif i in para and para[i][3]:
                source, target = "paraphrase", para[i][0]
            else:
                source, target = "gold", golds[i]
            record = {
                "s3ft_source": source,
                "self_answer": answers[i],
                "self_tokens": n_tokens[i],
                "self_truncated": truncated[i],
                "self_pass": self_pass[i],
                "target": target,
                "target_length": length(target),
            }
            if i in para:
                text, n, cut_off, ok = para[i]
                record.update(paraphrase=text, paraphrase_tokens=n, paraphrase_truncated=cut_off, paraphrase_pass=ok)
            out.append(record)
        return out

    def output_row(row: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
        prompt = prompt_of(row)
        if messages_column is not None:
            base = {messages_column: list(prompt) + [{"role": "assistant", "content": s["target"]}]}
            own = {messages_column}
        else:
            completion = s["target"] if isinstance(prompt, str) else [{"role": "assistant", "content": s["target"]}]
            base = {prompt_column: prompt, completion_column: completion}
            own = {prompt_column, completion_column}
        rest = {k: v for k, v in row.items() if k not in own} if keep_columns else {}
        return {**base, **rest, "s3ft_source": s["s3ft_source"], "s3ft_self_answer": s["self_answer"]}

    def decide(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        # S3FT keeps every row: it only chooses each row's target.
        return [Decision(True, s["s3ft_source"], output_row(r, s)) for r, s in zip(rows, scores, strict=True)]

    key = json.dumps(
        ["s3ft", generator_id, judge_name(judge_fn), paraphrase, max_new_tokens, paraphrase_template, prompt_column,
         completion_column, messages_column, gold_column, system_prompt, conversational, judge_model_name_or_path],
    )  # fmt: skip

    def transform(dataset):
        result = run_curation(
            dataset,
            score,
            decide,
            key=hashlib.sha256(key.encode()).hexdigest()[:20],
            batch_size=batch_size,
            directory=output_dir_for("s3ft", curation_dir),
            source_column=source_column if source_column in dataset.column_names else None,
            desc="s3ft",
        )
        transform.summary = s3ft_metrics(result.scores)
        transform.result = result
        for name, value in transform.summary.items():
            logger.info("%s: %s", name, value)
        if result.directory is not None and int(os.environ.get("RANK", "0")) == 0:
            (result.directory / "s3ft_metrics.json").write_text(json.dumps(transform.summary, indent=1))
        return result.dataset

    transform.summary = {}
    transform.judge = judge_fn
    return transform


def _build_judge(judge, model, tokenizer, judge_model_name_or_path, per_item_timeout):
    if judge == "python_unittest":
        return resolve_judge(judge, per_item_timeout=per_item_timeout)
    if judge == "llm_equivalence":
        if judge_model_name_or_path is not None:
            from trl_ext.models import load_model, load_tokenizer

            model, tokenizer = load_model(judge_model_name_or_path), load_tokenizer(judge_model_name_or_path)
        if model is None:
            raise ValueError("llm_equivalence needs a judge model: pass judge_model_name_or_path.")
        return resolve_judge(judge, model=model, tokenizer=tokenizer)
    return resolve_judge(judge)


def s3ft_metrics(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The card's metrics: s3ft/frac_self, s3ft/frac_paraphrase, s3ft/frac_gold, the mean target length per source
    (s3ft/mean_length/<source>, in tokens of the model's tokenizer, or words without one; NaN for an empty source),
    and how many generations were cut off at max_new_tokens."""
    n = len(scores)
    out: dict[str, Any] = {}
    for source in SOURCES:
        out[f"s3ft/frac_{source}"] = sum(s["s3ft_source"] == source for s in scores) / n if n else 0.0
    for source in SOURCES:
        lengths = [s["target_length"] for s in scores if s["s3ft_source"] == source]
        out[f"s3ft/mean_length/{source}"] = sum(lengths) / len(lengths) if lengths else float("nan")
    out["s3ft/self_truncated"] = sum(bool(s.get("self_truncated")) for s in scores)
    out["s3ft/paraphrase_truncated"] = sum(bool(s.get("paraphrase_truncated")) for s in scores)
    return out


def s3ft_build(
    dataset,
    model=None,
    tokenizer=None,
    judge: str | Callable[..., bool] = "numeric_match",
    paraphrase: bool = True,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    paraphrase_template: str = DEFAULT_PARAPHRASE_TEMPLATE,
    keep_columns: bool = True,
    return_metrics: bool = False,
    **options: Any,
):
    """The card's surface: the S3FT dataset built from `dataset` with `model` (see `make_s3ft_transform` for the
    other options). With `return_metrics`, `(dataset, metrics)`."""
    fn = make_s3ft_transform(
        model,
        tokenizer,
        judge=judge,
        paraphrase=paraphrase,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        paraphrase_template=paraphrase_template,
        keep_columns=keep_columns,
        **options,
    )
    out = fn(dataset)
    return (out, fn.summary) if return_metrics else out
