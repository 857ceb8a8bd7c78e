"""Build and run one training stage from parsed TRL-style arguments: load data, apply transforms, check columns,
load the model, compose rewards/callbacks/adapters, train, save, and write the model card."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from . import cards
from .data import load_dataset
from .method import Method
from .registry import get, registry
from .specs import parse_spec_list

logger = logging.getLogger(__name__)

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
            "help": "Registered reward functions for GRPO-based methods: NAME[:key=value...][,NAME...]. "
            "Weights: --reward_weights."
        },
    )
    callbacks: str | None = field(
        default=None, metadata={"help": "Registered callbacks: NAME[:key=value...][,NAME...]"}
    )
    adapter: str | None = field(
        default=None, metadata={"help": "A registered adapter applied to the model: NAME[:key=value...]"}
    )


class DatasetColumnError(ValueError):
    pass


BASE_COLUMNS = {
    "sft": [("messages",), ("prompt", "completion"), ("text",), ("input_ids",)],
    "grpo": [("prompt",)],
    "dpo": [("chosen", "rejected")],
}


def check_columns(columns: list[str], method: Method, config: Any, dataset_name: str, extra: dict[str, list[str]]):
    """Refuse, before any model is loaded, a dataset that lacks what the method and its components read."""
    have = set(columns)
    shapes = BASE_COLUMNS.get(method.base, [])
    if method.base == "sft":
        text_field = getattr(config, "dataset_text_field", "text")
        shapes = [s if s != ("text",) else (text_field,) for s in shapes]
    if shapes and not any(set(shape) <= have for shape in shapes):
        wanted = " or ".join("+".join(s) for s in shapes)
        raise DatasetColumnError(
            f"Dataset {dataset_name} has columns {sorted(have)}, but method {method.name!r} ({method.base}) needs "
            f"{wanted}."
        )
    needs = {f"method {method.name!r}": method.columns_for(config), **extra}
    for who, cols in needs.items():
        check_inputs(cols, columns, who, dataset_name)


def apply_defaults(method: Method, script_args: Any, config: Any, model_args: Any) -> None:
    """Offline by default: the built-in model and the method's built-in dataset when none is named."""
    if not model_args.model_name_or_path:
        model_args.model_name_or_path = DEFAULT_MODEL
    if not script_args.dataset_name:
        script_args.dataset_name = method.default_dataset


def run_stage(
    method_name: str, script_args: Any, config: Any, model_args: Any, ext: ExtArguments, recipe: dict | None = None
) -> str:
    """Train one stage and return its output directory (the next stage's model)."""
    from trl import get_peft_config

    from .models import load_model_and_tokenizer

    method: Method = get("method", method_name)
    apply_defaults(method, script_args, config, model_args)
    transforms = [(get("transform", n), o) for n, o in parse_spec_list(ext.transforms)]
    rewards = [(get("reward", n), o) for n, o in parse_spec_list(ext.rewards)]
    callbacks = [(get("callback", n), o) for n, o in parse_spec_list(ext.callbacks)]
    adapters = [(get("adapter", n), o) for n, o in parse_spec_list(ext.adapter)]
    if method.base == "grpo" and not rewards:
        names = ", ".join(r.name for r in registry().components("reward")) or "none installed"
        raise ValueError(f"Method {method.name!r} is GRPO-based and needs --rewards NAME[,NAME]. Available: {names}")
    if rewards and method.base != "grpo":
        raise ValueError(f"--rewards only applies to GRPO-based methods; {method.name!r} is {method.base}-based.")
    weights = getattr(config, "reward_weights", None)
    if weights is not None and len(weights) != len(rewards):
        raise ValueError(f"--reward_weights has {len(weights)} values for {len(rewards)} rewards.")

    dataset = load_dataset(
        script_args.dataset_name, script_args.dataset_config, form=method.base, streaming=script_args.dataset_streaming
    )
    train_split = script_args.dataset_train_split
    if train_split not in dataset:
        raise DatasetColumnError(
            f"Dataset {script_args.dataset_name} has no split {train_split!r}; splits: {list(dataset)}"
        )
    # Check what can be checked before loading the model: the columns after the transforms that need no model
    # are known only after running them, so check the first transform's inputs and, without transforms, everything.
    columns = list(dataset[train_split].column_names)
    if transforms:
        first, _ = transforms[0]
        check_inputs(first.required_columns, columns, f"transform {first.name!r}", script_args.dataset_name)
    else:
        check_columns(columns, method, config, script_args.dataset_name, reward_columns(rewards))

    model, tokenizer = load_model_and_tokenizer(model_args, config)
    for record, options in transforms:
        fn = record.build(**({"model": model, "tokenizer": tokenizer} if record.needs_model else {}), **options)
        for split in list(dataset):
            logger.info("Applying transform %s to %s split", record.name, split)
            check_inputs(
                record.required_columns,
                dataset[split].column_names,
                f"transform {record.name!r}",
                script_args.dataset_name,
            )
            dataset[split] = fn(dataset[split])
    if transforms:
        check_columns(
            dataset[train_split].column_names, method, config, script_args.dataset_name, reward_columns(rewards)
        )
    for record, options in adapters:
        model = record.build(**options)(model)

    eval_dataset = None
    if config.eval_strategy != "no" and script_args.dataset_test_split in dataset:
        eval_dataset = dataset[script_args.dataset_test_split]
    kwargs: dict[str, Any] = {
        "model": model,
        "args": config,
        "train_dataset": dataset[train_split],
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "peft_config": get_peft_config(model_args),
        "callbacks": [record.build(**options) for record, options in callbacks] or None,
    }
    if method.base == "grpo":
        kwargs["reward_funcs"] = [record.build(**options) for record, options in rewards]
    trainer = method.trainer(**kwargs)
    check_process_group(trainer)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(config.output_dir)
        trainer.create_model_card(model_name=Path(config.output_dir).name, dataset_name=script_args.dataset_name)
        cards.add_trl_ext_section(
            config.output_dir,
            method=method,
            base_model=model_args.model_name_or_path,
            dataset=script_args.dataset_name,
            components=[r for r, _ in transforms + rewards + callbacks + adapters],
            recipe=recipe,
        )
    trainer.accelerator.wait_for_everyone()
    return config.output_dir


class DistributedSetupError(RuntimeError):
    pass


def check_process_group(trainer) -> None:
    """Refuse to train when the launcher started several processes but the trainer sees one: each rank would train
    alone on the whole dataset and all of them would write the same output_dir."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and trainer.accelerator.num_processes != launched:
        raise DistributedSetupError(
            f"The launcher started {launched} processes but the trainer sees {trainer.accelerator.num_processes}: "
            "the process group was not formed (on CPU pass --use_cpu, the default without CUDA)."
        )


def check_inputs(required, columns, who: str, dataset_name: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetColumnError(
            f"Dataset {dataset_name} lacks column(s) {', '.join(repr(c) for c in missing)} that {who} needs. "
            f"Available columns: {sorted(columns)}."
        )


def reward_columns(rewards) -> dict[str, list[str]]:
    return {f"reward {r.name!r}": list(r.required_columns) for r, _ in rewards}


def plain(value: Any) -> Any:
    """A YAML-friendly form of a config value (enums by value); None for what a recipe cannot hold."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    return None
