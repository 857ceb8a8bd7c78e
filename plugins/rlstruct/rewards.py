"""RL-Struct's hierarchical JSON reward (arXiv:2512.00319), as pure functions and TRL reward functions.

The paper decomposes "emit JSON that matches a schema" into validity, format, structure and content; it does not give
the per-component formulas, so the definitions here are the paper card's concrete versions (ours):

- R_valid   = 1 if `parse(strip_fences(o))` succeeds and yields a dict, else 0.
- R_format  = 1 if `parse(o.strip())` succeeds on the raw text (no fences, no prose around it), else 0.
- R_struct  = clip(0.5·present + 0.5·typed − penalty·extra, 0, 1), only if valid; nested schemas recurse.
- R_content = task-specific accuracy, only if valid.
- R         = w_v·R_valid + w_f·R_format + w_s·R_struct + w_c·R_content.

A schema is a "JSON-schema-lite" dict `{key: type}` (or that dict as a JSON string). A type is one of "str", "int",
"float", "number" (int or float, not bool), "bool", "list", "dict" (also the JSON-Schema spellings "string",
"integer", "boolean", "array", "object", and the Python types `str`, `int`, ...), or a nested schema dict. A key
written with a trailing "?" (`{"notes?": "str"}`) is optional: allowed, never required, never penalised as extra.

Bounded cost: the reward functions read a completion up to `DEFAULT_MAX_CHARS` (65,536) characters and parse it, the
schema and the gold with the C JSON parser, linear in their length; too deep a nesting (RecursionError) is not
valid JSON. A row whose schema or gold is needed and cannot be used (`usable_schema`, `gold_fields`) scores None,
"not applicable" (ours), and counts in `rlstruct/gold_error_rate`; a completion that is not text scores 0.0.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.rewards import RewardFunction, RewardSetupError, Scored, completion_text
from trl_ext.rewards.similarity import token_f1

from .config import RLStructConfig

TASKS = ("gsm8k_json", "recipe", "generic")
TYPE_NAMES = ("str", "int", "float", "number", "bool", "list", "dict")
_TYPE_ALIASES = {"string": "str", "integer": "int", "boolean": "bool", "array": "list", "object": "dict"}
_PY_TYPES = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "dict"}

# One leading ```json / ``` fence pair around the whole (stripped) completion; anything before or after it is prose.
_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)
# `\d+(?:\.\d*)?`, not `\d+\.?\d*`: the same numbers, but the latter splits a digit run two ways and takes minutes
# (quadratic backtracking) to reject a long digit string that does not end like a number.
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
GOLD_ERROR = "rlstruct/gold_error_rate"


# --- parsing ---------------------------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity/-Infinity by default; they are not JSON (RFC 8259) and not finite numbers.
    raise ValueError(f"non-finite JSON constant {name}")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys silently, so '{"answer": "x", "answer": 42}' would hide the first.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def strip_fences(text: str) -> str:
    """Remove one ```json / ``` fence pair wrapping the whole text, if present; otherwise return the text stripped."""
    text = text.strip()
    match = _FENCE.fullmatch(text)
    return match.group(1).strip() if match else text


def parse(text: str) -> Any:
    """Strict `json.loads`: raises `ValueError` on invalid JSON, NaN/Infinity constants and duplicate keys."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates)


