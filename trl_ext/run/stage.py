"""Train a parsed `Stage`: load data, apply transforms, check columns, load the model, compose rewards, callbacks and
adapters, train, save, and write the model card. `run_stages` chains a recipe's stages."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trl_ext.compat.trainer import forget_accelerator_state
from trl_ext.data import load_dataset
from trl_ext.data.curation import curation_scope
from trl_ext.run import cards
from trl_ext.run.arguments import Stage, Step
from trl_ext.run.checks import (
    BadInputError,
    DatasetColumnError,
    check_adapted_model,
    check_columns,
    check_eval_split,
    check_inputs,
    check_process_group,
    check_rows,
    reward_columns,
)
from trl_ext.run.lock import hold_output_lock, release_output_lock
from trl_ext.run.progress import write_state

logger = logging.getLogger(__name__)

# (transform name, split, rows before, rows after, the built transform) after each transform of each split
TransformReport = Callable[[str, str, Any, Any, Any], None]


class StageSkipped(Exception):
    """The outcome of a `skip_if_empty` stage whose training split is empty once loaded and transformed: nothing is
    trained or saved, the stage is recorded as "skipped", and its input model passes on to the next stage."""

    def __init__(self, stage: Stage, rows_before: int | None = None) -> None:
        self.stage, self.model = stage, stage.model_args.model_name_or_path
        self.output_dir = stage.config.output_dir
        where = f"{stage.script_args.dataset_name} (split {stage.script_args.dataset_train_split!r})"
        after = f" after its transforms ({rows_before} rows before them)" if rows_before is not None else ""
        super().__init__(f"no training rows in {where}{after}: skipped; the model stays {self.model}")


def _is_empty(split: Any) -> bool:
    return hasattr(split, "__len__") and len(split) == 0  # a streamed split is never known to be empty


def apply_transforms(
    transforms: Sequence[Step],
    dataset,
    dataset_name: str,
    *,
    model=None,
    tokenizer=None,
    splits: Sequence[str] | None = None,
    report: TransformReport | None = None,
):
    """Apply each transform to each split in order (the `trl-ext transform` command and a training stage alike),
    checking each transform's input columns on the data it actually receives."""
    for record, options in transforms:
        needs = {"model": model, "tokenizer": tokenizer} if getattr(record, "needs_model", False) else {}
        fn = record.build(**needs, **options)
        for split in splits or list(dataset):
            logger.info("Applying transform %s to %s split", record.name, split)
            before = dataset[split]
            check_inputs(record.columns_for(options), before.column_names, f"transform {record.name!r}", dataset_name)
            with curation_scope(record.name, split):  # where a curation transform records its scores
                dataset[split] = fn(before)
            if report is not None:
                report(record.name, split, before, dataset[split], fn)
    return dataset


def transform_reporter(dataset_name: str) -> TransformReport:
    """Prints what a transform did to a split (rows and columns before and after, and the figures it keeps in
    `fn.summary`: STAT's Missing-Skill-Profile, a filter's kept share), from the main process only."""

    def report(name: str, split: str, before: Any, after: Any, fn: Any) -> None:
        if int(os.environ.get("RANK", "0")) != 0:  # a sharded run: every rank holds the same result
            return
        columns_before, columns_after = before.column_names or [], after.column_names or []  # None when streamed
        added = [c for c in columns_after if c not in columns_before]
        removed = [c for c in columns_before if c not in columns_after]
        rows = [len(part) if hasattr(part, "__len__") else "?" for part in (before, after)]
        print(
            f"{name} on {dataset_name} [{split}]: {rows[0]} rows -> {rows[1]} rows; "
            f"columns added: {added or '-'}, removed: {removed or '-'}"
        )
        summary = getattr(fn, "summary", None)
        for key, value in (summary if isinstance(summary, dict) else {}).items():
            print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")

    return report


