"""The reward toolkit: what every GRPO reward function needs around its own scoring rule.

TRL 1.16's `GRPOTrainer._calculate_rewards` calls each reward as
`reward(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=..., log_extra=..., log_metric=...)`
with the dataset columns as lists, turns `None` into NaN ("not applicable": left out of the means and advantages),
awaits `async def` rewards concurrently (`asyncio.gather`), and logs each reward's mean as `rewards/<__name__>/mean`,
where the name is `get_callable_name(reward)`: two rewards with one `__name__` land in one averaged metric.

A reward built on `RewardFunction` writes only `score(completion, **row)` for one completion's text and its row; the
base turns TRL's batch into rows, reads the dataset columns it declares (a missing one is a setup error naming the
reward and the column), gives `0.0` to a completion that is not text and to an item whose scoring raised (logged
once per reward, never per item), keeps `None`, caps the text it looks at (`max_chars`), and logs per-item
observations (`Scored.metrics`) as batch means through `log_metric`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import inspect
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

logger = logging.getLogger(__name__)

# What GRPOTrainer passes besides the dataset columns; never read as a column ("completion" is the scored text).
TRAINER_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion"})

# Ample for any completion GRPO generates (8k tokens are ~32k characters) and small enough that a super-linear parser
# stays within seconds; a reward whose parsing is worse than linear sets a smaller cap.
DEFAULT_MAX_CHARS = 65_536

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
_MAX_FOLDED_CHARS = 48


class RewardSetupError(ValueError):
    """A reward refuses a whole batch because the dataset is not set up for it (a column missing, not a list, of
    another length than the completions, or holding a value the reward validates for the batch): an error of the
    run's setup, never of a completion, which scores 0.0 instead."""


def completion_text(completion: Any) -> str | None:
    """The text a completion holds, or None when it holds none; never raises.

    A string is its own text. A conversational completion (a list of message dicts) gives the text of its assistant
    messages (role "assistant" or no role), non-empty ones joined by a newline; a message's content may be a string
    or a list of parts (`{"type": "text", "text": ...}`). Anything else (None, numbers, bytes, nested lists, a list
    holding a non-message) is not a completion and gives None.
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list) or not all(isinstance(message, dict) for message in completion):
        return None
    texts = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        text = _content_text(message.get("content"))
        if text is None:
            return None
        if text:
            texts.append(text)
    return "\n".join(texts)


def _content_text(content: Any) -> str | None:
    if content is None:  # an assistant turn holding only tool calls
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts; images and other non-text parts carry no text
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return None


def cap_text(value: Any, max_chars: int | None) -> Any:
    """`value` cut to its first `max_chars` characters when it is a string (None: no cap), else `value` unchanged: what
    bounds a reward's parsing cost per completion, applied to the completion by `RewardFunction` and to a dataset
    column's text (a gold answer, a schema) by the reward that parses it."""
    if isinstance(value, str) and max_chars is not None:
        return value[:max_chars]
    return value


def column(kwargs: Mapping[str, Any], name: str, reward_name: str, n: int | None = None) -> list[Any]:
    """Dataset column `name` as a list, with an error naming the reward and the column when it is missing or, given
    the number of completions `n`, has another length. A missing column is a setup error, not a bad completion."""
    values = kwargs.get(name)
    if values is None:
        available = ", ".join(sorted(k for k in kwargs if k not in TRAINER_KWARGS)) or "none"
        raise RewardSetupError(
            f"reward {reward_name!r} needs the dataset column {name!r}; the dataset has the columns: {available}"
        )
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise RewardSetupError(f"reward {reward_name!r}: column {name!r} must be a list, got {type(values).__name__}")
    if n is not None and len(values) != n:
        raise RewardSetupError(f"reward {reward_name!r}: column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def log_metric(kwargs: Mapping[str, Any], name: str, value: float) -> None:
    """Log a scalar through GRPOTrainer's `log_metric` (averaged per logging step); a no-op when the reward is called
    outside a trainer."""
    logger_fn = kwargs.get("log_metric")
    if callable(logger_fn):
        logger_fn(name, float(value))


def log_extra(kwargs: Mapping[str, Any], name: str, values: Sequence[Any]) -> None:
    """Add a column to GRPOTrainer's completions table through `log_extra`; a no-op outside a trainer."""
    logger_fn = kwargs.get("log_extra")
    if callable(logger_fn):
        logger_fn(name, list(values))


def reward_name(base: str, options: Mapping[str, Any]) -> str:
    """The metric-safe name of a reward built with options: `base` alone without options, else the options folded in
    (`strict=True` -> `_strict`, `strict=False` -> `_no_strict`, `task="recipe"` -> `_task-recipe`), or a short hash
    of them when that would be long. Equal options give equal names; different options different names."""
    if not options:
        return base
    parts = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, bool):
            parts.append(key if value else f"no_{key}")
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)
            parts.append(f"{key}-{_NAME_UNSAFE.sub('-', text).strip('-')}")
    folded = "_".join(parts)
    if len(folded) > _MAX_FOLDED_CHARS:
        canonical = json.dumps(options, sort_keys=True, default=repr)
        folded = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    return f"{base}_{folded}"


