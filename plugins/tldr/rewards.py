"""TLDR's length-regularised reward (arXiv:2505.07961), as pure functions and a TRL reward function.

    R(o) = 1[correct(o)] − λ_ℓ · (L / L_max) · g(o),   g(o) = 1[correct(o)] if gate_on_correct else 1

ℓ is the row's `length_level`, L the number of completion tokens (TRL's `completion_ids`, the EOS included), L_max
the run's `max_completion_length`. A truncated completion (no EOS among its ids, or, without the EOS ids, L >= L_max)
counts as wrong. correct(o): the last `\\boxed{...}` of the completion equals the row's `answer` after normalisation
(the verifier is pluggable: "boxed", "answer_is" for "The answer is N", or an import path "module:function").

A row whose `length_level` is not one of the reward's levels, or whose `answer` cannot be verified against (None;
with the built-in verifiers, not a number or non-empty text, or, for "answer_is", no number), scores None, "not
applicable" (ours), and counts in `tldr/gold_error_rate`; a completion that is not text scores 0.0.

Bounded cost: the completion is read up to `DEFAULT_MAX_CHARS` characters and scanned once, linearly.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from trl_ext.rewards import RewardFunction, RewardSetupError, completion_text, log_metric

from .config import DEFAULT_LEVELS, TLDRConfig

logger = logging.getLogger(__name__)

VERIFIERS = ("boxed", "answer_is")
_BOXED = "\\boxed{"
_ANSWER_IS = re.compile(r"The answer is\s*:?\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")


# --- correctness -----------------------------------------------------------------------------------------------------
def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (nested braces balanced), or None when there is none or it is not
    closed."""
    start = text.rfind(_BOXED)
    while start != -1:
        depth, i = 1, start + len(_BOXED)
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len(_BOXED) : i]
            i += 1
        start = text.rfind(_BOXED, 0, start)  # this one is never closed: an earlier, closed one still counts
    return None


def normalize_answer(answer: Any) -> str:
    """A final answer as comparable text: `\\text{}` unwrapped, `$`, spaces, thousands commas and a trailing period
    removed, lowercased; a number as its shortest exact form ("3.50" -> "3.5", "-0" -> "0", "1,000" -> "1000")."""
    text = str(answer).strip()
    text = _TEXT_WRAPPER.sub(r"\1", text)
    text = text.replace("$", "").replace("\\!", "").replace(" ", "").rstrip(".").lower()
    number = text.replace(",", "")
    if _NUMBER.fullmatch(number):
        value = float(number)
        if math.isfinite(value):
            if value.is_integer():
                return str(int(value))
            return repr(value)
    return text


def answers_match(predicted: str | None, gold: Any) -> bool:
    if predicted is None or gold is None:
        return False
    return normalize_answer(predicted) == normalize_answer(gold)


def verify_boxed(completion: str, answer: Any) -> bool:
    """correct(o) of the card: the last \\boxed{} holds the gold answer."""
    return answers_match(last_boxed(completion), answer)


def verify_answer_is(completion: str, answer: Any) -> bool:
    """The arithmetic datasets' convention: the number after the last "The answer is"."""
    found = _ANSWER_IS.findall(completion)
    return answers_match(found[-1] if found else None, answer)


def load_verifier(verifier: str | Callable[[str, Any], bool]) -> Callable[[str, Any], bool]:
    """A verifier `fn(completion, answer) -> bool` by name ("boxed", "answer_is"), import path ("module:function")
    or the callable itself."""
    if callable(verifier):
        return verifier
    if verifier == "boxed":
        return verify_boxed
    if verifier == "answer_is":
        return verify_answer_is
    if isinstance(verifier, str) and ":" in verifier:
        module, _, name = verifier.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"verifier={verifier!r} does not import: {exc}") from None
        if callable(fn):
            return fn
    raise ValueError(
        f"verifier={verifier!r} is unknown; allowed: {', '.join(VERIFIERS)} or an import path 'module:function'"
    )


# --- the reward --------------------------------------------------------------------------------------------------------
def tldr_reward(correct: bool, level: str, length: int, max_length: int, config: TLDRConfig | None = None) -> float:
    """R(o) for a completion already verified (`correct`), of `length` tokens, under level `level`; L / L_max is
    clipped to 1 (a completion longer than the run's limit means L_max was given wrong, not a larger penalty)."""
    config = config or TLDRConfig()
    strength = level_strength(level, config)
    if max_length < 1:
        raise ValueError(f"max_completion_length must be at least 1, got {max_length}")
    gate = float(correct) if config.gate_on_correct else 1.0
    return float(correct) - strength * min(length / max_length, 1.0) * gate