def trained_splits(stage: Stage, dataset) -> list[str]:
    """The splits the trainer reads: the train split, and the test split when it evaluates. Transforms run on these
    only: a model-needing transform on an unread split is wasted work, and wrong where that split is the transform's
    own held-out data (STAT diagnoses the student on the validation split of the pool it draws from)."""
    script_args = stage.script_args
    splits = [script_args.dataset_train_split]
    evaluates = str(getattr(stage.config.eval_strategy, "value", stage.config.eval_strategy)) != "no"
    if evaluates and script_args.dataset_test_split in dataset:
        splits.append(script_args.dataset_test_split)
    return splits


def load_checked_dataset(stage: Stage):
    """Load a stage's dataset and check everything about it that can be checked before a model loads: the splits,
    the columns the method, the first transform and the rewards read, and every row of the text columns."""
    method, config, script_args = stage.method, stage.config, stage.script_args
    dataset = _load_stage_dataset(stage)
    train_split = script_args.dataset_train_split
    if train_split not in dataset:
        raise DatasetColumnError(
            f"Dataset {script_args.dataset_name} has no split {train_split!r}; splits: {list(dataset)}"
        )
    # Check what can be checked before loading the model: the columns after the transforms are known only after
    # running them, so check the first transform's inputs and, without transforms, everything.
    columns = list(dataset[train_split].column_names)
    if stage.transforms:
        first, first_options = stage.transforms[0]
        check_inputs(first.columns_for(first_options), columns, f"transform {first.name!r}", script_args.dataset_name)
    else:
        check_columns(columns, method, config, script_args.dataset_name, reward_columns(stage.rewards))
    # The rows the trainer reads as text: only the base's own columns, and only without transforms (which may
    # rewrite them); an empty split is refused either way.
    text_columns = (
        [] if stage.transforms else sorted({c for s in stage.base.shapes_for(config) for c in s} - {"input_ids"})
    )
    if not (stage.skip_if_empty and _is_empty(dataset[train_split])):  # skipped when its turn comes
        check_rows(dataset[train_split], text_columns, script_args.dataset_name, train_split)
    check_eval_split(config, list(dataset), script_args.dataset_name, script_args.dataset_test_split)
    return dataset


def _load_stage_dataset(stage: Stage):
    """The stage's DatasetDict: a `datasets:` mixture through TRL's own loader (as `trl sft` reads it) or trl-ext's
    loader (built-in names, files, folders, Hub ids); then `test_split_size` carves the evaluation split."""
    script_args, mixture = stage.script_args, stage.dataset_args
    size = getattr(mixture, "test_split_size", None)
    if mixture is not None and mixture.datasets:
        from dataclasses import replace

        from trl import get_dataset

        # Carved below with the run's seed rather than by TRL's unseeded split, so every process gets the same rows.
        dataset = get_dataset(replace(mixture, test_split_size=None))
    else:
        dataset = load_dataset(
            script_args.dataset_name,
            script_args.dataset_config,
            form=stage.base.dataset_form,
            streaming=script_args.dataset_streaming,
        )
    if size is not None:
        dataset = carve_test_split(
            dataset, script_args.dataset_train_split, script_args.dataset_test_split, size, stage.config.seed
        )
    return dataset


def carve_test_split(dataset, train_split: str, test_split: str, size: float, seed: int):
    """Split `size` rows (a share in (0, 1) or a count) of the train split off as the evaluation split, the same
    rows in every process for one seed."""
    from datasets import DatasetDict

    if train_split not in dataset:
        raise DatasetColumnError(
            f"--test_split_size needs a {train_split!r} split to carve from; splits: {list(dataset)}"
        )
    if test_split in dataset:
        raise DatasetColumnError(
            f"--test_split_size would replace the dataset's own {test_split!r} split; drop the flag to use that split."
        )
    train = dataset[train_split]
    if not hasattr(train, "train_test_split"):
        raise DatasetColumnError("--test_split_size needs a dataset that is not streamed.")
    count = int(size) if size >= 1 else None
    if count is not None and count >= len(train):
        raise DatasetColumnError(f"--test_split_size {count} leaves no training rows (the split has {len(train)}).")
    parts = train.train_test_split(test_size=count or size, seed=seed)
    return DatasetDict({**dataset, train_split: parts["train"], test_split: parts["test"]})


