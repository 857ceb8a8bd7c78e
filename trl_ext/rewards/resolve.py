"""One namespace for reward names, so `--rewards`, `--reward_funcs` and `--reward_model_name_or_path` read them as
`trl grpo` does and beyond. A name is, first match wins: a trl-ext registered reward, one of TRL's built-in rewards,
a reward model (a Hub id `org/name` or a local folder, loaded by GRPOTrainer as a sequence classifier), or a dotted
path `module.function` importable from the current directory or `sys.path`. Each resolves to a `Reward` record
(built on the fly, without a paper, for the last three), so the runner, the column checks and the model card treat
them alike. A name that resolves to none is refused before any model loads, saying what each kind would need.

Written against TRL 1.16 (`trl/scripts/grpo.py`'s reward registry and `trl.rewards`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trl_ext.plugin.records import Reward
from trl_ext.plugin.registry import ComponentError, UnknownComponentError, registry
from trl_ext.rewards.toolkit import TRAINER_KWARGS

# `plugin` of the records built here: they come from no trl-ext plugin, and the model card lists them under it.
TRL_PLUGIN = "trl"
USER_PLUGIN = "user"

# What GRPOTrainer passes every reward function by name besides the dataset columns.
_GENERATION_KWARGS = frozenset({"prompts", "completions", "completion_ids"}) | TRAINER_KWARGS


class RewardNameError(ComponentError):
    """A reward name that resolves to nothing usable (or to something that cannot run), found before the model
    loads."""


@dataclass(frozen=True)
class TrlReward:
    """One of TRL's built-in rewards, importable from `trl.rewards`.

    Args:
        defaults: for a factory (`get_...`), the options it is called with (`trl grpo`'s values), each overridable
            as `NAME:key=value`; None for a reward function used as it is.
        columns: the dataset columns it reads.
        needs: (import name, pip name) of a package it needs at call time, checked before the model loads.
    """

    defaults: dict[str, Any] | None = None
    columns: tuple[str, ...] = ()
    needs: tuple[str, str] | None = None
    description: str = ""


_MATH_VERIFY = ("math_verify", "math-verify")

# `trl grpo --reward_funcs` accepts the first four (get_soft_overlong_punishment with these values); TRL's other
# factory with defaults for every option is added.
TRL_REWARDS: dict[str, TrlReward] = {
    "accuracy_reward": TrlReward(
        columns=("solution",),
        needs=_MATH_VERIFY,
        description="1 if the completion's answer verifies against the `solution` column (math_verify), else 0",
    ),
    "reasoning_accuracy_reward": TrlReward(
        columns=("solution",),
        needs=_MATH_VERIFY,
        description="accuracy_reward on the text after the reasoning block",
    ),
    "think_format_reward": TrlReward(description="1 if the completion opens with one <think>...</think> block"),
    "get_soft_overlong_punishment": TrlReward(
        defaults={"max_completion_len": 1280, "soft_punish_cache": 256},
        description="DAPO's soft overlong punishment (Eq. 13)",
    ),
    "get_repetition_penalty_reward": TrlReward(
        defaults={"ngram_size": 3, "max_penalty": -1.0},
        description="penalty proportional to the fraction of repeated n-grams",
    ),
}


def resolve_reward(name: str, options: dict[str, Any] | None = None) -> Reward:
    """The reward record `name` stands for. `options` (from `NAME:key=value`) decide one thing here: a dotted path
    given options names a factory, called with them; without, the function itself is the reward, as in TRL."""
    options = options or {}
    try:
        return registry().get("reward", name)
    except UnknownComponentError:
        pass
    if name in TRL_REWARDS:
        return trl_reward(name)
    if "/" in name or os.sep in name or Path(name).expanduser().is_dir():
        return reward_model(name)
    if "." in name:
        return _dotted_path_reward(name, bool(options))
    raise RewardNameError(_none_of_the_kinds(name, "the name has no dot, so it is no dotted path module.function"))


def build_reward(name: str, options: dict[str, Any] | None = None) -> Callable[..., list[float | None]]:
    """The reward function a reward name stands for, ready to call as `(prompts, completions, **columns)`: what
    `resolve_reward` finds, built with `options`; a reward model (which GRPOTrainer would load itself) is loaded
    frozen through `trl_ext.models.load_reward_model` and scored on text. For scoring outside a trainer."""
    built = resolve_reward(name, options).build(**(options or {}))
    if isinstance(built, str):
        from trl_ext.models import load_reward_model
        from trl_ext.rewards.model import RewardModelScorer

        model, tokenizer = load_reward_model(built)
        return RewardModelScorer(model, tokenizer, name=built)
    return built


def trl_reward(name: str) -> Reward:
    spec = TRL_REWARDS[name]
    if spec.needs is not None and importlib.util.find_spec(spec.needs[0]) is None:
        raise RewardNameError(
            f"TRL's reward {name!r} needs the package {spec.needs[0]!r}, which is not installed: "
            f"pip install {spec.needs[1]}"
        )
    function = getattr(importlib.import_module("trl.rewards"), name)
    if spec.defaults is not None:
        factory: Callable[..., Any] = functools.partial(function, **spec.defaults)
    else:
        factory = _as_is(function)
    return Reward(
        name=name,
        description=f"TRL's {name}: {spec.description}",
        factory=factory,
        required_columns=spec.columns,
        plugin=TRL_PLUGIN,
    )


def reward_model(name_or_path: str) -> Reward:
    """A reward model, passed to GRPOTrainer as its id (the trainer loads it). A name that can only be a local path
    must be a folder with a config.json; a Hub id is left to the trainer (it downloads only what the user named)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    local = Path(name_or_path).expanduser()
    if not local.is_dir():
        try:
            validate_repo_id(name_or_path)
        except HFValidationError:
            problem = "is a file, not a folder" if local.exists() else "does not exist"
            raise RewardNameError(
                f"Reward model folder {name_or_path!r} {problem} ({local.absolute()}). Give a folder holding a "
                "sequence-classification model saved with save_pretrained, or a Hub id (org/name)."
            ) from None
        where = "a Hub id"
    elif not (local / "config.json").is_file():
        raise RewardNameError(
            f"Reward model folder {name_or_path!r} has no config.json ({local.absolute()}): save the model there "
            "with save_pretrained."
        )
    else:
        where = "a local folder"
    return Reward(
        name=name_or_path,
        description=f"reward model ({where}), scored as a sequence classifier with one label",
        factory=_as_is(name_or_path),
        plugin=USER_PLUGIN,
    )


def _dotted_path_reward(name: str, is_factory: bool) -> Reward:
    module_path, _, attribute = name.rpartition(".")
    cwd = os.getcwd()
    if cwd not in sys.path:  # as `trl grpo` does: a module next to where the command runs is importable
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if exc.name and (module_path == exc.name or module_path.startswith(exc.name + ".")):
            reason = f"module {exc.name!r} not found in the current directory ({cwd}) or on sys.path"
            raise RewardNameError(_none_of_the_kinds(name, reason)) from None
        raise RewardNameError(f"Reward {name!r}: importing module {module_path!r} failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing: name it, not a traceback
        raise RewardNameError(
            f"Reward {name!r}: importing module {module_path!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attribute):
        defined = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_") and _defined_in(v, module)
        )
        reason = (
            f"attribute {attribute!r} not found in module {module_path!r} ({getattr(module, '__file__', '?')}); "
            f"it defines: {', '.join(defined) or 'no functions'}"
        )
        raise RewardNameError(_none_of_the_kinds(name, reason))
    function = getattr(module, attribute)
    if not callable(function):
        raise RewardNameError(
            f"Reward {name!r} is a {type(function).__name__}, not a function: a reward takes "
            "(prompts, completions, **columns) and returns one float (or None) per completion."
        )
    return Reward(
        name=name,
        description=f"{'built by ' if is_factory else ''}{name} from {getattr(module, '__file__', module_path)}",
        factory=function if is_factory else _as_is(function),
        required_columns=() if is_factory else columns_read(function),
        plugin=USER_PLUGIN,
    )


def columns_read(function: Callable[..., Any]) -> tuple[str, ...]:
    """The dataset columns a reward function names as required parameters (GRPOTrainer passes every column by name),
    so a missing one is refused before the model loads."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and p.name not in _GENERATION_KWARGS
    )


def _as_is(value: Any) -> Callable[[], Any]:
    """A factory that takes no options and returns `value`: the reward function (or model id) itself."""

    def build() -> Any:
        return value

    return build


def _defined_in(value: Any, module: Any) -> bool:
    return getattr(value, "__module__", None) == module.__name__


def _none_of_the_kinds(name: str, dotted_reason: str) -> str:
    registered = sorted(r.name for r in registry().components("reward"))
    close = difflib.get_close_matches(name, [*registered, *TRL_REWARDS], n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (
        f"Unknown reward {name!r}.{hint} A reward name is one of:\n"
        f"  - a trl-ext registered reward: {', '.join(registered) or 'none installed'} (see `trl-ext list`);\n"
        f"  - a TRL built-in reward: {', '.join(TRL_REWARDS)};\n"
        f"  - a dotted path module.function: {dotted_reason}.\n"
        "A reward model is a Hub id (org/name) or a local folder (also --reward_model_name_or_path)."
    )