def parse_object(completion: str, allow_fences: bool = True) -> dict[str, Any] | None:
    """The JSON object a completion holds (fences stripped when allowed), or None when it is not one."""
    text = strip_fences(completion) if allow_fences else completion.strip()
    try:
        obj = parse(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# --- schemas ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """A parsed schema: required keys K and optional keys K_opt, each mapped to a type name or a sub-schema."""

    required: dict[str, str | Schema]
    optional: dict[str, str | Schema]


def load_schema(schema: Any, _path: str = "schema") -> Schema:
    """Parse a schema given as a dict or a JSON string (see the module docstring for the type names)."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{_path} is not valid JSON: {exc}: {schema!r}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"{_path} must be a dict {{key: type}} or its JSON string, got {schema!r}")
    required: dict[str, str | Schema] = {}
    optional: dict[str, str | Schema] = {}
    for key, declared in schema.items():
        if declared is None:  # Arrow fills keys missing from a row of a dict column with None: not part of it
            continue
        name, table = (key[:-1], optional) if key.endswith("?") else (key, required)
        table[name] = _type_spec(declared, f"{_path}[{key!r}]")
    return Schema(required, optional)


def usable_schema(schema: Any) -> Schema | None:
    """The row's schema parsed, or None when it cannot be used (not a dict or its JSON, an unknown type, too deep)."""
    try:
        return load_schema(schema)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None


def _type_spec(declared: Any, path: str) -> str | Schema:
    if isinstance(declared, dict):
        return load_schema(declared, path)
    if isinstance(declared, type) and declared in _PY_TYPES:
        return _PY_TYPES[declared]
    if isinstance(declared, str):
        name = _TYPE_ALIASES.get(declared.lower(), declared.lower())
        if name in TYPE_NAMES:
            return name
    raise ValueError(
        f"{path} has unknown type {declared!r}; allowed: {', '.join(TYPE_NAMES)} "
        f"(or {', '.join(_TYPE_ALIASES)}), a Python type of those, or a nested schema dict"
    )


def _is_finite_number(value: Any) -> bool:
    # bool is a subclass of int in Python, but `true` is not a number in JSON.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def type_matches(value: Any, type_name: str) -> bool:
    """Whether a parsed JSON value has the declared type name ("number" accepts int and float, never bool)."""
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, float) and math.isfinite(value)
    if type_name == "number":
        return _is_finite_number(value)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "list":
        return isinstance(value, list)
    if type_name == "dict":
        return isinstance(value, dict)
    raise ValueError(f"unknown type name {type_name!r}; allowed: {', '.join(TYPE_NAMES)}")


def struct_score(obj: dict[str, Any], schema: Any, extra_key_penalty: float = 0.1) -> float:
    """R_struct of a parsed object J: clip(0.5·present + 0.5·typed − penalty·extra, 0, 1).

    present = |K ∩ keys(J)| / |K|; typed = mean over the present required keys of 1/0 for a matching type, or of the
    child's R_struct for a key declared as a sub-schema; extra = |keys(J) − K − K_opt|. With no required keys,
    present = typed = 1; with required keys but none present, typed = 0.
    """
    schema = load_schema(schema)
    K = schema.required
    present_keys = [key for key in K if key in obj]
    if K:
        present = len(present_keys) / len(K)
        credits = [_typed_credit(obj[key], K[key], extra_key_penalty) for key in present_keys]
        typed = sum(credits) / len(credits) if credits else 0.0
    else:
        present = typed = 1.0
    extra = len(set(obj) - set(K) - set(schema.optional))
    return min(1.0, max(0.0, 0.5 * present + 0.5 * typed - extra_key_penalty * extra))


def _typed_credit(value: Any, spec: str | Schema, extra_key_penalty: float) -> float:
    if isinstance(spec, Schema):
        return struct_score(value, spec, extra_key_penalty) if isinstance(value, dict) else 0.0
    return 1.0 if type_matches(value, spec) else 0.0


# --- content ---------------------------------------------------------------------------------------------------------
def load_gold(gold: Any) -> Any:
    """Gold content: a dict, a scalar, or either as a JSON string (a string that is not JSON stays a string)."""
    if isinstance(gold, str):
        try:
            return json.loads(gold)
        except json.JSONDecodeError:
            return gold
    return gold


