"""`trl-ext train` (a method or a YAML recipe of stages) and `trl-ext transform` (one registered transform)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trl_ext.cli.errors import EXIT_USAGE, CLIError
from trl_ext.plugin.registry import registry


def cmd_train(argv: list[str]) -> int:
    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.recipe import checked_recipe, load_recipe, rooted_at_command_line, stages
    from trl_ext.run.stage import describe_plan, run_stages

    method_name = argv[0] if argv and not argv[0].startswith("-") else None
    flags = argv[1:] if method_name else list(argv)
    dry_run = "--dry_run" in flags  # check everything that needs no model, print the plan, train nothing
    flags = [f for f in flags if f != "--dry_run"]
    recipe = None
    if "--config" in flags:
        i = flags.index("--config")
        if i + 1 >= len(flags):
            raise CLIError("--config needs a path to a YAML recipe")
        recipe = load_recipe(flags[i + 1])
        flags = flags[:i] + flags[i + 2 :]
    if method_name and _is_registered_recipe(method_name):  # `trl-ext train NAME`: a plugin's recipe
        if recipe is not None:
            raise CLIError(f"{method_name!r} is a registered recipe; give either its name or --config, not both.")
        recipe = checked_recipe(registry().get("recipe", method_name).load(), f"recipe {method_name!r}")
        method_name = None
    if method_name is None and recipe is None:
        if "-h" in flags or "--help" in flags or not flags:
            print(
                "usage: trl-ext train METHOD|RECIPE [flags] [--dry_run] | trl-ext train --config recipe.yaml [flags]\n"
                "--dry_run: parse every stage and check its data, print the plan; nothing is trained or written.\n"
                "Methods: " + ", ".join(r.name for r in registry().components("method")) + "\n"
                "Recipes: " + (", ".join(r.name for r in registry().components("recipe")) or "none installed")
            )
            return 0 if flags else EXIT_USAGE
        raise CLIError("Name a method (`trl-ext train asft ...`) or a recipe (`--config recipe.yaml`).")
    if recipe is not None and "stages" in recipe:  # recipe-level: not applied to each stage alone
        output_dir, flags = _pop_flag(flags, "output_dir")
        model, flags = _pop_flag(flags, "model_name_or_path")
        recipe = rooted_at_command_line(recipe, output_dir, model)
    plan = stages(recipe, method_name) if recipe else [{"method": method_name}]
    # Parse every stage before training any, so a bad flag in stage 3 fails in seconds, not hours.
    parsed = []
    for i, values in enumerate(plan):
        values = dict(values)
        name = values.pop("method")
        parsed.append(parse_stage(name, flags, values, first=i == 0, in_recipe=len(plan) > 1))
    if dry_run:
        print(describe_plan(parsed))
        return 0
    try:
        output = run_stages(parsed)
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun / accelerate: leave the group cleanly
            from trl_ext.training.sharding import close_process_group

            close_process_group()
    if any(output == stage.config.output_dir for stage in parsed):
        print(f"Model saved to {output}")
    else:  # every stage was skipped (skip_if_empty)
        print(f"No stage trained (every stage was skipped); the model is still {output}")
    return 0


def _pop_flag(flags: list[str], name: str) -> tuple[str | None, list[str]]:
    """The value of `--name V` / `--name=V` (the last one given, as argparse takes it) and the flags without it."""
    value, rest, i = None, [], 0
    while i < len(flags):
        flag = flags[i]
        if flag == f"--{name}":
            if i + 1 >= len(flags):
                raise CLIError(f"--{name} needs a value")
            value, i = flags[i + 1], i + 2
            continue
        if flag.startswith(f"--{name}="):
            value = flag.split("=", 1)[1]
        else:
            rest.append(flag)
        i += 1
    return value, rest


def _is_registered_recipe(name: str) -> bool:
    """A registered recipe, and no method of that name (a method wins: `trl-ext train sft` stays TRL's SFT)."""
    names = {kind: {r.name for r in registry().components(kind)} for kind in ("method", "recipe")}
    return name in names["recipe"] and name not in names["method"]


def cmd_transform(argv: list[str]) -> int:
    from trl_ext.data import load_dataset
    from trl_ext.data.curation import curation_output
    from trl_ext.run.arguments import DEFAULT_MODEL
    from trl_ext.run.checks import check_inputs, check_options
    from trl_ext.run.specs import parse_value
    from trl_ext.run.stage import apply_transforms, transform_reporter

    # No abbreviations: a transform option such as --mode must not be taken for --model_name_or_path.
    parser = argparse.ArgumentParser(
        prog="trl-ext transform", description="Run a registered transform on a dataset.", allow_abbrev=False
    )
    parser.add_argument("name")
    parser.add_argument("--dataset_name", required=True)
    parser.add_argument("--dataset_config", default=None)
    parser.add_argument("--split", default=None, help="Only this split (default: every split).")
    parser.add_argument("--model_name_or_path", default=None, help="Model for transforms that score with one.")
    parser.add_argument("--output", required=True, help="A .jsonl file, or a folder for `save_to_disk`.")
    args, rest = parser.parse_known_args(argv)
    options = _options_from_flags(rest, parse_value)
    record = registry().get("transform", args.name)
    check_options(record, options)
    dataset = load_dataset(args.dataset_name, args.dataset_config)
    splits = [args.split] if args.split else list(dataset)
    for split in splits:  # every split's columns before a model loads
        check_inputs(
            record.columns_for(options), dataset[split].column_names, f"transform {record.name!r}", args.dataset_name
        )
    model = tokenizer = None
    if record.needs_model:
        from trl_ext.models import load_model, load_tokenizer

        name = args.model_name_or_path or DEFAULT_MODEL
        model, tokenizer = load_model(name), load_tokenizer(name)
    out_path = Path(args.output)

    steps = [(record, options)]
    # Curation transforms (trl_ext.data.curation) keep their per-row scores, decisions, summary and finished batches
    # (to resume) in `<output>.curation/<transform>/<split>/`; under torchrun each rank scores its share of the rows.
    try:
        with curation_output(out_path.with_name(out_path.name + ".curation")):
            apply_transforms(
                steps,
                dataset,
                args.dataset_name,
                model=model,
                tokenizer=tokenizer,
                splits=splits,
                report=transform_reporter(args.dataset_name),
            )
        if int(os.environ.get("RANK", "0")) != 0:  # a sharded run: rank 0 writes the (identical) result
            return 0
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from trl_ext.training.sharding import close_process_group

            close_process_group()
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
