"""`trl-ext list | info | plugins`: what is installed, what each component needs, and which plugins failed to load."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from trl_ext.plugin.records import Component, Method, Recipe
from trl_ext.plugin.registry import UnknownComponentError, registry


def cmd_list(args: argparse.Namespace) -> int:
    _warn_allow_list()
    records = registry().components(args.kind, args.family)
    if args.json:
        print(json.dumps([r.summary() for r in records], indent=2))
        return 0
    rows = [(r.name, r.kind, str(r.family or ""), r.plugin, _paper_cell(r)) for r in records]
    _print_table(("NAME", "KIND", "FAMILY", "PLUGIN", "PAPER"), rows)
    broken = [p for p in registry().plugins.values() if p.status != "ok"]
    if broken:
        print(f"\n{len(broken)} plugin(s) failed to load: {', '.join(p.name for p in broken)} (see `trl-ext plugins`)")
    return 0


def _warn_allow_list() -> None:
    """Name the TRL_EXT_PLUGINS entries that match no installed plugin, on stderr (stdout may be --json)."""
    notice = registry().allow_list_notice()
    if notice:
        print(f"trl-ext: warning: {notice}", file=sys.stderr)


def _paper_cell(record: Component) -> str:
    if record.paper is None:
        return ""
    return f"{record.paper.title[:48]}" + (f" (arXiv:{record.paper.arxiv})" if record.paper.arxiv else "")


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.check:
        return _check_plugins(args)
    _warn_allow_list()
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
    for conflict in reg.shadowed:
        print(f"\nconflict: {conflict.message()}")
    return 0


def _check_plugins(args: argparse.Namespace) -> int:
    """Import each plugin in a child process: finds the one that exits (`os._exit`) or hangs at import."""
    from trl_ext.plugin.check import add_conflicts, check_plugins, plugin_names

    results = check_plugins(plugin_names(), timeout=args.timeout)
    add_conflicts(results)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        for result in results:
            print(result.line())
    return 0 if all(r.status == "ok" for r in results) else 1


def find_any(name: str, kind: str | None = None) -> Component:
    reg = registry()
    if kind:
        return reg.get(kind, name)
    matches = [r for r in reg.components() if r.name == name]
    if not matches:
        raise UnknownComponentError("component", name, {r.name for r in reg.components()})
    return matches[0]


def cmd_info(args: argparse.Namespace) -> int:
    from trl_ext.run.bases import training_base

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
        base_config = _trl_base(record.config)  # the config is imported (its fields are listed), the trainer is not
        base = training_base(record.base)
        base_trainer = base.trainer.rpartition(":")[2]
        print(
            f"\nBased on TRL's {base_trainer}: every `trl {base.command}` flag applies "
            f"({base_config.__name__}, ModelConfig, ScriptArguments)."
        )
        shapes = " | ".join("+".join(s) for s in base.column_shapes)
        extra = _method_columns(record)
        print(f"Dataset columns: {shapes}" + (f"; plus {', '.join(extra)}" if extra else ""))
        _print_optional_columns(record)
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
    elif isinstance(record, Recipe):
        _print_recipe(record)
    else:
        columns_for = getattr(record, "columns_for", None)
        cols = columns_for() if columns_for else list(getattr(record, "required_columns", ()) or ())
        if cols:
            print(f"Dataset columns: {', '.join(cols)}")
        _print_optional_columns(record)
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
            example = record.example or f"trl-ext train grpo --rewards {record.name} --dataset_name data.jsonl"
            print(f"\nExample:\n  {example}")
        elif record.kind == "transform":
            example = record.example or f"trl-ext transform {record.name} --dataset_name data.jsonl --output out.jsonl"
            print(f"\nExample:\n  {example}")
        elif record.kind == "logits_processor":
            example = record.example or (
                f"trl-ext generate --model_name_or_path M --dataset_name data.jsonl --logits_processors {record.name}"
            )
            print(f"\nExample:\n  {example}")
    if record.paper and record.paper.citation:
        print(f"\nCitation:\n{record.paper.citation}")
    return 0


def _print_recipe(record: Recipe) -> None:
    """The stages in order (method and output of each), then the recipe itself as the YAML `--config` takes."""
    import yaml

    from trl_ext.run.recipe import checked_recipe, stages

    recipe = checked_recipe(record.load(), f"recipe {record.name!r}")
    plan = stages(recipe)
    print(f"\nStages ({len(plan)}; each trains the previous one's output unless it names a model):")
    for i, stage in enumerate(plan):
        print(f"  {i + 1}. {stage['method']}" + (f" -> {stage['output_dir']}" if "output_dir" in stage else ""))
    print("\nRecipe (flags given on the command line apply to every stage):")
    print("  " + yaml.safe_dump(recipe, sort_keys=False).rstrip().replace("\n", "\n  "))
    if isinstance(record.source, str):
        print(f"\nShipped in the plugin as {record.source}.")
    print(f"\nExample:\n  {record.example or f'trl-ext train {record.name}'}")
    print("A rerun of the same command keeps the finished stages and resumes the interrupted one.")


def _method_columns(method: Method) -> list[str]:
    """The columns a method needs at its default config (they may depend on the config's fields)."""
    if not callable(method.required_columns):
        return list(method.required_columns)
    import warnings

    try:
        with warnings.catch_warnings():  # a config's deprecation notices would land in the middle of the listing
            warnings.simplefilter("ignore")
            config = method.config(output_dir="/tmp/trl-ext-info", bf16=False, use_cpu=True)
        return method.columns_for(config)
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


def _print_optional_columns(record: Component) -> None:
    if record.optional_columns:
        print("Optional columns (read when present):")
        for column, effect in record.optional_columns.items():
            print(f"  {column}: {effect}")