def run_stage(stage: Stage, dataset=None) -> str:
    """Train one stage and return its output directory (the next stage's model). `dataset`: the stage's data as
    `load_checked_dataset` returned it (loaded and checked here when not given)."""
    from trl_ext.training.checkpoints import protect_checkpoints
    from trl_ext.training.guards import stop_on_non_finite_loss
    from trl_ext.training.sharding import form_process_group

    config = stage.config
    if dataset is None:
        dataset = load_checked_dataset(stage)

    hold_output_lock(config.output_dir)  # one run per output folder, taken before the model loads
    built_from = stage
    if stage.skip_if_empty and not any(getattr(record, "needs_model", False) for record, _ in stage.transforms):
        # Known empty without a model: skipped before one loads (else build_trainer checks after the transforms).
        train_split, name = stage.script_args.dataset_train_split, stage.script_args.dataset_name
        before = len(dataset[train_split]) if hasattr(dataset[train_split], "__len__") else None
        if stage.transforms:
            apply_transforms(
                stage.transforms,
                dataset,
                name,
                splits=trained_splits(stage, dataset),
                report=transform_reporter(name),
            )
            built_from = replace(stage, transforms=[])  # applied once, here
        if _is_empty(dataset[train_split]):
            raise StageSkipped(stage, before if stage.transforms else None)
        if stage.transforms:
            columns = dataset[train_split].column_names
            check_columns(columns, stage.method, config, name, reward_columns(stage.rewards))
    form_process_group(config)
    trainer, tokenizer = build_trainer(built_from, dataset)
    if stage.settings is not None and trainer.is_world_process_zero():
        write_state(config.output_dir, stage.settings, "started")
    check_process_group(trainer)
    protect_checkpoints(trainer)  # a kill during a save leaves no checkpoint that looks complete
    stop_on_non_finite_loss(trainer)  # a NaN/inf loss raises before its step is saved; save_model below never runs
    cards.extend_model_card(trainer, stage)  # before any save or push writes a card
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(config.output_dir)
        trainer.create_model_card(model_name=Path(config.hub_model_id or config.output_dir).name)  # as pushed
        if stage.settings is not None:
            write_state(config.output_dir, stage.settings, "finished")
    trainer.accelerator.wait_for_everyone()
    return config.output_dir


def check_adapter_stacking(model: Any, stage: Stage) -> None:
    """A stage starting from an adapter that cannot merge (`load_model_and_tokenizer` keeps it as a trainable
    PeftModel) trains that adapter on; a new adapter on top would fail inside TRL (a PeftModel with a peft_config) or
    train nothing, so it is refused before this stage trains, the earlier stages' outputs kept."""
    if not hasattr(model, "peft_config") or not (stage.adapters or getattr(stage.model_args, "use_peft", False)):
        return
    kind = type(model.active_peft_config).__name__.removesuffix("Config")  # LoRAMoE, PromptTuning, ...
    raise BadInputError(
        f"{stage.model_args.model_name_or_path} holds a {kind} adapter that cannot be merged into its base, so this "
        "stage cannot add another adapter on it: drop use_peft / --adapter from this stage to train that adapter on "
        "(the finished stages are kept; rerun the same command after editing this stage)."
    )