def level_strength(level: Any, config: TLDRConfig) -> float:
    key = level.strip().lower() if isinstance(level, str) else level
    if key not in config.levels:
        raise ValueError(f"unknown length level {level!r}; the reward's levels: {', '.join(config.levels)}")
    return config.levels[key]


def gold_ok(answer: Any, verify: Callable[[str, Any], bool]) -> bool:
    """Whether a row's `answer` can be verified against: not None, and for the built-in verifiers a finite number or
    text that is not empty once normalised (a number for `verify_answer_is`, which reads only numbers). A custom
    verifier gets any other value as it is."""
    if answer is None:
        return False
    if verify not in (verify_boxed, verify_answer_is):
        return True
    if isinstance(answer, bool):
        return False
    if isinstance(answer, (int, float)):
        return math.isfinite(answer)
    if not isinstance(answer, str):
        return False
    text = normalize_answer(answer)
    if verify is verify_answer_is:
        return _NUMBER.fullmatch(text) is not None
    return bool(text)


def is_truncated(length: int, completion_ids: Sequence[int] | None, eos_ids: frozenset[int], max_length: int) -> bool:
    """TRL's `completion_ids` keep the EOS of a finished completion: without one it was cut at L_max. Without the
    EOS ids, a completion that reached L_max is taken as cut."""
    if eos_ids and completion_ids is not None:
        return not any(token in eos_ids for token in completion_ids[-1:])
    return length >= max_length


def _eos_set(eos_token_ids: Any) -> frozenset[int]:
    if eos_token_ids is None:
        return frozenset()
    ids = [eos_token_ids] if isinstance(eos_token_ids, int) else eos_token_ids
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or not ids:
        raise ValueError(f"eos_token_ids={eos_token_ids!r} must be a token id or a non-empty list of them")
    for token in ids:
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
            raise ValueError(f"eos_token_ids={eos_token_ids!r} must hold token ids (integers >= 0)")
    return frozenset(ids)


