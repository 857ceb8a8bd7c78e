"""Command-line flags and recipe values -> one `Stage`: parsed once, the method and every component looked up once,
the offline defaults applied once. The CLI builds stages; the runner trains them; nothing in between re-parses or
mutates the parsed arguments."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from trl_ext.models import check_model_path
from trl_ext.plugin.records import Component, Method
from trl_ext.plugin.registry import get, registry
from trl_ext.rewards.resolve import TRL_REWARDS, resolve_reward, reward_model
from trl_ext.run.bases import TrainingBase, training_base
from trl_ext.run.checks import (
    check_model_flags,
    check_options,
    check_output_dir,
    check_test_split_size,
    check_training_flags,
)
from trl_ext.run.progress import recorded_state, stage_settings
from trl_ext.run.recipe import SKIP_IF_EMPTY, RecipeError
from trl_ext.run.specs import parse_spec_list
from trl_ext.training.checkpoints import latest_complete, resolve_resume

DEFAULT_MODEL = "smollm2-135m"


@dataclass
class ExtArguments:
    """trl-ext's own flags, next to TRL's ScriptArguments, the method's config and ModelConfig."""

    transforms: str | None = field(
        default=None,
        metadata={
            "help": "Registered transforms to apply to the dataset before training, in order: "
            "NAME[:key=value...][,NAME...]"
        },
    )
    rewards: str | None = field(
        default=None,
        metadata={
            "help": "Reward functions for GRPO-based methods: NAME[:key=value...][,NAME...], each a trl-ext "
            "registered reward, a TRL built-in (accuracy_reward, ...), a dotted path module.function or a reward "
            "model (Hub id or folder). Weights: --reward_weights, counting --reward_model_name_or_path, then "
            "--rewards, then --reward_funcs."
        },
    )
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "As `trl grpo`: reward functions, space-separated: TRL's accuracy_reward, "
            "reasoning_accuracy_reward, think_format_reward, get_soft_overlong_punishment, any dotted import path "
            "(my_module.my_reward, importable from the current directory), and the names --rewards takes."
        },
    )
    reward_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "As `trl grpo`: a reward model (Hub id or local folder saved with save_pretrained), scored as a "
            "sequence classifier; the first reward."
        },
    )
    callbacks: str | None = field(
        default=None, metadata={"help": "Registered callbacks: NAME[:key=value...][,NAME...]"}
    )
    adapter: str | None = field(
        default=None, metadata={"help": "A registered adapter applied to the model: NAME[:key=value...]"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train even if --output_dir already holds a trained model (it is replaced)."},
    )
    resume_with_fresh_optimizer: bool = field(
        default=False,
        metadata={
            "help": "Resume from a checkpoint that lacks optimizer.pt or scheduler.pt (e.g. saved with "
            "--save_only_model), starting the optimizer and schedule anew; the losses then differ from an unbroken "
            "run. Without it such a checkpoint is refused."
        },
    )


Step = tuple[Component, dict[str, Any]]


@dataclass
class Stage:
    """One training run, as parsed: what the runner trains and the model card reads."""

    method: Method
    base: TrainingBase
    script_args: Any  # trl.ScriptArguments
    config: Any  # the method's TRL config (a TrainingArguments)
    model_args: Any  # trl.ModelConfig
    transforms: list[Step]
    rewards: list[Step]
    callbacks: list[Step]
    adapters: list[Step]
    asked: dict[str, Any]  # the recipe's keys and the flags given: the recipe recorded in the model card
    plugin_versions: dict[str, str]  # of the plugins this stage uses, for the model card
    model_given: bool = True  # False: a later stage of a recipe trains the previous stage's output
    # Of a multi-stage recipe (trl_ext.run.progress): the settings its record matches on, and whether an earlier run
    # of the same command finished it (then it is kept, unless a stage before it trains again).
    settings: dict[str, Any] | None = None
    finished_earlier: bool = False
    skipped_earlier: bool = False  # of the kept stages: one an earlier run skipped (its input model passes on)
    # A recipe's `skip_if_empty: true`: a training split left empty (a budget that gave this stage nothing) skips
    # the stage instead of failing the run.
    skip_if_empty: bool = False
    dataset_args: Any = None  # trl.DatasetMixtureConfig: a `datasets:` mixture, `test_split_size`

    @property
    def components(self) -> list[Component]:
        return [record for record, _ in self.transforms + self.rewards + self.callbacks + self.adapters]

    def after(self, previous_output: str) -> Stage:
        """This stage continuing from a previous stage's output, unless it named its own model."""
        if not self.model_given:
            self.model_args.model_name_or_path = previous_output
            self.asked = {**self.asked, "model_name_or_path": previous_output}
        return self


def build_parser(method: Method):
    import torch
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, TrlParser

    # The same dataclasses `trl sft` / `trl grpo` parse (DatasetMixtureConfig: a YAML `datasets:` mixture and
    # `test_split_size`), plus trl-ext's own flags.
    parser = TrlParser(
        (ScriptArguments, method.config, ModelConfig, ExtArguments, DatasetMixtureConfig),
        prog=f"trl-ext train {method.name}",
    )
    if not torch.cuda.is_available():
        # TRL defaults to bf16, which transformers refuses without an accelerator; use_cpu makes torchrun on CPU
        # processes form a real (gloo) process group instead of each training alone.
        parser.set_defaults(bf16=False, use_cpu=True)
    parser.set_defaults(output_dir=f"outputs/{method.name}", **training_base(method.base).cli_defaults)
    _tailor_component_help(parser, training_base(method.base))
    return parser


_LONE_PERCENT = re.compile(r"%[%(]?")  # "%%" and "%(name)s" are argparse's own; any other % is text


def _tailor_component_help(parser: Any, base: TrainingBase) -> None:
    """`--help` offers the reward flags (--rewards and any other `reward*` flag of trl-ext's, such as `trl grpo`'s
    --reward_funcs) only where the base takes rewards (given anyway, they are refused with the reason), and says when
    no installed plugin registers a callback or an adapter. No TRL config of a base without rewards has such a flag."""
    kinds = {"callbacks": "callback", "adapter": "adapter"}
    for action in parser._actions:
        if action.help:  # a plugin config's "(paper: 50%)" would crash argparse's %-formatting of --help
            action.help = _LONE_PERCENT.sub(lambda m: m.group(0) if len(m.group(0)) == 2 else "%%", action.help)
        if action.dest.startswith("reward") and not base.takes_rewards:
            action.help = argparse.SUPPRESS
        elif action.dest in kinds and not registry().components(kinds[action.dest]):
            kind = kinds[action.dest]
            action.help = (
                f"{action.help}. No installed plugin registers any {kind}s yet (`trl-ext list --kind {kind}`)."
            )


def parse_stage(
    method_name: str,
    flags: list[str],
    recipe_values: dict[str, Any] | None = None,
    first: bool = True,
    in_recipe: bool = False,
) -> Stage:
    """Parse one stage; `first` is False for a recipe's later stages (they continue from the previous output).
    `in_recipe`: a stage of a multi-stage recipe, which a rerun keeps when finished and resumes when interrupted."""
    recipe_values = dict(recipe_values or {})
    # A recipe key of the runner's, not a flag of the trainer's (it is in `asked`, so the record and card show it).
    skip_if_empty = recipe_values.pop(SKIP_IF_EMPTY, False)
    if not isinstance(skip_if_empty, bool):
        raise RecipeError(f"`{SKIP_IF_EMPTY}` must be true or false, got {skip_if_empty!r}.")
    method: Method = get("method", method_name)
    base = training_base(method.base)
    parser = build_parser(method)
    # The flags the user gave, against the defaults (recipe values included): read from the parser, never by
    # building a second config, whose `__post_init__` would reset accelerate's state and undo the process group.
    defaults = vars(parser.parse_known_args([])[0])
    if recipe_values:
        remaining = parser.set_defaults_with_config(**recipe_values)
        if remaining:
            unknown = sorted({item[2:] for item in remaining[::2]})
            raise RecipeError(
                f"Unknown key(s) for method {method_name!r} in the recipe: {', '.join(unknown)}. "
                f"See `trl-ext info {method_name}` and `trl-ext train {method_name} --help`."
            )
    given = vars(parser.parse_known_args(flags)[0])
    script_args, config, model_args, ext, dataset_args = parser.parse_args_into_dataclasses(args=flags)
    asked = {k: plain(v) for k, v in recipe_values.items() if plain(v) is not None}
    asked.update({k: plain(v) for k, v in given.items() if v != defaults.get(k) and plain(v) is not None})
    if skip_if_empty:
        asked[SKIP_IF_EMPTY] = True

    model_given = first or "model_name_or_path" in recipe_values or "--model_name_or_path" in flags
    if not model_args.model_name_or_path:  # offline by default: the built-in model and the method's dataset
        model_args.model_name_or_path = DEFAULT_MODEL
    if model_given:  # a missing folder is named now, not after the dataset has loaded
        check_model_path(model_args.model_name_or_path)
    if dataset_args.datasets:  # a mixture names the card's dataset and the error messages' "Dataset ..."
        script_args.dataset_name = mixture_name(dataset_args)
    elif not script_args.dataset_name:
        script_args.dataset_name = method.default_dataset
    check_test_split_size(dataset_args.test_split_size)

    steps = {kind: resolve_steps(kind, spec) for kind, spec in _specs(ext).items()}
    steps["reward"] = _reward_steps(ext)
    _check_rewards(method, base, config, steps["reward"])
    for record, options in steps["reward"]:
        check_options(record, options)
    check_training_flags(config)
    check_model_flags(model_args)
    settings = stage_settings(method.name, asked) if in_recipe else None
    state = recorded_state(config.output_dir, settings) if settings is not None else None
    if state == "started" and not config.resume_from_checkpoint and latest_complete(config.output_dir)[0]:
        config.resume_from_checkpoint = "latest"  # an interrupted stage of this recipe goes on where it stopped
    # `true`/`latest` -> the latest complete checkpoint; an incomplete one is refused here, before the model loads
    config.resume_from_checkpoint = resolve_resume(
        config.resume_from_checkpoint, config.output_dir, ext.resume_with_fresh_optimizer
    )
    if state not in ("finished", "skipped"):
        check_output_dir(config.output_dir, ext.overwrite_output_dir, resuming=bool(config.resume_from_checkpoint))
    used = {method.plugin, *(record.plugin for records in steps.values() for record, _ in records)}
    versions = {name: info.version for name, info in registry().plugins.items() if name in used}
    return Stage(
        method=method,
        base=base,
        script_args=script_args,
        config=config,
        model_args=model_args,
        transforms=steps["transform"],
        rewards=steps["reward"],
        callbacks=steps["callback"],
        adapters=steps["adapter"],
        asked=asked,
        plugin_versions=versions,
        model_given=model_given,
        dataset_args=dataset_args,
        settings=settings,
        finished_earlier=state in ("finished", "skipped"),
        skipped_earlier=state == "skipped",
        skip_if_empty=skip_if_empty,
    )


def resolve_steps(kind: str, spec: str | list | None) -> list[Step]:
    """`--transforms` / `--callbacks` / `--adapter` as given (NAME[:key=value...], comma-separated or a YAML list):
    each registered component of `kind` with its options, every option checked against what it accepts."""
    steps = [(get(kind, name), options) for name, options in parse_spec_list(spec)]
    for record, options in steps:
        check_options(record, options)
    return steps


def _specs(ext: ExtArguments) -> dict[str, Any]:
    return {"transform": ext.transforms, "callback": ext.callbacks, "adapter": ext.adapter}


def _reward_steps(ext: ExtArguments) -> list[Step]:
    """Every reward flag in one namespace, in the order --reward_weights counts them: the reward model first (as
    `trl grpo` puts it), then --rewards, then --reward_funcs."""
    steps: list[Step] = []
    if ext.reward_model_name_or_path:
        steps.append((reward_model(ext.reward_model_name_or_path), {}))
    specs = parse_spec_list(ext.rewards) + parse_spec_list(ext.reward_funcs)
    return steps + [(resolve_reward(name, options), options) for name, options in specs]


def _check_rewards(method: Method, base: TrainingBase, config: Any, rewards: list[Step]) -> None:
    if base.takes_rewards and not rewards and not method.builds_rewards:
        names = ", ".join(r.name for r in registry().components("reward")) or "none installed"
        raise ValueError(
            f"Method {method.name!r} is {base.name.upper()}-based and needs --rewards NAME[,NAME] or "
            f"--reward_funcs NAME [NAME ...] (registered: {names}; TRL's: {', '.join(TRL_REWARDS)}; or a dotted "
            "path module.function), or --reward_model_name_or_path."
        )
    if rewards and not base.takes_rewards:
        raise ValueError(
            "--rewards, --reward_funcs and --reward_model_name_or_path only apply to methods whose trainer takes "
            f"rewards; {method.name!r} is {base.name}-based."
        )
    weights = getattr(config, "reward_weights", None)
    names = [f"{method.name}'s own"] * method.builds_rewards + [record.name for record, _ in rewards]
    if weights is not None and len(weights) != len(names):
        raise ValueError(
            f"--reward_weights has {len(weights)} values for {len(names)} rewards (in order: {', '.join(names)})."
        )


def mixture_name(dataset_args: Any) -> str:
    """A readable name for a `datasets:` mixture: its paths (with their data files), joined by " + "."""
    names = []
    for entry in dataset_args.datasets:
        files = entry.data_files
        files = [files] if isinstance(files, str) else list(files.values() if isinstance(files, dict) else files or [])
        names.append(f"{entry.path}({', '.join(map(str, files))})" if files else entry.path)
    return " + ".join(names)


def plain(value: Any) -> Any:
    """A YAML-friendly form of a config value (enums by value); None for what a recipe cannot hold."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):  # e.g. one entry of a `datasets:` mixture
        items = {str(k): plain(v) for k, v in value.items() if v is not None}
        return items if all(v is not None for v in items.values()) else None
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return items if all(v is not None for v in items) else None
    return None
