"""Checks made before training, each with a message that names the problem: flags, component options and the output
folder (at parse time), dataset columns and rows (before any model loads), the process group a launcher started."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_ext.plugin.records import Component, Method
from trl_ext.run.bases import training_base


class DatasetColumnError(ValueError):
    pass


class DistributedSetupError(RuntimeError):
    pass


class BadInputError(ValueError):
    """A flag, component option, output folder or dataset row that would fail (or train nonsense) after the model
    has loaded; raised before it loads."""


def check_inputs(required: Sequence[str], columns: Sequence[str], who: str, dataset_name: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetColumnError(
            f"Dataset {dataset_name} lacks column(s) {', '.join(repr(c) for c in missing)} that {who} needs. "
            f"Available columns: {sorted(columns)}."
        )


def check_columns(
    columns: Sequence[str], method: Method, config: Any, dataset_name: str, extra: dict[str, list[str]]
) -> None:
    """Refuse a dataset that lacks what the method's base, the method and its components read."""
    have = set(columns)
    shapes = training_base(method.base).shapes_for(config)
    if shapes and not any(set(shape) <= have for shape in shapes):
        wanted = " or ".join("+".join(s) for s in shapes)
        raise DatasetColumnError(
            f"Dataset {dataset_name} has columns {sorted(have)}, but method {method.name!r} ({method.base}) needs "
            f"{wanted}."
        )
    needs = {f"method {method.name!r}": method.columns_for(config), **extra}
    for who, cols in needs.items():
        check_inputs(cols, list(columns), who, dataset_name)


def reward_columns(rewards: Sequence[tuple[Component, dict]]) -> dict[str, list[str]]:
    return {f"reward {r.name!r}": list(getattr(r, "required_columns", ())) for r, _ in rewards}