def gold_fields(gold: Any, task: str = "generic") -> dict[str, Any] | None:
    """The gold content as fields (a scalar as {"answer": scalar}), or None when the row's gold cannot be used: not a
    dict, a non-empty string, a finite number or a bool (nor the JSON of one), or, for gsm8k_json, without a numeric
    `answer`. A dict with no fields is usable (content 1: nothing to get wrong)."""
    try:
        value = load_gold(gold)
    except RecursionError:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if not (isinstance(value, (dict, str, bool)) or _is_finite_number(value)):
        return None
    fields = _as_fields(value)
    if task == "gsm8k_json" and numeric_value(fields.get("answer")) is None:
        return None
    return fields


def numeric_value(value: Any) -> float | None:
    """The number a JSON value states: a finite int/float, or a numeric string such as "1,234" or "$5"; else None."""
    if _is_finite_number(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("$", "").strip()
        if _NUMBER.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def _as_fields(gold: Any) -> dict[str, Any]:
    # A scalar gold is the answer field (GSM8K rows carry just the number).
    return gold if isinstance(gold, dict) else {"answer": gold}


def values_equal(a: Any, b: Any, tol: float = 1e-6) -> bool:
    """Exact equality after normalising: strings stripped and lowercased, numbers within `tol`, containers
    element-wise, bool only equal to bool."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_finite_number(a) and _is_finite_number(b):
        return abs(a - b) <= tol
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(values_equal(a[k], b[k], tol) for k in a)
    return a is None and b is None


def content_score(obj: dict[str, Any], gold: Any, task: str = "generic", numeric_tol: float = 1e-6) -> float:
    """R_content of a parsed object J against the gold content.

    - "gsm8k_json": 1 if the numeric value of J["answer"] equals the gold answer within `numeric_tol`, else 0.
    - "recipe": token F1 between J[field] and the gold field, averaged over the gold's fields.
    - "generic" (ours): mean over the gold's keys of `values_equal(J[key], gold[key])`.
    A scalar gold stands for {"answer": gold}. A gold with no fields scores 1 (nothing to get wrong).
    """
    gold = _as_fields(load_gold(gold))
    if task == "gsm8k_json":
        target = numeric_value(gold.get("answer"))
        if target is None:
            raise ValueError(f"gsm8k_json gold must hold a numeric 'answer', got {gold!r}")
        predicted = numeric_value(obj.get("answer"))
        return float(predicted is not None and abs(predicted - target) <= numeric_tol)
    if task not in ("recipe", "generic"):
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if not gold:
        return 1.0
    if task == "recipe":
        scores = [token_f1(obj[field], ref) if field in obj else 0.0 for field, ref in gold.items()]
    else:
        scores = [float(key in obj and values_equal(obj[key], ref, numeric_tol)) for key, ref in gold.items()]
    return sum(scores) / len(scores)


# --- the four components on a completion string ---------------------------------------------------------------------
def R_valid(completion: str, allow_fences: bool = True) -> float:
    """1 if the completion (one fence pair stripped when allowed) parses to a JSON object, else 0."""
    return float(parse_object(completion, allow_fences) is not None)


def R_format(completion: str) -> float:
    """1 if the raw completion, only whitespace-stripped, parses as JSON (no fences, no prose), else 0."""
    try:
        parse(completion.strip())
    except (ValueError, RecursionError):
        return 0.0
    return 1.0


def R_struct(completion: str, schema: Any, extra_key_penalty: float = 0.1, allow_fences: bool = True) -> float:
    """Structure reward of a completion: `struct_score` of its JSON object, 0 when it is not valid."""
    obj = parse_object(completion, allow_fences)
    return 0.0 if obj is None else struct_score(obj, schema, extra_key_penalty)


def R_content(
    completion: str, gold: Any, task: str = "generic", numeric_tol: float = 1e-6, allow_fences: bool = True
) -> float:
    """Content reward of a completion: `content_score` of its JSON object, 0 (gated) when it is not valid."""
    obj = parse_object(completion, allow_fences)
    return 0.0 if obj is None else content_score(obj, gold, task, numeric_tol)


def score(
    completion: str, schema: Any, gold: Any, task: str = "generic", config: RLStructConfig | None = None
) -> dict[str, float]:
    """All four components and the hierarchical total R for one completion."""
    config = config or RLStructConfig()
    obj = parse_object(completion, config.allow_fences_for_valid)
    parts = {
        "valid": float(obj is not None),
        "format": R_format(completion),
        "struct": 0.0 if obj is None else struct_score(obj, schema, config.extra_key_penalty),
        "content": 0.0 if obj is None else content_score(obj, gold, task, config.numeric_tol),
    }
    parts["total"] = sum(config.weights[key] * parts[key] for key in ("valid", "format", "struct", "content"))
    return parts


def structure_metrics(
    completions: Sequence[Any], schemas: Sequence[Any], extra_key_penalty: float = 0.1, allow_fences: bool = True
) -> dict[str, float]:
    """`rlstruct/valid_rate` (share of valid JSON objects) and `rlstruct/struct_acc` (share with R_struct == 1)."""
    completions = [completion_text(c) or "" for c in completions]  # not text: not valid
    if len(schemas) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(schemas)} schemas")
    if not completions:
        return {"rlstruct/valid_rate": 0.0, "rlstruct/struct_acc": 0.0}
    objs = [parse_object(c, allow_fences) for c in completions]
    structs = [0.0 if o is None else struct_score(o, s, extra_key_penalty) for o, s in zip(objs, schemas, strict=True)]
    n = len(completions)
    return {
        "rlstruct/valid_rate": sum(o is not None for o in objs) / n,
        "rlstruct/struct_acc": sum(s >= 1.0 - 1e-9 for s in structs) / n,
    }


# --- TRL reward functions --------------------------------------------------------------------------------------------
def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not a known task; allowed: {', '.join(TASKS)}")
    return task


def _check_task_column(kwargs: dict[str, Any]) -> None:
    # A bad `task` value is a dataset error, refused for the whole batch rather than scored 0.0 per row; an empty
    # one (None or "") means the reward's own task.
    tasks = kwargs.get("task")
    if tasks is None:
        return
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise RewardSetupError(f"the 'task' column must be a list, got {type(tasks).__name__}")
    for task in tasks:
        if task is not None and not (isinstance(task, str) and (task == "" or task in TASKS)):
            # reprlib: bounded output for a 1 MB string or a value nested 100k deep
            raise RewardSetupError(
                f"unknown task {reprlib.repr(task)} in the 'task' column; allowed: {', '.join(TASKS)}"
            )


def _structure_metrics(valid: bool, struct: float) -> dict[str, float]:
    # Batch means of these are `rlstruct/valid_rate` and `rlstruct/struct_acc`, logged through GRPO's `log_metric`.
    return {"rlstruct/valid_rate": float(valid), "rlstruct/struct_acc": float(struct >= 1.0 - 1e-9)}


# Built on the core's RewardFunction: picklable (TRL's async GRPO sends reward functions to a child process), `name`
# is the name TRL logs the reward's mean under (`rewards/<name>/mean`), options are folded into it by `from_options`.
class JSONValidityReward(RewardFunction):
    """R_valid per completion: 1 if it is a JSON object (one ```json fence pair allowed by default), else 0."""

    name = "json_validity_reward"

    def __init__(self, allow_fences_for_valid: bool = True):
        self.config = RLStructConfig(allow_fences_for_valid=allow_fences_for_valid)

    def score(self, completion: str, **row: Any) -> float:
        return R_valid(completion, self.config.allow_fences_for_valid)


class JSONFormatReward(RewardFunction):
    """R_format per completion: 1 if the raw text is JSON with nothing around it (no fences, no prose), else 0."""

    name = "json_format_reward"

    def score(self, completion: str, **row: Any) -> float:
        return R_format(completion)


class JSONStructureReward(RewardFunction):
    """R_struct per completion against the row's `schema`; logs `rlstruct/valid_rate` and `rlstruct/struct_acc`."""

    name = "json_structure_reward"
    columns = ("schema",)

    def __init__(self, extra_key_penalty: float = 0.1, allow_fences_for_valid: bool = True):
        self.config = RLStructConfig(
            extra_key_penalty=extra_key_penalty, allow_fences_for_valid=allow_fences_for_valid
        )

    def score(self, completion: str, schema: Any = None, **row: Any) -> Scored:
        obj = parse_object(completion, self.config.allow_fences_for_valid)
        loaded = usable_schema(schema)
        if loaded is None:  # no usable schema: not applicable to this row
            return Scored(None, {**_structure_metrics(obj is not None, 0.0), GOLD_ERROR: 1.0})
        struct = 0.0 if obj is None else struct_score(obj, loaded, self.config.extra_key_penalty)
        return Scored(struct, {**_structure_metrics(obj is not None, struct), GOLD_ERROR: 0.0})


class JSONContentReward(RewardFunction):
    """R_content per completion against the row's `gold`, scored by the row's `task` (or `task` given here)."""

    name = "json_content_reward"
    columns = ("gold",)

    def __init__(self, task: str = "generic", numeric_tol: float = 1e-6, allow_fences_for_valid: bool = True):
        self.task = _check_task(task)
        self.config = RLStructConfig(numeric_tol=numeric_tol, allow_fences_for_valid=allow_fences_for_valid)

    def __call__(self, prompts: Any = None, completions: Any = (), **kwargs: Any) -> list[float | None]:
        _check_task_column(kwargs)
        return super().__call__(prompts, completions, **kwargs)

    def score(self, completion: str, gold: Any = None, task: str | None = None, **row: Any) -> Scored:
        task = task or self.task
        fields = gold_fields(gold, task)
        if fields is None:  # no usable gold: not applicable to this row
            return Scored(None, {GOLD_ERROR: 1.0})
        content = R_content(completion, fields, task, self.config.numeric_tol, self.config.allow_fences_for_valid)
        return Scored(content, {GOLD_ERROR: 0.0})


class RLStructReward(RewardFunction):
    """The hierarchical total R = w_v·R_valid + w_f·R_format + w_s·R_struct + w_c·R_content in one reward function.

    Options are `RLStructConfig`'s fields (or `config=RLStructConfig(...)`) and `task`, used for rows without a
    `task` column."""

    name = "rlstruct_reward"
    columns = ("schema", "gold")

    def __init__(self, config: RLStructConfig | None = None, task: str = "generic", **config_fields: Any):
        if config is not None and config_fields:
            raise ValueError(f"pass either config or its fields ({', '.join(config_fields)}), not both")
        self.config = config if config is not None else RLStructConfig(**config_fields)
        self.task = _check_task(task)

    def __call__(self, prompts: Any = None, completions: Any = (), **kwargs: Any) -> list[float | None]:
        _check_task_column(kwargs)
        return super().__call__(prompts, completions, **kwargs)

    def score(
        self, completion: str, schema: Any = None, gold: Any = None, task: str | None = None, **row: Any
    ) -> Scored:
        task = task or self.task
        loaded, fields = usable_schema(schema), gold_fields(gold, task)
        if loaded is None or fields is None:  # no usable schema or gold: not applicable to this row
            valid = parse_object(completion, self.config.allow_fences_for_valid) is not None
            return Scored(None, {**_structure_metrics(valid, 0.0), GOLD_ERROR: 1.0})
        parts = score(completion, loaded, fields, task, self.config)  # the module's `score`, all parts
        return Scored(parts["total"], {**_structure_metrics(parts["valid"] == 1.0, parts["struct"]), GOLD_ERROR: 0.0})


# Ready-made reward functions with the defaults, importable directly (TRL style):
# `GRPOTrainer(reward_funcs=[json_validity_reward, json_structure_reward], ...)`.
json_validity_reward = JSONValidityReward()
json_format_reward = JSONFormatReward()
json_structure_reward = JSONStructureReward()
json_content_reward = JSONContentReward()
rlstruct_reward = RLStructReward()
