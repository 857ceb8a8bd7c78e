"""ConMax's data steps: compression prompts for GRPO, candidate compressions from a trained compressor, and the
selection of one compressed trace per query for SFT.

    conmax_prompts   (prompt=x, trace=z, answer=y) -> GRPO rows: prompt = compression instruction holding x and z,
                     bounded to `max_prompt_tokens`; query = x, trace = z (as shown), answer = y.
    conmax_compress  those rows + a compressor model -> `candidates`: `num_candidates` sampled compressions each.
    conmax_select    rows with `candidates` -> SFT rows: prompt = x, completion = think_open ẑ think_close
                     answer_prefix y for the highest-reward ẑ whose final answer is y (ConMax's downstream step).

Token budget: TRL 1.16's GRPOTrainer never truncates prompts, so `conmax_prompts` bounds each prompt (chat template
included) to `max_prompt_tokens` (default 1024, ours) counted with the policy's tokenizer (the runner's, or
`--model_name_or_path` under `trl-ext transform`): a trace that does not fit is cut to the tokens that do, followed
by TRUNCATION_MARK (`overflow="truncate"`), or its row is dropped (`overflow="drop"`); a row whose query alone does
not fit is dropped. Without a tokenizer the budget is counted in UTF-8 bytes, an upper bound of byte-level BPE tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from .config import ConMaxConfig
from .scoring import answer_text, compressed_trace

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You rewrite long reasoning traces into short ones that keep every step needed for the answer."
TEMPLATE = (
    "Compress the reasoning below. Keep only the steps needed to reach the final answer; drop repetitions, "
    "self-checks and filler. Write the compressed reasoning between <compressed> and </compressed>.\n\n"
    "Question: {query}\n\nReasoning:\n{trace}"
)
TRUNCATION_MARK = " [...]"
DEFAULT_MAX_PROMPT_TOKENS = 1024
_FIELD = re.compile(r"\{(query|trace)\}")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _query_string(query: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, (list, tuple)):
        users = [m.get("content") for m in query if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    raise ValueError(f"conmax: the query must be a string or a list of messages with a user turn, got {query!r:.80}")


def _fill(template: str, query: str, trace: str) -> str:
    values = {"query": query, "trace": trace}
    return _FIELD.sub(lambda m: values[m.group(1)], template)  # one pass: a query holding "{trace}" stays text


def _messages(template: str, system_prompt: str | None, query: str, trace: str) -> list[dict[str, str]]:
    user = {"role": "user", "content": _fill(template, query, trace)}
    return [{"role": "system", "content": system_prompt}, user] if system_prompt else [user]


def _count(tokenizer, messages: list[dict[str, str]]) -> int:
    if tokenizer is None:
        return sum(len(m["content"].encode()) + 8 for m in messages)  # 8: a role header's allowance
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return len(ids["input_ids"])
    return len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])


def _cut(tokenizer, text: str, n: int) -> str:
    if tokenizer is None:
        return text.encode()[:n].decode(errors="ignore")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    return tokenizer.decode(ids, skip_special_tokens=True)


def build_compression_prompts(
    example: dict[str, Any],
    template: str = TEMPLATE,
    system_prompt: str | None = SYSTEM_PROMPT,
    tokenizer=None,
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
    overflow: str = "truncate",
) -> dict[str, Any] | None:
    """One (prompt=x, trace=z, answer=y) row -> the GRPO row {prompt, query, trace, answer}, or None when it cannot
    fit `max_prompt_tokens` (see the module docstring for the budget). `template` holds `{query}` and `{trace}`."""
    query, trace = example.get("prompt"), example.get("trace")
    if not isinstance(trace, str) or not trace.strip():
        raise ValueError(f"conmax_prompts: the trace must be non-empty text, got {trace!r:.80}")
    text = _query_string(query)
    messages = _messages(template, system_prompt, text, trace)
    if _count(tokenizer, messages) > max_prompt_tokens:
        if overflow == "drop":
            return None
        room = max_prompt_tokens - _count(tokenizer, _messages(template, system_prompt, text, TRUNCATION_MARK))
        # Cutting text at a token boundary and re-tokenizing can merge or split tokens: shrink until it fits.
        while room > 0:
            trace = _cut(tokenizer, trace, room).rstrip() + TRUNCATION_MARK
            messages = _messages(template, system_prompt, text, trace)
            if _count(tokenizer, messages) <= max_prompt_tokens:
                break
            room -= max(1, room // 20)
        if room <= 0:
            return None
    return {"prompt": messages, "query": query, "trace": trace, "answer": example.get("answer")}


def conmax_prompts(
    model=None,
    tokenizer=None,
    template: str = TEMPLATE,
    system_prompt: str | None = SYSTEM_PROMPT,
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
    overflow: str = "truncate",
):
    """The `conmax_prompts` transform: `fn(dataset) -> dataset` (see `build_compression_prompts`)."""
    if overflow not in ("truncate", "drop"):
        raise ValueError(f"overflow={overflow!r} must be 'truncate' or 'drop'")
    if isinstance(max_prompt_tokens, bool) or not isinstance(max_prompt_tokens, int) or max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens={max_prompt_tokens!r} must be an integer >= 1")
    if "{trace}" not in template or "{query}" not in template:
        raise ValueError("template must hold both {query} and {trace}")
    options = {"template": template, "system_prompt": system_prompt, "tokenizer": tokenizer}
    options |= {"max_prompt_tokens": max_prompt_tokens, "overflow": overflow}

    def transform(dataset):
        from datasets import Dataset, DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        rows, dropped = [], 0
        for row in dataset:
            built = build_compression_prompts(row, **options)
            if built is None:
                dropped += 1
                continue
            rows.append({**{k: v for k, v in row.items() if k not in built}, **built})
        if dropped:
            logger.warning(
                "conmax_prompts: dropped %d of %d rows over %d tokens", dropped, len(dataset), max_prompt_tokens
            )
        if not rows:
            raise ValueError(f"conmax_prompts: no row fits max_prompt_tokens={max_prompt_tokens}")
        return Dataset.from_list(rows)

    return transform


def conmax_compress(
    compressor: str | None = None,
    num_candidates: int = 4,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    model=None,
    tokenizer=None,
):
    """The `conmax_compress` transform: sample `num_candidates` compressions of each row's `prompt` (built by
    `conmax_prompts`) with the compressor (`compressor`: a trained GRPO output folder, Hub id or alias; else the model
    the runner passes) into a `candidates` column (raw outputs; `conmax_select` extracts the span)."""
    if compressor is not None:
        from trl_ext.models import load_model, load_tokenizer

        model, tokenizer = load_model(compressor), load_tokenizer(compressor)
    if model is None or tokenizer is None:
        raise ValueError("conmax_compress needs a compressor: pass compressor=PATH (the GRPO-trained policy)")
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ValueError(f"num_candidates={num_candidates!r} must be an integer >= 1")

    def transform(dataset):
        import torch
        from datasets import DatasetDict

        from trl_ext.inference.generation import generate

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        torch.manual_seed(seed)
        texts = generate(
            model,
            tokenizer,
            list(dataset["prompt"]),
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            num_return_sequences=num_candidates,
            temperature=temperature or None,
        )
        groups = [texts[i : i + num_candidates] for i in range(0, len(texts), num_candidates)]
        if "candidates" in dataset.column_names:
            dataset = dataset.remove_columns("candidates")
        return dataset.add_column("candidates", groups)

    return transform


def final_answer_correct(trace: str, answer: Any) -> bool:
    """Whether a compressed trace ends on the gold answer: for a numeric y, its last number equals y (thousands
    separators ignored); otherwise y (case-folded) occurs in the trace."""
    y = answer_text(answer)
    if y is None:
        return False
    y = y.strip()
    if _NUMBER.fullmatch(y):
        numbers = _NUMBER.findall(trace)
        return bool(numbers) and float(numbers[-1].replace(",", "")) == float(y.replace(",", ""))
    return y.casefold() in trace.casefold()


def select_best_compressions(
    rewards: Sequence[float | None], correct: Sequence[bool], invalid_reward: float | None = None
) -> int | None:
    """Index of the highest-reward candidate among those with a correct final answer and a real score (not None, not
    the gate's `invalid_reward`); the first on ties; None when none qualifies."""
    best = None
    for i, (reward, ok) in enumerate(zip(rewards, correct, strict=True)):
        if not ok or reward is None or (invalid_reward is not None and reward == invalid_reward):
            continue
        if best is None or reward > rewards[best]:
            best = i
    return best


def conmax_select(fallback: str = "drop", require_correct: bool = True, config: ConMaxConfig | None = None, **fields):
    """The `conmax_select` transform: score each row's `candidates` with `conmax_confidence` (options are
    `ConMaxConfig`'s fields) and keep, per query, the best one with a correct final answer as an SFT row
    {prompt: x as messages, completion: [assistant: think_open ẑ think_close answer_prefix y], answer,
    conmax_reward, conmax_ratio}. A row with no such candidate is dropped (`fallback="drop"`) or keeps its original
    trace z (`fallback="original"`, reward None)."""
    from .rewards import ConMaxConfidenceReward

    if fallback not in ("drop", "original"):
        raise ValueError(f"fallback={fallback!r} must be 'drop' or 'original'")
    reward = ConMaxConfidenceReward(config=config) if config is not None else ConMaxConfidenceReward(**fields)
    cfg = reward.config

    def completion(trace: str, answer: Any) -> list[dict[str, str]]:
        text = f"{cfg.think_open}{trace}{cfg.think_close}{cfg.answer_prefix}{answer_text(answer) or ''}"
        return [{"role": "assistant", "content": text}]

    def transform(dataset):
        from datasets import Dataset, DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        rows = []
        for row in dataset:
            candidates = [c for c in (row["candidates"] or []) if isinstance(c, str)]
            n = len(candidates)
            columns = {c: [row[c]] * n for c in ("query", "trace", "answer")}
            rewards = reward(completions=candidates, **columns) if n else []
            traces = [compressed_trace(c, cfg) or "" for c in candidates]
            correct = [not require_correct or final_answer_correct(t, row["answer"]) for t in traces]
            best = select_best_compressions(rewards, correct, cfg.invalid_reward) if n else None
            query = row["query"]
            prompt = [{"role": "user", "content": query}] if isinstance(query, str) else list(query)
            if best is not None:
                chosen, score = traces[best], rewards[best]
            elif fallback == "original":
                chosen, score = row["trace"], None
            else:
                continue
            rows.append(
                {
                    "prompt": prompt,
                    "completion": completion(chosen, row["answer"]),
                    "answer": row["answer"],
                    "conmax_reward": score,
                    "conmax_ratio": len(chosen) / max(len(row["trace"]), 1),
                }
            )
        logger.info("conmax_select: kept %d of %d queries", len(rows), len(dataset))
        if not rows:
            raise ValueError("conmax_select: no query has a valid compressed trace with a correct final answer")
        return Dataset.from_list(rows)

    return transform
