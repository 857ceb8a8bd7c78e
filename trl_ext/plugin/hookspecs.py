"""The whole plugin contract: one hook per kind of contribution, each given a `register` callable.

A plugin is a module (registered under the entry-point group `trl_ext`) with `@hookimpl` functions::

    from trl_ext import Method, hookimpl

    from .paper import PAPER

    @hookimpl
    def register_methods(register):
        register(
            Method(
                name="asft",
                trainer="trl_ext_plugins.asft.trainer:ASFTTrainer",  # import paths: imported on first use
                config="trl_ext_plugins.asft.config:ASFTConfig",
                paper=PAPER,
                family="sft-loss",
            )
        )

The module runs on every `trl-ext` command, so it names heavy parts (trainers, configs, factories) by import path
rather than importing them (classes and callables are accepted too, at the cost of importing torch with the plugin).
Every hook returns nothing; `register(record)` raises if the record is of the wrong kind. A name registered by two
plugins is an error that names both.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("trl_ext")
hookimpl = pluggy.HookimplMarker("trl_ext")


@hookspec
def register_methods(register: Callable) -> None:
    """Register `trl_ext.Method` records: a trainer and its config, runnable by `trl-ext train NAME`."""


@hookspec
def register_rewards(register: Callable) -> None:
    """Register `trl_ext.Reward` records: named GRPO reward functions usable by any GRPO-based method."""


@hookspec
def register_transforms(register: Callable) -> None:
    """Register `trl_ext.Transform` records: dataset -> dataset steps (selection, filtering, rewriting)."""


@hookspec
def register_callbacks(register: Callable) -> None:
    """Register `trl_ext.Callback` records: `TrainerCallback` factories (metrics, schedules, weight injection)."""


@hookspec
def register_adapters(register: Callable) -> None:
    """Register `trl_ext.Adapter` records: model transforms applied before training (PEFT-like modules)."""


@hookspec
def register_datasets(register: Callable) -> None:
    """Register `trl_ext.Dataset` records: datasets generated in code, loaded as `builtin:NAME`."""


@hookspec
def register_logits_processors(register: Callable) -> None:
    """Register `trl_ext.LogitsProcessor` records: decoding interventions for `trl-ext generate` and evaluation."""


@hookspec
def register_recipes(register: Callable) -> None:
    """Register `trl_ext.Recipe` records: multi-stage runs as data, run by `trl-ext train NAME`."""


HOOKS = {
    "method": "register_methods",
    "reward": "register_rewards",
    "transform": "register_transforms",
    "callback": "register_callbacks",
    "adapter": "register_adapters",
    "dataset": "register_datasets",
    "logits_processor": "register_logits_processors",
    "recipe": "register_recipes",
}