def build_trainer(stage: Stage, dataset):
    """The stage's trainer and tokenizer, built as `run_stage` trains them (`trl-ext bench` times the same one):
    load the model, apply the transforms and check the columns they leave, wrap the adapters, build the rewards and
    callbacks. `dataset`: the stage's data as `load_checked_dataset` returned it. A `skip_if_empty` stage left with no
    training rows raises StageSkipped."""
    from transformers import set_seed
    from trl import get_peft_config

    from trl_ext.models import load_model_and_tokenizer
    from trl_ext.training.bound_callbacks import bind_callbacks
    from trl_ext.training.log_figures import log_before_reporters
    from trl_ext.training.rank_allocation import attach_rank_allocation

    method, config, script_args = stage.method, stage.config, stage.script_args
    train_split = script_args.dataset_train_split
    # transformers seeds in `Trainer.__init__`, after the model and its `--adapter`s exist: without this an adapter's
    # random init (and any head the checkpoint lacks) ignored --seed, so two runs of one command differed, and one
    # process differed from two
    set_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(stage.model_args, config)
    check_adapter_stacking(model, stage)
    if stage.transforms:
        before = len(dataset[train_split]) if hasattr(dataset[train_split], "__len__") else None
        apply_transforms(
            stage.transforms,
            dataset,
            script_args.dataset_name,
            model=model,
            tokenizer=tokenizer,
            splits=trained_splits(stage, dataset),
            report=transform_reporter(script_args.dataset_name),
        )
        if _is_empty(dataset[train_split]):
            if stage.skip_if_empty:
                raise StageSkipped(stage, before)
            names = ", ".join(record.name for record, _ in stage.transforms)
            raise BadInputError(
                f"Dataset {script_args.dataset_name} (split {train_split!r}) has no rows left after the "
                f"transforms {names} ({before} before them); in a recipe, `skip_if_empty: true` skips such a stage."
            )
        check_columns(
            dataset[train_split].column_names, method, config, script_args.dataset_name, reward_columns(stage.rewards)
        )
    set_seed(config.seed)  # the adapters' init, whatever the transforms drew
    for record, options in stage.adapters:
        model = record.build(**options)(model)
    check_adapted_model(model, config)

    eval_dataset = dataset[script_args.dataset_test_split] if config.eval_strategy != "no" else None
    trainer = method.trainer(
        model=model,
        args=config,
        train_dataset=dataset[train_split],
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(stage.model_args),
        callbacks=[record.build(**options) for record, options in stage.callbacks] or None,
        **stage.base.trainer_kwargs(
            [record.build(**options) for record, options in stage.rewards],
            stage=stage,
            model=model,
            tokenizer=tokenizer,
        ),
    )
    bind_callbacks(trainer)  # callbacks that act on the trainer itself (a GRPO run's rollout temperature)
    attach_rank_allocation(trainer)  # an AdaLoRA adapter prunes its ranks only when the loop asks it to
    log_before_reporters(trainer)  # figures the callbacks add in on_log reach wandb/tensorboard/...
    return trainer, tokenizer


def run_stages(stages: Sequence[Stage]) -> str:
    """Train the stages in order, each from the previous one's output unless it names its own model. Every stage's
    data is loaded and checked before the first trains, so a bad file in stage 3 fails in seconds, not hours.

    Of a multi-stage recipe, a stage that an earlier run of the same command finished (or skipped) is kept (not
    reloaded or retrained) as long as every stage before it was kept too; a failing stage is named, and the stages
    before it stay finished for the rerun. A skipped stage (`skip_if_empty`) passes its input model on: the result is
    the last trained stage's output, or the first stage's model when none trained."""
    keep = _kept_prefix(stages)
    datasets = [None if i < keep else load_checked_dataset(stage) for i, stage in enumerate(stages)]
    output = None
    for i, (stage, dataset) in enumerate(zip(stages, datasets, strict=True)):
        if output is not None:
            stage = stage.after(output)
        where = f"stage {i + 1}/{len(stages)}: {stage.method.name} -> {stage.config.output_dir}"
        if i < keep:
            done = "skipped" if stage.skipped_earlier else "finished"
            print(f"=== {where} ({done} by an earlier run of this recipe: kept)", flush=True)
            output = stage.model_args.model_name_or_path if stage.skipped_earlier else stage.config.output_dir
            continue
        if len(stages) > 1:
            resumed = stage.config.resume_from_checkpoint
            print(f"=== {where}" + (f" (resuming from {resumed})" if resumed else ""), flush=True)
        try:
            output = run_stage(stage, dataset)
        except StageSkipped as skipped:
            print(f"=== {where}: {skipped}", flush=True)
            if stage.settings is not None and int(os.environ.get("RANK", "0")) == 0:
                write_state(stage.config.output_dir, stage.settings, "skipped")
            output = skipped.model
            continue
        except BaseException:
            if len(stages) > 1:
                logger.error("%s failed; rerun the same command to resume from this stage.", where.capitalize())
            raise
        finally:
            release_output_lock(stage.config.output_dir)
        if i + 1 < len(stages):
            forget_accelerator_state()  # the next stage's trainer may bring its own DeepSpeed config
    assert output is not None, "no stage to run"
    return output


