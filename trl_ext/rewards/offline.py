"""GRPO reward functions called outside a trainer, exactly as TRL 1.16's `GRPOTrainer._calculate_rewards` calls them,
for transforms that score rollouts before training (rif_rft's instance filter) and evaluation code.

Each reward gets `prompts`, `completions` (conversational prompts get `[{"role": "assistant", "content": text}]`
completions, as GRPO builds them), `completion_ids` and every dataset column except prompt/completion/completion_ids
as a list, plus `trainer_state` (a fresh `transformers.TrainerState`: step 0), `log_extra` and `log_metric` (collected
here, not logged); `async def` rewards are awaited together; `None` becomes NaN; a reward that returns another number
of values than completions is an error naming it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def reward_func_name(func: Any) -> str:
    """The name TRL logs a reward under (`__name__`, else the wrapped function's, else the class's)."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", None) or type(func).__name__


def _is_async(func: Any) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


def as_completion(prompt: Any, text: str) -> Any:
    """The completion GRPO hands a reward: an assistant message list for a conversational prompt, else the text."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def score_completions(
    reward_funcs: Sequence[Callable[..., Any]],
    prompts: Sequence[Any],
    completions: Sequence[Any],
    rows: Sequence[Mapping[str, Any]],
    completion_ids: Sequence[Sequence[int]] | None = None,
    metrics: dict[str, list[float]] | None = None,
) -> list[list[float]]:
    """Per completion, the value of each reward (NaN for None): `len(completions)` lists of `len(reward_funcs)`
    floats. `rows[i]` is the dataset row completion i answers (its columns become the rewards' keyword lists).
    Values passed to `log_metric` are appended to `metrics[name]` when given."""
    from transformers import TrainerState

    n = len(completions)
    if not (len(prompts) == len(rows) == n):
        raise ValueError(f"score_completions: {len(prompts)} prompts, {len(rows)} rows, {n} completions.")
    keys = [k for k in (rows[0] if rows else {}) if k not in ("prompt", "completion", "completion_ids")]
    kwargs: dict[str, Any] = {k: [row.get(k) for row in rows] for k in keys}

    def log_metric(name: str, value: float) -> None:
        if metrics is not None:
            metrics.setdefault(name, []).append(float(value))

    kwargs.update(trainer_state=TrainerState(), log_extra=lambda name, values: None, log_metric=log_metric)
    call = {
        "prompts": list(prompts),
        "completions": list(completions),
        "completion_ids": [list(ids) for ids in completion_ids]
        if completion_ids is not None
        else [[] for _ in range(n)],
        **kwargs,
    }
    outputs: dict[int, list[Any]] = {}
    pending = []
    for i, func in enumerate(reward_funcs):
        if _is_async(func):
            pending.append((i, func))
        else:
            outputs[i] = list(func(**call))
    if pending:

        async def gather() -> list[list[Any]]:
            return await asyncio.gather(*(func(**call) for _, func in pending))

        for (i, _), out in zip(pending, asyncio.run(gather()), strict=True):
            outputs[i] = list(out)
    for i, func in enumerate(reward_funcs):
        if len(outputs[i]) != n:
            raise ValueError(
                f"The reward function {reward_func_name(func)!r} returned {len(outputs[i])} rewards for {n} completions."
            )
    return [
        [math.nan if outputs[i][k] is None else float(outputs[i][k]) for i in range(len(reward_funcs))]
        for k in range(n)
    ]
