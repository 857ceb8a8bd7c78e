"""`trl-ext`: list | info | plugins | train | transform | new-plugin | bench."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .method import KINDS, Component, Method
from .registry import ComponentError, UnknownComponentError, registry

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
EXIT_USAGE = 2


class CLIError(Exception):
    pass


# --- list / info / plugins -------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    records = registry().components(args.kind, args.family)
    if args.json:
        print(json.dumps([r.summary() for r in records], indent=2))
        return 0
    rows = [(r.name, r.kind, r.family, r.plugin, _paper_cell(r)) for r in records]
    _print_table(("NAME", "KIND", "FAMILY", "PLUGIN", "PAPER"), rows)
    broken = [p for p in registry().plugins.values() if p.status != "ok"]
    if broken:
        print(f"\n{len(broken)} plugin(s) failed to load: {', '.join(p.name for p in broken)} (see `trl-ext plugins`)")
    return 0


def _paper_cell(record: Component) -> str:
    if record.paper is None:
        return ""
    return f"{record.paper.title[:48]}" + (f" (arXiv:{record.paper.arxiv})" if record.paper.arxiv else "")


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = registry()
    infos = list(reg.plugins.values())
    if args.json:
        print(json.dumps([p.as_dict() for p in infos], indent=2))
        return 0
    _print_table(("PLUGIN", "VERSION", "STATUS", "MODULE"), [(p.name, p.version, p.status, p.module) for p in infos])
    for p in infos:
        if p.error:
            print(f"\n{p.name}: {p.error}")
    for (kind, name), providers in reg.conflicts().items():
        print(f"\nconflict: {kind} {name!r} is registered by {' and '.join(providers)}")
    return 0


def find_any(name: str, kind: str | None = None) -> Component:
    reg = registry()
    if kind:
        return reg.get(kind, name)
    matches = [r for r in reg.components() if r.name == name]
    if not matches:
        raise UnknownComponentError("component", name, {r.name for r in reg.components()})
    return matches[0]


def cmd_info(args: argparse.Namespace) -> int:
    from .runner import BASE_COLUMNS

    record = find_any(args.name, args.kind)
    plugin = registry().plugins.get(record.plugin)
    print(
        f"{record.name}  ({record.kind}, family {record.family or '-'}, plugin {record.plugin}"
        f"{' ' + plugin.version if plugin and plugin.version else ''})"
    )
    if record.paper:
        print(
            f"Paper: {record.paper.title}"
            + (f"  arXiv:{record.paper.arxiv}  {record.paper.url}" if record.paper.arxiv else "")
        )
    if record.description:
        print(f"\n{record.description}")
    if isinstance(record, Method):
        base_config = _trl_base(record.config)
        print(
            f"\nBased on TRL's {_trl_base(record.trainer).__name__}: every `trl {record.base}` flag applies "
            f"({base_config.__name__}, ModelConfig, ScriptArguments)."
        )
        shapes = " | ".join("+".join(s) for s in BASE_COLUMNS.get(record.base, []))
        extra = _method_columns(record)
        print(f"Dataset columns: {shapes}" + (f"; plus {', '.join(extra)}" if extra else ""))
        own = _own_fields(record.config, base_config)
        if own:
            print(f"\nConfig fields ({record.config.__name__}, beyond {base_config.__name__}):")
            for f in own:
                default = (
                    f.default
                    if f.default is not dataclasses.MISSING
                    else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
                )
                print(f"  --{f.name} (default: {default})\n      {f.metadata.get('help', '')}")
        print(f"\nExample:\n  {record.example or f'trl-ext train {record.name} --max_steps 10'}")
    else:
        cols = list(getattr(record, "required_columns", ()) or ())
        if cols:
            print(f"Dataset columns: {', '.join(cols)}")
        options = getattr(record, "options", {}) or {}
        if options:
            print("\nOptions (NAME:key=value or a YAML mapping):")
            for key, help_text in options.items():
                print(f"  {key}: {help_text}")
        if record.kind == "dataset":
            for form, columns in record.columns.items():
                print(f"  form {form}: {', '.join(columns)}")
            print(f"\nExample:\n  --dataset_name builtin:{record.name}")
        elif record.kind == "reward":
            print(f"\nExample:\n  trl-ext train grpo --rewards {record.name} --dataset_name builtin:json_extract")
        elif record.kind == "transform":
            print(f"\nExample:\n  trl-ext transform {record.name} --dataset_name ... --output out.jsonl")
    if record.paper and record.paper.citation:
        print(f"\nCitation:\n{record.paper.citation}")
    return 0


def _method_columns(method: Method) -> list[str]:
    """The columns a method needs at its default config (they may depend on the config's fields)."""
    if not callable(method.required_columns):
        return list(method.required_columns)
    try:
        return method.columns_for(method.config(output_dir="/tmp/trl-ext-info", bf16=False, use_cpu=True))
    except Exception:  # a config that cannot be built without more flags: say so rather than guess
        return ["(depends on the config)"]


def _trl_base(config_cls: type) -> type:
    for cls in config_cls.__mro__:
        if cls.__module__.startswith("trl."):
            return cls
    return config_cls


def _own_fields(config_cls: type, base: type) -> list[dataclasses.Field]:
    base_defaults = {f.name: f.default for f in dataclasses.fields(base)}
    return [
        f
        for f in dataclasses.fields(config_cls)
        if f.name not in base_defaults
        or (f.default != base_defaults[f.name] and f.name in config_cls.__dict__.get("__annotations__", {}))
    ]


# --- train -----------------------------------------------------------------------------------------------------------
def build_parser(method: Method):
    import torch
    from trl import ModelConfig, ScriptArguments, TrlParser

    from .runner import ExtArguments

    parser = TrlParser(
        (ScriptArguments, method.config, ModelConfig, ExtArguments), prog=f"trl-ext train {method.name}"
    )
    if not torch.cuda.is_available():
        # TRL defaults to bf16, which transformers refuses without an accelerator; use_cpu makes torchrun on CPU
        # processes form a real (gloo) process group instead of each training alone.
        parser.set_defaults(bf16=False, use_cpu=True)
    parser.set_defaults(output_dir=f"outputs/{method.name}")
    return parser


def parse_stage(method_name: str, flags: list[str], recipe_values: dict[str, Any] | None = None):
    from .recipe import RecipeError

    method: Method = registry().get("method", method_name)
    parser = build_parser(method)
    if recipe_values:
        remaining = parser.set_defaults_with_config(**recipe_values)
        if remaining:
            unknown = sorted({item[2:] for item in remaining[::2]})
            raise RecipeError(
                f"Unknown key(s) for method {method_name!r} in the recipe: {', '.join(unknown)}. "
                f"See `trl-ext info {method_name}` and `trl-ext train {method_name} --help`."
            )
    return parser.parse_args_into_dataclasses(args=flags)


def explicit_values(method_name: str, flags: list[str], recipe_values: dict[str, Any]) -> dict[str, Any]:
    """What this stage asked for: the recipe's keys, then the command-line flags that differ from the parser's
    defaults (the recipe recorded in the model card). Read from the parser, never by building a second config:
    a TrainingArguments' `__post_init__` resets accelerate's shared state and would undo the process group."""
    from .runner import plain

    parser = build_parser(registry().get("method", method_name))
    given, defaults = vars(parser.parse_known_args(flags)[0]), vars(parser.parse_known_args([])[0])
    out = {key: plain(value) for key, value in recipe_values.items() if plain(value) is not None}
    for key, value in given.items():
        if value != defaults.get(key) and plain(value) is not None:
            out[key] = plain(value)
    return out


def cmd_train(argv: list[str]) -> int:
    from .recipe import load_recipe, stages
    from .runner import run_stage

    method_name = argv[0] if argv and not argv[0].startswith("-") else None
    flags = argv[1:] if method_name else list(argv)
    recipe = None
    if "--config" in flags:
        i = flags.index("--config")
        if i + 1 >= len(flags):
            raise CLIError("--config needs a path to a YAML recipe")
        recipe = load_recipe(flags[i + 1])
        flags = flags[:i] + flags[i + 2 :]
    if method_name is None and recipe is None:
        if "-h" in flags or "--help" in flags or not flags:
            print(
                "usage: trl-ext train METHOD [flags] | trl-ext train --config recipe.yaml [flags]\n"
                "Methods: " + ", ".join(r.name for r in registry().components("method"))
            )
            return 0 if flags else EXIT_USAGE
        raise CLIError("Name a method (`trl-ext train asft ...`) or a recipe (`--config recipe.yaml`).")
    plan = stages(recipe, method_name) if recipe else [{"method": method_name}]
    # Parse every stage before training any, so a bad flag in stage 3 fails in seconds, not hours.
    parsed = []
    for values in plan:
        values = dict(values)
        name = values.pop("method")
        parsed.append((name, parse_stage(name, flags, values), values))
    previous_output = None
    for i, (name, (script_args, config, model_args, ext), values) in enumerate(parsed):
        if previous_output and "model_name_or_path" not in values and "--model_name_or_path" not in flags:
            model_args.model_name_or_path = previous_output
        if len(parsed) > 1:
            print(f"=== stage {i + 1}/{len(parsed)}: {name} -> {config.output_dir}", flush=True)
        stage_recipe = {"method": name, **explicit_values(name, flags, values)}
        previous_output = run_stage(name, script_args, config, model_args, ext, recipe=stage_recipe)
    print(f"Model saved to {previous_output}")
    return 0


# --- transform ---------------------------------------------------------------------------------------------------------
def cmd_transform(argv: list[str]) -> int:
    from .data import load_dataset
    from .specs import parse_value

    parser = argparse.ArgumentParser(prog="trl-ext transform", description="Run a registered transform on a dataset.")
    parser.add_argument("name")
    parser.add_argument("--dataset_name", required=True)
    parser.add_argument("--dataset_config", default=None)
    parser.add_argument("--split", default=None, help="Only this split (default: every split).")
    parser.add_argument("--model_name_or_path", default=None, help="Model for transforms that score with one.")
    parser.add_argument("--output", required=True, help="A .jsonl file, or a folder for `save_to_disk`.")
    args, rest = parser.parse_known_args(argv)
    options = _options_from_flags(rest, parse_value)
    record = registry().get("transform", args.name)
    dataset = load_dataset(args.dataset_name, args.dataset_config)
    splits = [args.split] if args.split else list(dataset)
    from .runner import check_inputs

    for split in splits:
        check_inputs(
            record.required_columns, dataset[split].column_names, f"transform {record.name!r}", args.dataset_name
        )
    if record.needs_model:
        from .models import load_model, load_tokenizer

        name = args.model_name_or_path or "smollm2-135m"
        options = {"model": load_model(name), "tokenizer": load_tokenizer(name), **options}
    fn = record.build(**options)
    out_path = Path(args.output)
    for split in splits:
        before = dataset[split]
        after = fn(before)
        added = [c for c in after.column_names if c not in before.column_names]
        removed = [c for c in before.column_names if c not in after.column_names]
        print(
            f"{record.name} on {args.dataset_name} [{split}]: {len(before)} rows -> {len(after)} rows; "
            f"columns added: {added or '-'}, removed: {removed or '-'}"
        )
        summary = getattr(fn, "summary", None)
        for key, value in (summary if isinstance(summary, dict) else {}).items():
            print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
        dataset[split] = after
    if out_path.suffix == ".jsonl":
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if len(splits) == 1:
            dataset[splits[0]].to_json(str(out_path), lines=True)
            print(f"Wrote {out_path}")
        else:
            for split in splits:
                target = out_path.with_name(f"{out_path.stem}.{split}.jsonl")
                dataset[split].to_json(str(target), lines=True)
                print(f"Wrote {target}")
    else:
        from datasets import DatasetDict

        DatasetDict({s: dataset[s] for s in splits}).save_to_disk(str(out_path))
        print(f"Saved to {out_path} (load with datasets.load_from_disk or --dataset_name {out_path})")
    return 0


def _options_from_flags(rest: list[str], parse_value) -> dict[str, Any]:
    options: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        key = rest[i]
        if not key.startswith("--"):
            raise CLIError(f"Unexpected argument {key!r}; transform options look like --key value")
        if "=" in key:
            k, v = key[2:].split("=", 1)
            options[k] = parse_value(v)
            i += 1
        elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            options[key[2:]] = parse_value(rest[i + 1])
            i += 2
        else:
            options[key[2:]] = True
            i += 1
    return options


# --- new-plugin / bench ----------------------------------------------------------------------------------------------
def cmd_new_plugin(args: argparse.Namespace) -> int:
    from .scaffold import create_plugin

    paths = create_plugin(args.slug, args.dest)
    for path in paths:
        print(f"created {path}")
    print(
        f"\nNext: fill in the paper's loss in {Path(args.dest) / args.slug / 'trainer.py'}, then run "
        f"`pytest {Path(args.dest) / args.slug}`."
    )
    return 0


def cmd_bench(argv: list[str]) -> int:
    from .bench import main as bench_main

    return bench_main(argv)


# --- entry point -----------------------------------------------------------------------------------------------------
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-ext", description="Recent post-training papers as TRL plugins.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="Everything registered: methods, rewards, transforms, ...")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--family")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="A component's paper, config fields, data columns and an example command.")
    p.add_argument("name")
    p.add_argument("--kind", choices=KINDS)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("plugins", help="Each discovered plugin with its version and load status.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("new-plugin", help="Scaffold a working plugin folder for a new paper.")
    p.add_argument("slug")
    p.add_argument("--dest", default="plugins")
    p.set_defaults(func=cmd_new_plugin)
    for name, help_text in (
        ("train", "Train METHOD with TRL-style flags, or a YAML recipe (--config)."),
        ("transform", "Run a registered transform on a dataset and write the result."),
        ("bench", "Time METHOD's training step and memory against TRL's own trainer."),
    ):
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


PASSTHROUGH = {"train": cmd_train, "transform": cmd_transform, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .data import DatasetLoadError
    from .models import ModelLoadError
    from .recipe import RecipeError
    from .runner import DatasetColumnError, DistributedSetupError
    from .specs import SpecError

    expected = (
        CLIError,
        ComponentError,
        RecipeError,
        DatasetColumnError,
        DatasetLoadError,
        DistributedSetupError,
        ModelLoadError,
        SpecError,
        FileExistsError,
        FileNotFoundError,
    )
    try:
        if argv and argv[0] in PASSTHROUGH:
            return PASSTHROUGH[argv[0]](argv[1:])
        args = make_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse has printed its usage error (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except expected as exc:
        print(f"trl-ext: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # config validation (__post_init__) and TRL's argument checks
        if os.environ.get("TRL_EXT_DEBUG"):
            raise
        print(f"trl-ext: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
