"""Judges: does a candidate answer match the gold one? Pluggable callables shared by the data-curation transforms
(s3ft's self-answer routing, filters that keep verified rows) and by evaluation code.

A judge is any callable `judge(prompt, candidate, gold) -> bool`:

- `prompt`: the question (a string or a list of chat messages); most judges ignore it, a model judge reads it.
- `candidate`: the text to check (a model's answer).
- `gold`: the reference: an answer string or number (`exact_match`, `numeric_match`, `llm_equivalence`), or a
  list of test statements such as `assert f(2) == 4` (`python_unittest`).

A judge may also offer `judge.batch(prompts, candidates, golds) -> list[bool]` to check many at once (one sandbox for
a batch of programs, one batched generation for a model judge); `judge_all` uses it when present, else calls the
judge row by row. Built-ins, by name:

| name | gold | rule |
| --- | --- | --- |
| `exact_match` | text (or a list of accepted texts) | equal after `normalize_text` (lower case, no punctuation or articles) |
| `contains` | text (or a list of accepted texts) | the gold's words appear together in the candidate, after `normalize_text` (closed-book QA read from a free answer) |
| `numeric_match` | a number, or text ending in one ("#### 1234") | final numbers equal within 1e-6, commas and $ ignored |
| `python_unittest` | a list of assert statements | the code in the candidate passes all of them in the sandbox |
| `llm_equivalence` | text | a judge model (or a user callable) answers "yes" to "are these equivalent?" |

`resolve_judge(spec, **options)` turns a name, an import path ("package.module:function") or a callable into a
judge; options go to the judges that take them (`python_unittest`: `per_item_timeout`; `llm_equivalence`: `model`,
`tokenizer`, `generate_fn`, ...).
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Judge(Protocol):
    def __call__(self, prompt: Any, candidate: str, gold: Any) -> bool: ...


def judge_all(judge: Callable[..., bool], prompts: Sequence[Any], candidates: Sequence[str], golds: Sequence[Any]):
    """`judge` on every (prompt, candidate, gold), through its `batch` method when it has one; a list of bools."""
    if not (len(prompts) == len(candidates) == len(golds)):
        raise ValueError(f"judge_all: {len(prompts)} prompts, {len(candidates)} candidates, {len(golds)} golds.")
    if not candidates:
        return []
    batch = getattr(judge, "batch", None)
    if callable(batch):
        verdicts = list(batch(list(prompts), list(candidates), list(golds)))
        if len(verdicts) != len(candidates):
            raise ValueError(f"judge batch returned {len(verdicts)} verdicts for {len(candidates)} candidates.")
        return [bool(v) for v in verdicts]
    return [bool(judge(p, c, g)) for p, c, g in zip(prompts, candidates, golds, strict=True)]


def _text(value: Any) -> str:
    """The text of an answer given as a string, a number, or chat messages (the last one's content)."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)


# ---- exact match ---------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and the articles a/an/the removed, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split())


def exact_match(prompt: Any, candidate: str, gold: Any) -> bool:
    """The candidate equals the gold text (or one of a list of gold texts) after `normalize_text`."""
    golds = gold if isinstance(gold, (list, tuple)) and not (gold and isinstance(gold[0], dict)) else [gold]
    answer = normalize_text(_text(candidate))
    return any(answer == normalize_text(_text(g)) for g in golds)


def contains(prompt: Any, candidate: str, gold: Any) -> bool:
    """The gold text (or one of a list) occurs in the candidate as whole words after `normalize_text`: "The capital
    of Peru is Lima." contains "lima" but "Limassol" does not. Closed-book QA answered in a sentence (the LoRAMoE
    demo's knowledge accuracy); an empty gold matches nothing."""
    golds = gold if isinstance(gold, (list, tuple)) and not (gold and isinstance(gold[0], dict)) else [gold]
    answer = f" {normalize_text(_text(candidate))} "
    return any(g and f" {g} " in answer for g in (normalize_text(_text(x)) for x in golds))


# ---- numeric match -------------------------------------------------------------------------------------------------

# A number with thousands separators ("1,234,567.5") or without ("1234.5"); signs and $ are handled around it.
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_MARKED_RE = re.compile(r"####\s*(" + _NUMBER + ")")
_ANSWER_IS_RE = re.compile(r"answer is\s*:?\s*(" + _NUMBER + ")", re.IGNORECASE)


def final_number(text: Any) -> float | None:
    """The answer number of a text: after the last "####" (GSM8K's gold marker), else after the last "answer is",
    else the last number; commas and $ ignored ("$1,234.50" -> 1234.5). A number passes through. None if none."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text) if math.isfinite(text) else None
    cleaned = _text(text).replace("$", "").replace("\u2212", "-")
    for pattern in (_MARKED_RE, _ANSWER_IS_RE):
        found = pattern.findall(cleaned)
        if found:
            return float(found[-1].replace(",", ""))
    found = _NUMBER_RE.findall(cleaned)
    return float(found[-1].replace(",", "")) if found else None


def numeric_match(prompt: Any, candidate: str, gold: Any, tolerance: float = 1e-6) -> bool:
    """The candidate's final number equals the gold's within `tolerance` (s3ft's GSM8K judge): "The answer is
    1,234." matches "#### 1234"; "12.5" matches "12.50"; no number in either side is a mismatch."""
    c, g = final_number(candidate), final_number(gold)
    return c is not None and g is not None and abs(c - g) <= tolerance


# ---- python unit tests (sandboxed) ---------------------------------------------------------------------------------

_FENCE_RE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The program in a completion: the fenced code blocks joined (```python ... ```), else the whole text."""
    blocks = _FENCE_RE.findall(_text(text))
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else _text(text)


def _tests(gold: Any) -> list[str]:
    if isinstance(gold, str):
        return [line for line in gold.splitlines() if line.strip()]
    return [str(t) for t in (gold or [])]


class PythonUnittest:
    """The code in the candidate passes every test statement of `gold` (MBPP-style `assert f(x) == y` strings).

    The code runs only through `trl_ext.rewards.sandbox.run_tests` (a jailed subprocess per batch, a fresh child per
    program, `per_item_timeout` seconds of wall time each, no network), never in this process. A candidate with no
    tests to run fails (nothing verified it). Where the sandbox cannot be set up the sandbox's
    `SandboxUnavailableError` is raised rather than a verdict guessed.
    """

    def __init__(self, per_item_timeout: float = 2.0, limits: Any = None):
        self.per_item_timeout = per_item_timeout
        self.limits = limits
        self.__name__ = "python_unittest"

    def __call__(self, prompt: Any, candidate: str, gold: Any) -> bool:
        return self.batch([prompt], [candidate], [gold])[0]

    def batch(self, prompts: Sequence[Any], candidates: Sequence[str], golds: Sequence[Any]) -> list[bool]:
        from trl_ext.rewards.sandbox import run_tests

        items = [(extract_code(c), _tests(g)) for c, g in zip(candidates, golds, strict=True)]
        runnable = [i for i, (_, tests) in enumerate(items) if tests]
        verdicts = [False] * len(items)
        outcomes = run_tests([items[i] for i in runnable], per_item_timeout=self.per_item_timeout, limits=self.limits)
        for i, outcome in zip(runnable, outcomes, strict=True):
            verdicts[i] = outcome.all_passed
        return verdicts


python_unittest = PythonUnittest()


# ---- a model judge -------------------------------------------------------------------------------------------------

EQUIVALENCE_TEMPLATE = (
    "Decide whether two answers to the same question say the same thing.\n\n"
    "Question:\n{question}\n\nReference answer:\n{gold}\n\nCandidate answer:\n{candidate}\n\n"
    "Is the candidate answer semantically equivalent to the reference answer (same facts, same final answer)? "
    "Reply with one word: yes or no."
)


class LLMEquivalence:
    """A model judge: asks whether the candidate is semantically equivalent to the gold answer and reads "yes"/"no"
    from the reply's first word.

    Give either `model` and `tokenizer` (a causal LM: prompts go through its chat template, greedy, batched by
    `batch_size`, `max_new_tokens` tokens) or `generate_fn(list of prompt texts) -> list of replies` (any judge you
    can call: another process, an API client). `template` has the fields {question}, {gold} and {candidate}.
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        generate_fn: Callable[[list[str]], Sequence[str]] | None = None,
        template: str = EQUIVALENCE_TEMPLATE,
        batch_size: int = 8,
        max_new_tokens: int = 4,
    ):
        if generate_fn is None and (model is None or tokenizer is None):
            raise ValueError("llm_equivalence needs a judge: `model` and `tokenizer`, or `generate_fn`.")
        self.model, self.tokenizer, self.generate_fn = model, tokenizer, generate_fn
        self.template, self.batch_size, self.max_new_tokens = template, batch_size, max_new_tokens
        self.__name__ = "llm_equivalence"

    def __call__(self, prompt: Any, candidate: str, gold: Any) -> bool:
        return self.batch([prompt], [candidate], [gold])[0]

    def judge_prompts(self, prompts: Sequence[Any], candidates: Sequence[str], golds: Sequence[Any]) -> list[str]:
        return [
            self.template.format(question=_question(p), gold=_text(g), candidate=_text(c))
            for p, c, g in zip(prompts, candidates, golds, strict=True)
        ]

    def batch(self, prompts: Sequence[Any], candidates: Sequence[str], golds: Sequence[Any]) -> list[bool]:
        texts = self.judge_prompts(prompts, candidates, golds)
        if self.generate_fn is not None:
            replies = list(self.generate_fn(texts))
        else:
            from trl_ext.inference.generation import generate

            messages = [[{"role": "user", "content": t}] for t in texts]
            replies = generate(self.model, self.tokenizer, messages, self.max_new_tokens, self.batch_size, False)
        if len(replies) != len(texts):
            raise ValueError(f"llm_equivalence: {len(replies)} replies for {len(texts)} questions.")
        return [is_yes(r) for r in replies]


def is_yes(reply: str) -> bool:
    """A judge reply's first word is "yes" (any case, punctuation around it ignored)."""
    words = str(reply).strip().lower().translate(_PUNCT).split()
    return bool(words) and words[0] == "yes"


def _question(prompt: Any) -> str:
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return _text(prompt)


# ---- names ---------------------------------------------------------------------------------------------------------

# name -> the judge, or a factory taking the judge's options.
JUDGES: dict[str, Callable[..., Any]] = {
    "exact_match": exact_match,
    "contains": contains,
    "numeric_match": numeric_match,
    "python_unittest": PythonUnittest,
    "llm_equivalence": LLMEquivalence,
}
_FACTORIES = {"python_unittest", "llm_equivalence"}


class JudgeError(ValueError):
    pass


def resolve_judge(spec: str | Callable[..., bool], **options: Any) -> Callable[..., bool]:
    """A judge from a built-in name (see `JUDGES`), an import path "package.module:function" (a class there is
    called with `options` to build the judge), or a callable (returned as it is)."""
    if callable(spec) and not isinstance(spec, type):
        if options:
            raise JudgeError(f"Options {sorted(options)} given with a judge callable; build the callable with them.")
        return spec
    from trl_ext.plugin.lazy import import_object, is_import_path

    if isinstance(spec, type) or spec in _FACTORIES:
        factory = spec if isinstance(spec, type) else JUDGES[spec]
        return factory(**options)
    if isinstance(spec, str) and spec in JUDGES:
        if options:
            raise JudgeError(f"Judge {spec!r} takes no options; got {sorted(options)}.")
        return JUDGES[spec]
    if is_import_path(spec):
        try:
            obj = import_object(spec)
        except (ImportError, AttributeError) as err:
            raise JudgeError(f"Judge {spec!r} could not be imported: {err}") from err
        return resolve_judge(obj, **options)
    close = difflib.get_close_matches(str(spec), JUDGES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise JudgeError(
        f"Unknown judge {spec!r}.{hint} Built-ins: {', '.join(JUDGES)}; or an import path 'package.module:function' "
        "to a callable (prompt, candidate, gold) -> bool."
    )


def judge_name(judge: Any) -> str:
    """A stable name for records and cache keys: the built-in name, else module:qualname of the callable."""
    name = getattr(judge, "__name__", None)
    if isinstance(name, str) and name in JUDGES:
        return name
    target = judge if hasattr(judge, "__qualname__") else type(judge)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"