def _kept_prefix(stages: Sequence[Stage]) -> int:
    """How many leading stages an earlier run finished with the same settings (kept, not trained again)."""
    count = 0
    for stage in stages:
        if not stage.finished_earlier:
            break
        count += 1
    return count


def describe_budget(config: Any) -> str:
    """A stage's training length in words: `max_steps`, else epochs; a config whose length is set another way (LT-SFT's
    phases, RoSTE's ptq_only) says it through a `budget_description()` method (None: the usual words)."""
    custom = getattr(config, "budget_description", None)
    if callable(custom) and (text := custom()) is not None:
        return str(text)
    if config.max_steps and config.max_steps > 0:
        return f"{config.max_steps} step{'s' if config.max_steps != 1 else ''}"
    return f"{config.num_train_epochs:g} epoch{'s' if config.num_train_epochs != 1 else ''}"


def describe_contributions(stage: Stage, leave_out: Collection[str] = ()) -> list[str]:
    """The stage's transforms, rewards, callbacks and adapters as given (name and options), one phrase per kind it
    has (but the kinds in `leave_out`), for a plan: what data a stage trains on shows in its transforms' options."""

    def given(record: Any, options: dict[str, Any]) -> str:
        return ":".join([record.name, *(f"{key}={value}" for key, value in options.items())])

    return [
        f"{kind} {', '.join(given(record, options or {}) for record, options in steps)}"
        for kind, steps in (
            ("transforms", stage.transforms),
            ("rewards", stage.rewards),
            ("callbacks", stage.callbacks),
            ("adapters", stage.adapters),
        )
        if steps and kind not in leave_out
    ]


def describe_plan(stages: Sequence[Stage]) -> str:
    """What `run_stages` would do, after every check that needs no model: each stage's flags and options (already
    parsed), its data's splits, columns and text rows (`load_checked_dataset`), and whether an earlier run of the same
    command finished it. Nothing is trained or written: `trl-ext train ... --dry_run`."""
    lines = [f"trl-ext train (dry run): {len(stages)} stage{'s' if len(stages) != 1 else ''}"]
    for i, stage in enumerate(stages, 1):
        args = stage.script_args
        if stage.finished_earlier:
            state = "finished earlier: kept"
        else:
            rows = len(load_checked_dataset(stage)[args.dataset_train_split])
            state = f"{rows} training rows before transforms: to train"
        budget = describe_budget(stage.config)
        extras = describe_contributions(stage)
        model = stage.model_args.model_name_or_path if stage.model_given else "the previous stage's model"
        lines.append(
            f"  {i}. {stage.method.name} ({stage.base.name} base) on {model}, {budget} on {args.dataset_name} "
            f"[{args.dataset_train_split}]{'; ' + '; '.join(extras) if extras else ''} -> {stage.config.output_dir} "
            f"({state})"
        )
    return "\n".join(lines)
