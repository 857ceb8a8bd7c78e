"""Records of what a plugin contributes: methods, rewards, transforms, callbacks, adapters, datasets, logits
processors and recipes.

Every record carries its paper so that `trl-ext info`, the docs and the model card can cite it, and the name of the
plugin that registered it (filled in by the registry). A record's heavy parts (a method's trainer and config, a
component's factory) may be given as import paths, "package.module:Name", imported when first read (see `lazy`), so
that registering a plugin imports no torch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from trl_ext.plugin.lazy import LazyImport

KINDS = ("method", "reward", "transform", "callback", "adapter", "dataset", "logits_processor", "recipe")


class Family(str, Enum):
    """The family of papers a component belongs to (the README's methods table is grouped by it)."""

    TRL = "trl"
    SFT_LOSS = "sft-loss"
    GRPO_REWARD = "grpo-reward"
    RL_DEMONSTRATION = "rl-demonstration"
    DISTILLATION = "distillation"
    DATA = "data"
    PARAMETER_EFFICIENT = "parameter-efficient"
    RECIPE = "recipe"
    BUILTIN = "builtin"

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        return _FAMILY_DESCRIPTIONS[self]


_FAMILY_DESCRIPTIONS = {
    Family.TRL: "TRL's own trainers, registered by the core",
    Family.SFT_LOSS: "new SFT objectives on the fused LM head",
    Family.GRPO_REWARD: "rewards and reward-shaped methods for GRPO/RLOO",
    Family.RL_DEMONSTRATION: "RL trainers that learn from demonstrations and teachers",
    Family.DISTILLATION: "a teacher (EMA, frozen or external) shapes the target",
    Family.DATA: "dataset selection, filtering and rewriting",
    Family.PARAMETER_EFFICIENT: "adapters and parameter-level updates",
    Family.RECIPE: "recipes, evaluation and decoding",
    Family.BUILTIN: "the core's datasets",
}


def as_family(value: Family | str | None, who: str) -> Family | None:
    """`value` as a Family; a clear error naming the component and the allowed values otherwise."""
    if value is None or value == "" or isinstance(value, Family):
        return value or None
    try:
        return Family(value)
    except ValueError:
        allowed = ", ".join(f.value for f in Family)
        raise ValueError(f"{who}: unknown family {value!r}; one of: {allowed}") from None


@dataclass(frozen=True)
class Paper:
    """The paper a component implements."""

    title: str
    arxiv: str | None = None
    citation: str | None = None  # BibTeX

    @property
    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "arxiv": self.arxiv, "url": self.url, "citation": self.citation}


def _is_class(obj: Any) -> bool:
    return isinstance(obj, type)


@dataclass
class Component:
    """Fields shared by every record. `plugin` is set by the registry, not by the plugin."""

    name: str
    description: str = ""
    paper: Paper | None = None
    family: Family | None = None
    plugin: str = ""
    # Dataset columns read when present (column -> what it changes), shown by `trl-ext info`; a missing one is no error.
    optional_columns: dict[str, str] = field(default_factory=dict)
    kind: str = field(default="", init=False)

    def _validate(self, kind: str) -> None:
        """Check the shared fields at registration, so a malformed record fails its plugin's load (with the plugin
        named) instead of crashing `trl-ext list` later."""
        self.kind = kind
        if not isinstance(self.name, str) or not self.name.strip():
            raise TypeError(f"{kind} name must be a non-empty str, got {self.name!r}")
        if self.paper is not None and not isinstance(self.paper, Paper):
            raise TypeError(
                f"{kind} {self.name!r}: paper must be a trl_ext.Paper or None, got {type(self.paper).__name__}"
            )
        self.family = as_family(self.family, f"{kind} {self.name!r}")
        if not isinstance(self.optional_columns, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.optional_columns.items()
        ):
            raise TypeError(f"{kind} {self.name!r}: optional_columns must map column names to descriptions (str)")
        self._check_lazy()

    def import_paths(self) -> dict[str, str]:
        """Each lazily imported attribute given as an import path -> that path (nothing is imported)."""
        return dict(self.__dict__.get("_given_paths", {}))

    def _check_lazy(self) -> None:
        """Each lazily imported attribute must be None, an object of its kind or an import path (kept unimported)."""
        paths = {}
        for name, descriptor in _lazy_fields(type(self)).items():
            path = descriptor.check(self)
            if path is not None:
                paths[name] = path
        self.__dict__["_given_paths"] = paths

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family.value if self.family else None,
            "plugin": self.plugin,
            "description": self.description,
            "paper": self.paper.as_dict() if self.paper else None,
        }


