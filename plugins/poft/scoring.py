"""The aligned-model scores PoFT compares the target model against, precomputed once, offline:

    r_j(x, y) = (1/T_j(y)) log p_j(y | x)        the rewards under Eq. 6, with model j's own tokenizer and chat template

`poft_score_dataset` loads each aligned model in turn (`trl_ext.models.load_model`: Hub id, local path or a built-in
alias), scores every (prompt, response) pair with `trl_ext.inference.scoring.sequence_logprobs` (batched, LM head in vocabulary
chunks, the pair rendered as SFTTrainer renders it), frees the model, and stores one score per model in a list
column. Training then needs only the policy in memory.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from datasets import Dataset, DatasetDict

from trl_ext.inference.scoring import sequence_logprobs
from trl_ext.models import load_model, load_tokenizer

logger = logging.getLogger(__name__)

DEFAULT_COLUMN = "poft_ref_scores"
ModelSpec = str | tuple[Any, Any]  # a name/path, or an already loaded (model, tokenizer)


def _model_list(models: ModelSpec | Sequence[ModelSpec] | None) -> list[ModelSpec]:
    """`models` as a list; a string may name several models separated by '+' or whitespace (CLI specs split on ',')."""
    if models is None or (isinstance(models, (str, list, tuple)) and not models):
        raise ValueError("poft_score needs models=NAME[+NAME...]: the aligned model(s) to score the responses with.")
    if isinstance(models, str):
        return [m for m in models.replace("+", " ").split() if m]
    if isinstance(models, tuple) and len(models) == 2 and not isinstance(models[0], str):
        return [models]
    return list(models)


def prompt_response_pairs(dataset: Dataset) -> tuple[list, list]:
    """(prompts, responses) of a prompt-completion dataset, or of a `messages` dataset split before its last message
    (which must be the assistant's: that is the response scored)."""
    if {"prompt", "completion"} <= set(dataset.column_names):
        return list(dataset["prompt"]), list(dataset["completion"])
    if "messages" in dataset.column_names:
        prompts, responses = [], []
        for i, messages in enumerate(dataset["messages"]):
            if not messages or messages[-1].get("role") != "assistant":
                raise ValueError(f"Row {i}: the last message must be the assistant's response to score.")
            prompts.append(list(messages[:-1]))
            responses.append([messages[-1]])
        return prompts, responses
    raise ValueError(
        f"poft_score needs prompt+completion or messages columns; the dataset has {dataset.column_names}."
    )


def _load(spec: ModelSpec, dtype: str | None) -> tuple[Any, Any, str, bool]:
    if isinstance(spec, str):
        kwargs = {} if dtype is None else {"dtype": dtype}
        return load_model(spec, **kwargs), load_tokenizer(spec), spec, True
    model, tokenizer = spec
    name = getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__
    return model, tokenizer, name, False


def poft_score_dataset(
    dataset: Dataset | DatasetDict,
    models: ModelSpec | Sequence[ModelSpec],
    chat_template: str | None = None,
    column: str = DEFAULT_COLUMN,
    batch_size: int = 8,
    max_length: int | None = None,
    append: bool = False,
    dtype: str | None = None,
    progress: bool = True,
) -> Dataset | DatasetDict:
    """Add `column`: per row, the list `[r_1, ..., r_M]` of each aligned model's mean token log-prob of the response.

    Args:
        models: names or paths (loaded one at a time with `trl_ext.models.load_model`, then freed) or loaded
            `(model, tokenizer)` pairs, in the order of the list.
        chat_template: a Jinja chat template to use instead of each aligned tokenizer's own (for models without one).
        max_length: truncate prompt + response to this many tokens as SFT would (`keep_start`); use the training
            run's `max_length` so the scores refer to the text the target model sees. Default: no truncation.
        append: add the new scores after those already in `column` (score models one at a time, like the official
            per-model files); otherwise `column` is replaced.
        dtype: dtype to load named models in (e.g. "bfloat16"); default the model's own.

    A response with no token left after truncation scores `-inf`: PoFT then gives that row zero weight (tau = 0).
    """
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                split: poft_score_dataset(
                    ds, models, chat_template, column, batch_size, max_length, append, dtype, progress
                )
                for split, ds in dataset.items()
            }
        )
    specs = _model_list(models)
    prompts, responses = prompt_response_pairs(dataset)
    per_model: list[list[float]] = []
    for spec in specs:
        model, tokenizer, name, owned = _load(spec, dtype)
        template = tokenizer.chat_template
        if chat_template is not None:
            tokenizer.chat_template = chat_template
        try:
            scores = sequence_logprobs(
                model, tokenizer, prompts, responses, batch_size=batch_size, max_length=max_length, progress=progress
            )
        finally:
            tokenizer.chat_template = template
        values = [s["mean_logprob"] for s in scores]
        finite = [v for v in values if math.isfinite(v)]
        logger.info(
            "poft_score: %s scored %d responses, mean r_j = %.4f (%d without tokens)",
            name,
            len(values),
            sum(finite) / max(len(finite), 1),
            len(values) - len(finite),
        )
        per_model.append(values)
        if owned:
            del model
            gc.collect()
    new_rows = [list(row) for row in zip(*per_model, strict=True)] if per_model else [[] for _ in range(len(dataset))]
    if column in dataset.column_names:
        if append:
            old = [v if isinstance(v, list) else [v] for v in dataset[column]]
            new_rows = [o + n for o, n in zip(old, new_rows, strict=True)]
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, new_rows)


def make_poft_score_transform(
    models: ModelSpec | Sequence[ModelSpec] | None = None, **options: Any
) -> Callable[[Dataset], Dataset]:
    """The `poft_score` transform: `fn(dataset)` runs `poft_score_dataset(dataset, models, **options)`."""
    specs = _model_list(models)

    def transform(dataset):
        return poft_score_dataset(dataset, specs, **options)

    return transform


__all__ = ["DEFAULT_COLUMN", "make_poft_score_transform", "poft_score_dataset", "prompt_response_pairs"]