@dataclass(frozen=True)
class Scored:
    """One completion's reward with observations to log: each metric's batch mean goes through `log_metric` (an item
    that gave no value for it, such as a completion that is not text, counts as 0, so name them as rates)."""

    reward: float | None
    metrics: Mapping[str, float] = field(default_factory=dict)


class RewardFunction:
    """Base of a TRL reward function scored one completion at a time; subclasses set `name`, declare `columns` and
    write `score(completion, **row) -> float | None | Scored`.

    `row` holds the item's `prompt`, `completion_ids` and every dataset column. Instances are picklable (TRL sends
    reward functions to other processes), unlike closures. Build with options through `from_options` so that two
    builds with different options get different `__name__`s.
    """

    name: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()
    max_chars: int | None = DEFAULT_MAX_CHARS

    _built_name: str | None = None
    _warned: bool = False

    @property
    def __name__(self) -> str:  # TRL reads a reward's name from __name__
        return self._built_name or self.name or type(self).__name__

    @classmethod
    def from_options(cls, **options: Any) -> RewardFunction:
        """`cls(**options)` named after its options (see `reward_name`): the factory to register for a `Reward`."""
        reward = cls(**options)
        reward._built_name = reward_name(reward.__name__, options)
        return reward

    def score(self, completion: str, **row: Any) -> float | Scored | None:
        raise NotImplementedError(f"{type(self).__name__} must implement score(completion, **row)")

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        results = [self._guarded(text, row) for text, row in zip(texts, rows, strict=True)]
        return self._finish(results, kwargs)

    # --- the batch <-> item plumbing, shared with AsyncRewardFunction ---
    def _prepare(
        self, prompts: Any, completions: Any, completion_ids: Any, kwargs: dict[str, Any]
    ) -> tuple[list[str | None], list[dict[str, Any]]]:
        completions = list(completions) if isinstance(completions, (list, tuple)) else []
        n = len(completions)
        for name in self.columns:
            column(kwargs, name, self.__name__, n)
        columns = {
            key: list(values)
            for key, values in kwargs.items()
            if key not in TRAINER_KWARGS and isinstance(values, (list, tuple)) and len(values) == n
        }
        columns["prompt"] = per_row(prompts, n)
        columns["completion_ids"] = per_row(completion_ids, n)
        rows = [{key: values[i] for key, values in columns.items()} for i in range(n)]
        texts = [completion_text(c) for c in completions]
        texts = [cap_text(t, self.max_chars) for t in texts]
        return texts, rows

    def _guarded(self, text: str | None, row: dict[str, Any]) -> Scored:
        if text is None:
            return Scored(0.0)
        try:
            return self._checked(self.score(text, **row))
        except Exception as exc:  # one bad item scores 0.0 and must not spoil the batch
            return self._failed(exc)

    def _checked(self, result: Any) -> Scored:
        if not isinstance(result, Scored):
            result = Scored(result)
        value = result.reward
        if value is None:
            return result
        if isinstance(value, (int, float)) and math.isfinite(value):
            return Scored(float(value), result.metrics)
        raise ValueError(f"score returned {value!r}; expected a finite number or None")

    def _failed(self, exc: BaseException) -> Scored:
        if not self._warned:
            self._warned = True
            logger.warning(
                "reward %r: scoring a completion raised %s: %s; such items score 0.0 (logged once per reward)",
                self.__name__,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        return Scored(0.0)

    def _finish(self, results: list[Scored], kwargs: Mapping[str, Any]) -> list[float | None]:
        if results:
            names = dict.fromkeys(name for result in results for name in result.metrics)
            for name in names:
                log_metric(kwargs, name, sum(r.metrics.get(name, 0.0) for r in results) / len(results))
        return [result.reward for result in results]


class AsyncRewardFunction(RewardFunction):
    """A `RewardFunction` whose `score` is `async def` (a judge behind an API, a sandbox): TRL awaits its `__call__`
    alongside the other async rewards, and the items of a batch are scored concurrently."""

    async def score(self, completion: str, **row: Any) -> float | Scored | None:  # type: ignore[override]
        raise NotImplementedError(f"{type(self).__name__} must implement async score(completion, **row)")

    async def __call__(  # type: ignore[override]
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        results = await asyncio.gather(
            *(self._guarded_async(text, row) for text, row in zip(texts, rows, strict=True))
        )
        return self._finish(list(results), kwargs)

    async def _guarded_async(self, text: str | None, row: dict[str, Any]) -> Scored:
        if text is None:
            return Scored(0.0)
        try:
            return self._checked(await self.score(text, **row))
        except Exception as exc:  # one bad item scores 0.0 and must not spoil the batch
            return self._failed(exc)


def per_row(values: Any, n: int) -> list[Any]:
    """A per-row argument of a TRL reward call as a list of n items; anything else (absent, batch-level, the wrong
    length) as n Nones, so a reward can index it without checking."""
    if _is_column(values, n):
        return list(values)
    return [None] * n


def take_rows(values: Any, rows: Sequence[int], n: int) -> Any:
    """The items `rows` of a per-row argument (a list of n); batch-level arguments (trainer_state, log_metric, ...)
    pass through unchanged. How a router hands part of a batch to another reward."""
    if _is_column(values, n):
        return [values[i] for i in rows]
    return values


def _is_column(values: Any, n: int) -> bool:
    """A list, tuple or other sized sequence (a `datasets` Column) of n items; not text, not a mapping."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__getitem__"):
        return False
    try:
        return len(values) == n
    except TypeError:
        return False


class _FunctionReward(RewardFunction):
    """A reward made by `@reward_function` from a per-item function; options are bound keyword arguments."""

    def __init__(self, fn: Callable[..., Any], name: str, columns: Sequence[str], max_chars: int | None, **options):
        self.fn = fn
        self._name = name
        self.columns = tuple(columns)  # type: ignore[misc]
        self.max_chars = max_chars
        self.options = options
        self._built_name = reward_name(name, options)
        functools.update_wrapper(self, fn, assigned=("__module__", "__qualname__", "__doc__"), updated=())

    def from_options(self, **options: Any) -> _FunctionReward:  # type: ignore[override]
        """This reward with `options` passed to the function as keyword arguments, named after them."""
        return type(self)(self.fn, self._name, self.columns, self.max_chars, **{**self.options, **options})

    def score(self, completion: str, **row: Any) -> Any:
        return self.fn(completion, **row, **self.options)

    def __reduce__(self) -> tuple[Any, ...]:
        # The module attribute is this wrapper, not `fn`, so pickle `fn` by the module-level reward's address.
        return (_rebuild_function_reward, (self.__module__, self.__qualname__, self.options))


class _AsyncFunctionReward(_FunctionReward, AsyncRewardFunction):
    async def score(self, completion: str, **row: Any) -> Any:  # type: ignore[override]
        return await self.fn(completion, **row, **self.options)


def _rebuild_function_reward(module: str, qualname: str, options: dict[str, Any]) -> RewardFunction:
    reward: Any = importlib.import_module(module)
    for part in qualname.split("."):
        reward = getattr(reward, part)
    return reward.from_options(**options) if options else reward


def reward_function(
    name: str | None = None, columns: Sequence[str] = (), max_chars: int | None = DEFAULT_MAX_CHARS
) -> Callable[[Callable[..., Any]], RewardFunction]:
    """Make a module-level `fn(completion: str, **row) -> float | None | Scored` (or `async def`) a reward function
    with the toolkit's guarantees; `name` defaults to the function's. Register `factory=the_reward.from_options`:
    options become keyword arguments of `fn` and part of the built reward's name."""

    def wrap(fn: Callable[..., Any]) -> RewardFunction:
        cls = _AsyncFunctionReward if inspect.iscoroutinefunction(fn) else _FunctionReward
        return cls(fn, name or fn.__name__, columns, max_chars)

    return wrap