def _token_ids(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return list(value)
    if hasattr(value, "tolist"):  # a tensor row
        return _token_ids(value.tolist())
    return None


class TLDRReward(RewardFunction):
    """TLDR's reward per completion: correctness minus a level-dependent length penalty.

    Options: TLDRConfig's fields (or `config=`), `lambda_<level>` (one level's λ), `max_completion_length` (L_max: give the run's own value, TRL's
    default is 512), `eos_token_ids` (the ids that end a completion; without them a completion of L_max tokens counts
    as truncated), `verifier` and `tokenizer` (a name or path whose tokenizer counts L when no `completion_ids` are
    given; GRPOTrainer always gives them)."""

    name = "tldr_length_regularized_reward"
    columns = ("answer", "length_level")

    def __init__(
        self,
        config: TLDRConfig | None = None,
        max_completion_length: int = 512,
        eos_token_ids: int | Sequence[int] | None = None,
        verifier: str | Callable[[str, Any], bool] = "boxed",
        tokenizer: Any = None,
        **config_fields: Any,
    ):
        # `lambda_<level>=x` sets one level's λ: the command line's NAME:key=value cannot hold a JSON mapping.
        strengths = {k[len("lambda_") :]: config_fields.pop(k) for k in list(config_fields) if k.startswith("lambda_")}
        if config is not None and (config_fields or strengths):
            raise ValueError(f"pass either config or its fields ({', '.join(config_fields)}), not both")
        if config is None:
            if strengths:
                levels = TLDRConfig(levels=config_fields.pop("levels", DEFAULT_LEVELS)).levels
                config_fields["levels"] = {**levels, **strengths}
            config = TLDRConfig(**config_fields)
        self.config = config
        if not isinstance(max_completion_length, int) or isinstance(max_completion_length, bool):
            raise ValueError(f"max_completion_length={max_completion_length!r} must be an integer >= 1")
        if max_completion_length < 1:
            raise ValueError(f"max_completion_length={max_completion_length!r} must be an integer >= 1")
        self.max_completion_length = max_completion_length
        self.eos_ids = _eos_set(eos_token_ids)
        self.verifier = verifier
        self._verify = load_verifier(verifier)
        self.tokenizer = tokenizer

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_verify", None)  # rebuilt from `verifier` (a name or import path pickles, a module function too)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._verify = load_verifier(self.verifier)

    def _length(self, completion: str, completion_ids: Any) -> tuple[int, list[int] | None]:
        ids = _token_ids(completion_ids)
        if ids is not None:
            return len(ids), ids
        if self.tokenizer is None:
            raise ValueError("no completion_ids to count L from; give the reward a `tokenizer` option")
        if isinstance(self.tokenizer, str):
            from trl_ext.models import load_tokenizer

            self.tokenizer = load_tokenizer(self.tokenizer)
        return len(self.tokenizer(completion, add_special_tokens=False)["input_ids"]), None

    def parts(self, completion: str, answer: Any = None, length_level: Any = None, completion_ids: Any = None):
        """(reward, level, L, correct) of one completion."""
        level = length_level.strip().lower() if isinstance(length_level, str) else length_level
        level_strength(level, self.config)  # an unknown level is refused before anything is scored
        length, ids = self._length(completion, completion_ids)
        truncated = is_truncated(length, ids, self.eos_ids, self.max_completion_length)
        correct = not truncated and bool(self._verify(completion, answer))
        return tldr_reward(correct, level, length, self.max_completion_length, self.config), level, length, correct

    def gold_ok(self, answer: Any, length_level: Any) -> bool:
        """Whether the row's `length_level` is one of the levels and its `answer` can be verified (`gold_ok`)."""
        level = length_level.strip().lower() if isinstance(length_level, str) else length_level
        try:
            known = level in self.config.levels
        except TypeError:  # an unhashable value (a list, a dict)
            return False
        return known and gold_ok(answer, self._verify)

    def score(self, completion: str, **row: Any) -> float | None:
        if not self.gold_ok(row.get("answer"), row.get("length_level")):
            return None
        return self.parts(completion, row.get("answer"), row.get("length_level"), row.get("completion_ids"))[0]

    def __call__(
        self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        texts, rows = self._prepare(prompts, completions, completion_ids, kwargs)
        rewards: list[float | None] = []
        by_level: dict[str, list[tuple[int, bool]]] = {}
        gold_errors = 0
        for text, row in zip(texts, rows, strict=True):
            if text is None:
                rewards.append(0.0)
                continue
            if not self.gold_ok(row.get("answer"), row.get("length_level")):
                rewards.append(None)  # no usable gold or level: not applicable to this row
                gold_errors += 1
                continue
            try:
                reward, level, length, correct = self.parts(
                    text, row.get("answer"), row.get("length_level"), row.get("completion_ids")
                )
            except Exception as exc:  # one bad item scores 0.0 and must not spoil the batch
                rewards.append(self._failed(exc).reward)
                continue
            rewards.append(self._checked(reward).reward)
            by_level.setdefault(level, []).append((length, correct))
        self._log_levels(by_level, kwargs)
        if texts:
            log_metric(kwargs, "tldr/gold_error_rate", gold_errors / len(texts))
        return rewards

    @staticmethod
    def _log_levels(by_level: dict[str, list[tuple[int, bool]]], kwargs: dict[str, Any]) -> None:
        """Mean length and accuracy per level of this batch, and the short/long length ratio when both occur."""
        means = {}
        for level, items in by_level.items():
            means[level] = sum(length for length, _ in items) / len(items)
            log_metric(kwargs, f"tldr/length_{level}", means[level])
            log_metric(kwargs, f"tldr/accuracy_{level}", sum(correct for _, correct in items) / len(items))
        if means.get("short") is not None and means.get("long"):
            log_metric(kwargs, "tldr/length_ratio_short_over_long", means["short"] / means["long"])


def level_metrics(
    completions: Sequence[Any],
    levels: Sequence[Any],
    lengths: Sequence[int],
    answers: Sequence[Any],
    verifier: str = "boxed",
) -> dict[str, float]:
    """Evaluation summary of generated completions: mean length and accuracy per level and the short/long ratio
    (the metrics the reward logs during training), e.g. on `trl-ext generate`'s output."""
    if not len(completions) == len(levels) == len(lengths) == len(answers):
        raise RewardSetupError("completions, levels, lengths and answers must have one value per completion")
    verify = load_verifier(verifier)
    by_level: dict[str, list[tuple[int, bool]]] = {}
    for completion, level, length, answer in zip(completions, levels, lengths, answers, strict=True):
        text = completion_text(completion) or ""
        by_level.setdefault(str(level), []).append((int(length), bool(verify(text, answer))))
    out: dict[str, float] = {}
    TLDRReward._log_levels(by_level, {"log_metric": out.__setitem__})
    return out


# Ready-made with the defaults (L_max = TRL's default 512), importable directly (TRL style).
tldr_length_regularized_reward = TLDRReward()