def check_process_group(trainer) -> None:
    """Refuse to train when the launcher started several processes but the trainer sees one: each rank would train
    alone on the whole dataset and all of them would write the same output_dir."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and trainer.accelerator.num_processes != launched:
        raise DistributedSetupError(
            f"The launcher started {launched} processes but the trainer sees {trainer.accelerator.num_processes}: "
            "the process group was not formed (on CPU pass --use_cpu, the default without CUDA)."
        )


def check_training_flags(config: Any) -> None:
    """Refuse numeric flags that transformers accepts but that crash later (a division by zero, an empty schedule)
    or train nonsense (an infinite or zero learning rate saves a NaN or untouched model and exits 0)."""
    lr = config.learning_rate
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise BadInputError(f"--learning_rate must be a finite number > 0, got {lr!r}.")
    for name in ("gradient_accumulation_steps", "per_device_train_batch_size"):
        value = getattr(config, name, None)
        if value is not None and value < 1:
            raise BadInputError(f"--{name} must be >= 1, got {value!r}.")
    if config.max_steps == 0 or config.max_steps < -1:
        raise BadInputError(f"--max_steps must be > 0, or -1 to train for --num_train_epochs; got {config.max_steps}.")
    if config.max_steps == -1 and not config.num_train_epochs > 0:
        raise BadInputError(f"--num_train_epochs must be > 0 when --max_steps is -1, got {config.num_train_epochs}.")
    for strategy, steps in (("save_strategy", "save_steps"), ("eval_strategy", "eval_steps")):
        if str(getattr(getattr(config, strategy, None), "value", getattr(config, strategy, None))) != "steps":
            continue
        value = getattr(config, steps, None)
        if value is not None and not value > 0:
            raise BadInputError(f"--{steps} must be > 0 when --{strategy} is 'steps', got {value!r}.")
    if getattr(config, "logging_steps", 1) is not None and not config.logging_steps > 0:
        raise BadInputError(f"--logging_steps must be > 0, got {config.logging_steps!r}.")
    for name in ("max_length", "max_prompt_length", "max_completion_length"):
        value = getattr(config, name, None)
        if value is not None and not value > 0:
            raise BadInputError(f"--{name} must be > 0 (or None for no limit), got {value!r}.")
    _check_optimizer_flags(config)
    _check_reporting(config)
    if getattr(config, "push_to_hub", False) and _hub_offline():
        raise BadInputError(
            "--push_to_hub needs the Hub, but HF_HUB_OFFLINE is set: unset it, or drop --push_to_hub and upload "
            "the output folder later with `hf upload`."
        )


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _check_reporting(config: Any) -> None:
    """`--report_to X` without X's package fails in the trainer's constructor, after the model has loaded."""
    from transformers.integrations import get_available_reporting_integrations

    asked = [name for name in (getattr(config, "report_to", None) or []) if name not in ("none", "all")]
    missing = sorted(set(asked) - set(get_available_reporting_integrations()))
    if missing:
        raise BadInputError(
            f"--report_to {', '.join(missing)}: not installed here (pip install {' '.join(missing)}), or pass "
            "--report_to none."
        )


def _check_optimizer_flags(config: Any) -> None:
    """NaN or out-of-range optimizer numbers train without an error and give a NaN or frozen model."""
    ranges = {  # name -> (low, high, low included): the ranges in which AdamW and clipping are defined
        "weight_decay": (0.0, math.inf, True),
        "adam_beta1": (0.0, 1.0, True),
        "adam_beta2": (0.0, 1.0, True),
        "adam_epsilon": (0.0, math.inf, False),
    }
    for name, (low, high, low_included) in ranges.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        inside = math.isfinite(value) and (value >= low if low_included else value > low) and value < high
        if not inside:
            bound = f"[{low:g}, {high:g})" if low_included else f"({low:g}, {high:g})"
            raise BadInputError(f"--{name} must be a finite number in {bound}, got {value!r}.")
    max_grad_norm = getattr(config, "max_grad_norm", None)
    if max_grad_norm is not None and (math.isnan(max_grad_norm) or max_grad_norm < 0):
        raise BadInputError(f"--max_grad_norm must be >= 0 (0 turns clipping off), got {max_grad_norm!r}.")


def check_model_flags(model_args: Any) -> None:
    """LoRA numbers peft accepts only when it builds the adapter, after the model has loaded."""
    if not getattr(model_args, "use_peft", False):
        return
    for name in ("lora_r", "lora_alpha"):
        value = getattr(model_args, name, None)
        if value is not None and not value > 0:
            raise BadInputError(f"--{name} must be > 0 with --use_peft, got {value!r}.")
    dropout = getattr(model_args, "lora_dropout", None)
    if dropout is not None and not 0 <= dropout < 1:
        raise BadInputError(f"--lora_dropout must be in [0, 1), got {dropout!r}.")


# peft types whose virtual tokens enter as a key/value cache prefix (prompt and P-tuning prepend embeddings instead)
_KV_PREFIX_TYPES = frozenset({"PREFIX_TUNING", "CARTRIDGE"})


def check_adapted_model(model: Any, config: Any) -> None:
    """Refuse a key/value-prefix adapter (prefix tuning, cartridges) under gradient checkpointing: transformers'
    checkpointed decoder layers drop the cache that carries the prefix while the attention mask keeps the virtual
    tokens, so the first step would fail on a shape mismatch."""
    peft_config = getattr(model, "active_peft_config", None)
    kind = str(getattr(getattr(peft_config, "peft_type", None), "value", ""))
    if kind in _KV_PREFIX_TYPES and getattr(config, "gradient_checkpointing", False):
        raise BadInputError(
            f"The {kind} adapter cannot train under gradient checkpointing (the checkpointed layers drop its "
            "key/value prefix): pass --gradient_checkpointing false (in a compare config, on that arm)."
        )


def check_test_split_size(size: float | None) -> None:
    """`--test_split_size` carves an evaluation split: a share in (0, 1) or a row count >= 1."""
    if size is None:
        return
    if not (math.isfinite(size) and size > 0 and (size < 1 or float(size).is_integer())):
        raise BadInputError(f"--test_split_size must be a share in (0, 1) or a whole number of rows, got {size!r}.")


def check_eval_split(config: Any, splits: Sequence[str], dataset_name: str, test_split: str) -> None:
    """An evaluation strategy needs an evaluation split; the trainer would raise only after the model has loaded."""
    strategy = getattr(config, "eval_strategy", "no")
    if str(getattr(strategy, "value", strategy)) != "no" and test_split not in splits:
        raise BadInputError(
            f"--eval_strategy {getattr(strategy, 'value', strategy)} needs an evaluation split, but dataset "
            f"{dataset_name} has no split {test_split!r} (splits: {list(splits)}); set --dataset_test_split or "
            "--eval_strategy no."
        )


def _factory_parameters(record: Component) -> list[list[inspect.Parameter]] | None:
    """The parameters of each callable `record.build(**options)` passes the options to: the factory, and for
    `Cls.from_options(**o)` also `Cls(**o)`; [] without a factory, None when a signature cannot be read."""
    factory = getattr(record, "factory", None)
    if factory is None:
        return []
    callables = [factory]
    if inspect.ismethod(factory) and isinstance(factory.__self__, type):
        callables.append(factory.__self__)
    try:
        return [list(inspect.signature(fn).parameters.values()) for fn in callables]
    except (TypeError, ValueError):
        return None


def _named(params: list[inspect.Parameter], record: Component) -> list[inspect.Parameter]:
    """The parameters a user can pass by name (not the model and tokenizer the runner gives a model-needing one)."""
    passed = {"model", "tokenizer"} if getattr(record, "needs_model", False) else set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p for p in params if p.kind in kinds and p.name not in passed]


def accepted_options(record: Component) -> set[str] | None:
    """The options `record.build(**options)` accepts: those it declares plus its factory's named parameters; None
    when it declares none and its factory takes any keyword (nothing to check against)."""
    names = set(getattr(record, "options", {}))
    signatures = _factory_parameters(record)
    if signatures is None:
        return names or None
    if not signatures:
        return names
    names |= {p.name for params in signatures for p in _named(params, record)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signatures[-1])  # what finally receives the options
    return None if open_ended and not names else names


def required_options(record: Component) -> list[str]:
    """The options `record.build(**options)` cannot do without: parameters without a default of what receives them
    (the model and tokenizer a model-needing component gets from the runner excepted)."""
    required: dict[str, None] = {}
    for params in _factory_parameters(record) or []:
        required.update((p.name, None) for p in _named(params, record) if p.default is p.empty)
    return list(required)


def check_options(record: Component, options: dict[str, Any]) -> None:
    """Refuse an option the component does not take, or the lack of one it needs, naming the component and what it
    accepts (before any model loads: the factory would raise a bare TypeError only when the run builds it)."""
    missing = [name for name in required_options(record) if name not in options]
    if missing:
        example = ":".join([record.name, *(f"{name}=..." for name in missing)])
        if record.kind == "transform":
            example += " in --transforms, " + " ".join(f"--{name} ..." for name in missing) + " on `trl-ext transform`"
        raise BadInputError(
            f"{record.kind} {record.name!r} needs option(s) {', '.join(missing)} ({example}; see "
            f"`trl-ext info {record.name}`)."
        )
    accepted = accepted_options(record)
    if accepted is None:
        return
    unknown = sorted(set(options) - accepted)
    if unknown:
        offered = ", ".join(sorted(accepted)) or "none"
        raise BadInputError(
            f"{record.kind} {record.name!r} has no option(s) {', '.join(unknown)}; it accepts: {offered} "
            f"(see `trl-ext info {record.name}`)."
        )


# Files `save_model` writes: an output folder holding one has a finished model in it.
_MODEL_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


def saved_model_files(output_dir: str | Path) -> list[str]:
    """The files of a saved model (weights or adapter) in `output_dir`."""
    return [name for name in _MODEL_FILES if (Path(output_dir) / name).is_file()]


def check_output_dir(output_dir: str, overwrite: bool, resuming: bool = False) -> None:
    """Refuse to train over a finished model unless the user said --overwrite_output_dir (or resumes in place)."""
    if overwrite or resuming:
        return
    found = saved_model_files(output_dir)
    if found:
        raise BadInputError(
            f"--output_dir {output_dir} already holds a trained model ({found[0]}); pass --overwrite_output_dir to "
            "replace it, or choose another --output_dir."
        )


def check_rows(dataset: Any, columns: Sequence[str], dataset_name: str, split: str) -> None:
    """Refuse an empty split, and text columns whose rows are not strings or non-empty conversations with string
    contents. Reads the Arrow data in batches (types and null counts, no Python objects per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not hasattr(dataset, "__len__"):  # streaming: rows are read while training
        return
    where = f"Dataset {dataset_name} (split {split!r})"
    if len(dataset) == 0:
        raise BadInputError(f"{where} has no rows.")
    columns = [c for c in columns if c in dataset.column_names]
    if not columns:
        return
    start = 0
    for batch in dataset.select_columns(columns).with_format("arrow").iter(batch_size=10_000):
        for name in columns:
            _check_text_column(pa, pc, batch.column(name), name, where, start)
        start += batch.num_rows


_CONVERSATION_ONLY = {"messages"}  # columns that are always a list of messages, never plain text


def _first(pc: Any, mask: Any) -> int:
    return int(pc.index(mask, True).as_py())


def _check_text_column(pa: Any, pc: Any, column: Any, name: str, where: str, start: int) -> None:
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    kind = column.type
    if pa.types.is_null(kind) or column.null_count:
        row = start + _first(pc, pc.is_null(column))
        raise BadInputError(f"{where}: column {name!r} is null at row {row}; expected text or a list of messages.")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if name in _CONVERSATION_ONLY:
            sample = str(column[0].as_py())[:40]
            hint = (
                " It holds JSON text (a CSV stores lists as text): save the data as JSON Lines, one conversation "
                "list per row."
                if sample.lstrip().startswith("[")
                else ""
            )
            raise BadInputError(
                f"{where}: column {name!r} holds text ({sample!r}...); expected a list of messages.{hint}"
            )
        return
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        raise BadInputError(f"{where}: column {name!r} holds {kind} values; expected text or a list of messages.")
    lengths = pc.list_value_length(column)
    if pc.any(pc.equal(lengths, 0)).as_py():
        row = start + _first(pc, pc.equal(lengths, 0))
        raise BadInputError(f"{where}: column {name!r} is an empty list of messages at row {row}.")
    messages = column.flatten()
    if not pa.types.is_struct(messages.type) or messages.type.get_field_index("content") < 0:
        raise BadInputError(
            f"{where}: column {name!r} holds {kind} values; expected messages ({{'role': ..., 'content': ...}})."
        )
    for field in ("role", "content"):
        if messages.type.get_field_index(field) < 0:
            raise BadInputError(f"{where}: column {name!r} has messages without a {field!r}.")
        values = messages.field(field)
        bad = pc.is_null(values)
        if not (
            pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type)
        ):
            raise BadInputError(
                f"{where}: column {name!r} has message {field!r} values of type {values.type}; expected text."
            )
        if field == "content" and messages.type.get_field_index("tool_calls") >= 0:  # a call needs no content
            calls = messages.field("tool_calls")
            if pa.types.is_list(calls.type) or pa.types.is_large_list(calls.type):
                has_calls = pc.fill_null(pc.greater(pc.list_value_length(calls), 0), False)
                bad = pc.and_(bad, pc.invert(has_calls))
        if pc.any(bad).as_py():
            offsets = column.offsets.to_numpy(zero_copy_only=False)
            row = start + int((offsets <= _first(pc, bad) + offsets[0]).sum()) - 1
            raise BadInputError(f"{where}: column {name!r} has a message with null {field!r} at row {row}.")