@dataclass
class Method(Component):
    """A trainer and its config, runnable as `trl-ext train NAME`.

    `trainer` and `config` are classes or import paths ("trl_ext_plugins.asft.trainer:ASFTTrainer"), imported when
    first read. `base` names the TRL trainer family the method builds on ("sft", "grpo" or "dpo"): it picks the
    built-in dataset form, the flags users expect and the TRL trainer `trl-ext bench` compares against.
    `required_columns` maps a config to the dataset columns the method needs beyond its base's usual ones (checked
    before training).
    """

    trainer: type | str | None = LazyImport(_is_class, "a class")
    config: type | str | None = LazyImport(_is_class, "a class")
    base: str = "sft"
    default_dataset: str = "builtin:arith"
    required_columns: Callable[[Any], Sequence[str]] | Sequence[str] = ()
    example: str = ""
    # The method's intrinsic cost over its base trainer, in extra no-grad forward passes, for a config and the model
    # it trains (some costs scale with the architecture); `trl-ext bench` holds the measured step time to
    # (base step + this many forwards) x 1.1. A callable may be given as an import path. For a non-SFT base
    # (GRPO, RLOO, DPO, distillation, ...) one forward is a no-grad forward over one reference step's batch, prompt +
    # completion (see `trl_ext.cli.bench_rl`): a teacher's forward on the rollouts is 1.
    extra_forwards: Callable[[Any, Any], float] | float | str = LazyImport(
        lambda obj: callable(obj) or isinstance(obj, (int, float)), "a number, a callable", default=0.0
    )
    # The trainer builds a reward of its own from its config (srppo's self-reward): a rewards-taking base then runs
    # without --rewards, rewards given are added after it, and --reward_weights counts it first.
    builds_rewards: bool = False
    # A method whose output folder is not a model `from_pretrained` loads (a wrapper around a frozen base, saved as
    # its own files): `output_marker` names a file only its folders hold, and `load_output(folder, **kwargs)` loads
    # one, so that `trl_ext.models.load_trained` (compare, evaluate, generate) reads it like any run's output.
    output_marker: str = ""
    load_output: Callable[..., Any] | str | None = LazyImport(callable, "callable")

    def __post_init__(self) -> None:
        self._validate("method")
        if bool(self.output_marker) != ("load_output" in self.import_paths() or self.load_output is not None):
            raise TypeError(f"method {self.name!r}: give output_marker and load_output together")

    def forwards_for(self, config: Any, model: Any) -> float:
        cost = self.extra_forwards
        return float(cost(config, model) if callable(cost) else cost)

    def columns_for(self, config: Any) -> list[str]:
        cols = self.required_columns
        return list(cols(config) if callable(cols) else cols)


@dataclass
class _Built(Component):
    """A component whose `build(**options)` returns the ready object. `factory` is a callable or an import path to one
    ("trl_ext_plugins.grape.select:make_grape_transform"), imported when first read."""

    factory: Callable[..., Any] | str | None = LazyImport(callable, "callable")
    options: dict[str, str] = field(default_factory=dict)  # option name -> help, shown by `trl-ext info`
    example: str = ""  # a command `trl-ext info` shows; default: a generic line for the kind

    def build(self, **options: Any) -> Any:
        if self.factory is None:
            raise TypeError(f"{self.kind} {self.name!r} has no factory")
        return self.factory(**options)


@dataclass
class Reward(_Built):
    """A GRPO reward function: `build()` returns a callable with TRL's reward-function signature
    `(prompts, completions, **columns) -> list[float | None]`. `required_columns` are dataset columns it reads."""

    required_columns: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._validate("reward")


