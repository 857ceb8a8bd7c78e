"""Model scores for curation transforms, through `trl_ext.inference.scoring` (chunked log-likelihoods, no full
logits), and `loglik_filter`: the core's generic curation transform (keep the rows whose response the model finds
likely, or unlikely), run by `trl_ext.data.curation.run_curation`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from trl_ext.data.curation import Decision, output_dir_for, run_curation
from trl_ext.inference.scoring import sequence_logprobs


def model_fingerprint(model: Any) -> str:
    """A short hash of a model's config and a strided sample of its weights: a cache key that changes when the
    checkpoint does (curation transforms key their saved generations with it)."""
    import torch

    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    digest.update((config.to_json_string() if hasattr(config, "to_json_string") else repr(config)).encode())
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 1024)].float().cpu()
            digest.update(name.encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def loglik_scores(
    model,
    tokenizer,
    prompts: list[Any],
    completions: list[Any],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
) -> list[dict[str, float]]:
    """`sum_logprob`, `num_tokens` and `mean_logprob` of each (prompt, completion) under `model` (see
    `sequence_logprobs`), without its own progress bar (the curation runner shows one)."""
    return sequence_logprobs(
        model, tokenizer, prompts, completions, batch_size=batch_size, max_length=max_length, progress=False
    )


def loglik_filter(
    model,
    tokenizer,
    prompt_column: str = "prompt",
    completion_column: str = "completion",
    keep_fraction: float = 1.0,
    min_mean_logprob: float | None = None,
    keep: str = "likely",
    batch_size: int = 16,
    max_length: int | None = None,
    source_column: str | None = None,
    curation_dir: str | None = None,
) -> Callable:
    """Score every row's completion by its token-mean log-probability under the model and keep the rows above
    `min_mean_logprob` (when given), then the `keep_fraction` best of those (`keep="likely"`: highest mean
    log-prob first; `keep="unlikely"`: lowest first, e.g. to keep what the model has not learnt). Ties keep the
    earlier row. The per-row scores and decisions and a summary go next to the output (see `run_curation`)."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1], got {keep_fraction}.")
    if keep not in ("likely", "unlikely"):
        raise ValueError(f"keep must be 'likely' or 'unlikely', got {keep!r}.")

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        prompts = [r[prompt_column] for r in rows]
        completions = [r[completion_column] for r in rows]
        return loglik_scores(model, tokenizer, prompts, completions, batch_size=batch_size, max_length=max_length)

    def decide(rows: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[Decision]:
        means = [s["mean_logprob"] if s.get("mean_logprob") is not None else float("-inf") for s in scores]
        eligible = [i for i, m in enumerate(means) if min_mean_logprob is None or m >= min_mean_logprob]
        n_keep = int(round(keep_fraction * len(rows)))
        sign = -1.0 if keep == "likely" else 1.0
        ranked = sorted(eligible, key=lambda i: (sign * means[i], i))[:n_keep]
        chosen = set(ranked)
        decisions = []
        for i in range(len(means)):
            if i in chosen:
                decisions.append(Decision(True, "kept"))
            elif i not in eligible:
                decisions.append(Decision(False, f"mean_logprob < {min_mean_logprob}"))
            else:
                decisions.append(Decision(False, f"outside the {keep_fraction:g} most {keep}"))
        return decisions

    key = f"loglik_filter:{prompt_column}:{completion_column}:{keep_fraction}:{min_mean_logprob}:{keep}:{max_length}"

    def transform(dataset):
        result = run_curation(
            dataset,
            score,
            decide,
            key=key,
            batch_size=batch_size,
            directory=output_dir_for("loglik_filter", curation_dir),
            source_column=source_column,
            desc="loglik_filter",
        )
        transform.summary = {k: v for k, v in result.summary.items() if k in ("rows_in", "rows_out", "drop_reasons")}
        transform.result = result
        return result.dataset

    transform.summary = {}
    return transform


def scoring_throughput(
    model,
    tokenizer,
    prompts: list[Any],
    completions: list[Any],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
) -> dict[str, float]:
    """Tokens/s of `sequence_logprobs` on these pairs against a bare no-grad forward of the same model on the same
    padded batches (full logits, nothing else): `ratio` = scoring / forward (the issue's bar: >= 0.9)."""
    import time

    from trl_ext.inference.scoring import tokenize_pair

    encoded = [tokenize_pair(tokenizer, p, c, max_length)[0] for p, c in zip(prompts, completions, strict=True)]
    tokens = sum(len(ids) for ids in encoded)
    start = time.perf_counter()
    sequence_logprobs(model, tokenizer, prompts, completions, batch_size=batch_size, max_length=max_length,
                      progress=False)  # fmt: skip
    scoring = time.perf_counter() - start
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    start = time.perf_counter()
    bare_forward(model, encoded, batch_size=batch_size, pad_id=pad_id)
    forward = time.perf_counter() - start
    return {
        "tokens": float(tokens),
        "scoring_tokens_per_s": tokens / scoring,
        "forward_tokens_per_s": tokens / forward,
        "ratio": forward / scoring,
    }


def bare_forward(
    model, sequences: list[list[int]], *, batch_size: int = 8, pad_id: int = 0, sort: bool = True
) -> None:
    """A plain no-grad `model(input_ids, attention_mask)` (full logits, nothing kept) over `sequences` in batches of
    `batch_size`, right-padded with `pad_id`: longest first with `sort`, else in the given order. The baseline that
    scoring throughput is measured against (`scoring_throughput`, `trl-ext bench scoring`)."""
    import torch

    order = list(range(len(sequences)))
    if sort:
        order.sort(key=lambda i: len(sequences[i]), reverse=True)
    device = model.get_input_embeddings().weight.device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for b in range(0, len(order), batch_size):
                batch = [sequences[i] for i in order[b : b + batch_size]]
                width = max(len(ids) for ids in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, ids in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    mask[row, : len(ids)] = 1
                model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
    finally:
        model.train(was_training)