@dataclass
class Transform(_Built):
    """A dataset -> dataset step. `build(**options)` returns `fn(dataset) -> dataset`.

    When `needs_model` is true the runner passes the loaded `model` and `tokenizer` as options (GRAPE scores with the
    model about to be trained)."""

    needs_model: bool = False
    # The input columns, or a function of the options giving them (GRAPE's depend on its `input_format`).
    required_columns: Callable[[dict[str, Any]], Sequence[str]] | Sequence[str] = ()

    def __post_init__(self) -> None:
        self._validate("transform")

    def columns_for(self, options: dict[str, Any] | None = None) -> list[str]:
        cols = self.required_columns
        return list(cols(dict(options or {})) if callable(cols) else cols)


@dataclass
class Callback(_Built):
    """A `transformers.TrainerCallback` factory."""

    def __post_init__(self) -> None:
        self._validate("callback")


@dataclass
class Adapter(_Built):
    """A model transform: `build(**options)` returns `fn(model) -> model`, applied before the trainer is built."""

    def __post_init__(self) -> None:
        self._validate("adapter")


@dataclass
class Dataset(_Built):
    """A dataset available as `builtin:NAME`. `build(form=..., seed=...)` returns a `datasets.DatasetDict` with
    "train" and "test" splits. `forms` are the shapes it comes in (e.g. "sft", "grpo"); the first is the default."""

    forms: Sequence[str] = ("sft",)
    columns: dict[str, Sequence[str]] = field(default_factory=dict)  # form -> columns

    def __post_init__(self) -> None:
        self._validate("dataset")


@dataclass
class LogitsProcessor(_Built):
    """A decoding intervention: `build(tokenizer=..., **options)` returns a fresh `transformers.LogitsProcessor` (one
    per `generate` call, as processors may keep per-row state). Used by `trl-ext generate --logits_processors NAME`
    and evaluation code; not by GRPO rollouts, whose `generation_kwargs` become a `GenerationConfig`, which refuses a
    `logits_processor`.

    When `needs_model` is true, `trl-ext generate` also passes the loaded `model` (the one whose `generate` runs the
    processor): a processor that scores with it (tq_star's implicit DPO reward) needs no second copy."""

    needs_model: bool = False

    def __post_init__(self) -> None:
        self._validate("logits_processor")


@dataclass
class Recipe(Component):
    """A multi-stage run, as data: what a `trl-ext train --config` YAML file holds (top-level keys apply to every
    stage, `stages:` lists the stages, each naming its `method`), runnable as `trl-ext train NAME`.

    `source` is the mapping itself or a YAML file shipped inside the plugin's package, as "package:path/in/it.yaml"
    (read on use, so registering reads no file); `examples/recipes/` may link to the same file for `--config`.
    `example` defaults to `trl-ext train NAME` where shown."""

    family: Family | None = Family.RECIPE
    source: dict[str, Any] | str = field(default_factory=dict)
    example: str = ""

    def __post_init__(self) -> None:
        self._validate("recipe")
        if isinstance(self.source, str) and ":" not in self.source:
            raise TypeError(
                f"recipe {self.name!r}: source must be a mapping or 'package:path.yaml', got {self.source!r}"
            )

    def load(self) -> Any:
        """The recipe's mapping (a fresh copy: a run may change it). Checked by `trl_ext.run.recipe.checked_recipe`."""
        if not isinstance(self.source, str):
            return copy.deepcopy(self.source)
        import importlib.resources

        import yaml

        package, _, path = self.source.partition(":")
        return yaml.safe_load(importlib.resources.files(package).joinpath(path).read_text())


def _lazy_fields(cls: type) -> dict[str, LazyImport]:
    return {
        name: attr
        for klass in reversed(cls.__mro__)
        for name, attr in vars(klass).items()
        if isinstance(attr, LazyImport)
    }


RECORD_TYPES: dict[str, type[Component]] = {
    "method": Method,
    "reward": Reward,
    "transform": Transform,
    "callback": Callback,
    "adapter": Adapter,
    "dataset": Dataset,
    "logits_processor": LogitsProcessor,
    "recipe": Recipe,
}
