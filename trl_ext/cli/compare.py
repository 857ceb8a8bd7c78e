"""`trl-ext compare ARM [ARM ...] --eval METRIC [flags]` or `trl-ext compare --config compare.yaml`.

Every flag that `trl-ext train` takes applies to every arm (model, data, seed, budget, optimiser); the `--eval*`
flags say how the final models are measured. A YAML holds the same: `arms:` (each `LABEL=METHOD:key=value` or a
mapping with `method`, `label` and keys), `eval:`, the `eval_*` keys, and any training key shared by the arms.
"""

from __future__ import annotations

import argparse
from typing import Any

from trl_ext.cli.errors import CLIError

EVAL_KEYS = {
    "eval": (
        "exact_match",
        str,
        "the metric: exact_match, contains, numeric_match, judge:judge=pkg.mod:fn, pass@k:k=K, perplexity, "
        "choice:options=[...] (rank classification), unchanged (locality), length, reward:NAME, callback:NAME "
        "(see trl_ext.compare.metrics)",
    ),
    "eval_dataset": (None, str, "the dataset evaluated on (default: the arms' --dataset_name)"),
    "eval_dataset_config": (None, str, "its config / built-in form"),
    "eval_split": ("test", str, "the held-out split"),
    "eval_transforms": (
        None,
        str,
        "model-free transforms applied to the evaluation dataset before its rows are picked, e.g. the test part "
        "of a split the arms train on (few_shot_split:part=test:k=3)",
    ),
    "eval_rows": (64, int, "how many of its rows (the first ones)"),
    "eval_every": (0, int, "also measure every N optimiser steps while training, for the plot (0: the final model)"),
    "eval_max_new_tokens": (64, int, "generation length at evaluation, the same for every arm"),
    "eval_batch_size": (16, int, "rows per generation / scoring batch"),
    "eval_groups": (
        None,
        str,
        "a column of the evaluation rows (a task, a skill): the metric per value of it as well, one more table (a "
        "row whose column holds a list counts in each of its values)",
    ),
}


def build_parser(with_arms: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trl-ext compare",
        description="Train several methods on the same model, data and budget; one table, one plot, one CSV.",
        epilog="Other flags go to every arm as `trl-ext train` takes them (--model_name_or_path, --dataset_name, "
        "--max_steps, --learning_rate, --seed, ...). A rerun of the same command keeps the finished arms.",
        allow_abbrev=False,
    )
    if with_arms:  # for --help; `parse_command` takes the arms as the words before the first flag
        parser.add_argument(
            "arms", nargs="*", help="LABEL=METHOD:key=value, METHOD, or METHOD:key=value; `base`: the untrained model"
        )
    parser.add_argument("--config", help="A YAML with arms:, eval: and shared training keys.")
    parser.add_argument(
        "--output_dir", default=None, help="Where the arms and the report go (default outputs/compare)."
    )
    parser.add_argument(
        "--also_eval",
        action="append",
        default=None,
        metavar="METRIC",
        help="Another metric for every arm's final model, as --eval takes it (repeat the flag for more; YAML: "
        "also_eval: [numeric_match, {name: pass@k, k: 4}]): columns beside the main one, each with its 95%% "
        "interval; --eval stays the one plotted over steps and summarised over seeds.",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        help="Check every arm's flags, options and data and the evaluation rows, print the plan, train nothing.",
    )
    parser.add_argument(
        "--head_to_head",
        action="append",
        default=None,
        metavar="A:B",
        help="Arm A against arm B on the same evaluation rows, for every metric: A's wins, ties and losses, its win "
        "rate (wins / rows) and the paired difference A - B with its 95%% interval (repeat the flag for more pairs; "
        "YAML: head_to_head: [[A, B]]).",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="Train every arm once per seed (0,1,2): rows LABEL-s0, LABEL-s1, ... and a table of each arm's metric "
        "over its seeds (mean, sd, min, max). In a YAML: seeds: [0, 1, 2].",
    )
    for key, (default, kind, help_text) in EVAL_KEYS.items():
        said = f"{help_text} (default {default})" if default is not None and "default" not in help_text else help_text
        parser.add_argument(f"--{key}", type=kind, default=None, help=said)
    return parser


def parse_command(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(compare's own arguments, the flags for every arm). The arms are the words before the first flag: left to
    argparse, the value of an arm flag it does not know (`--config c.yaml --model_name_or_path M`) would be read as
    an arm."""
    first_flag = next((i for i, word in enumerate(argv) if word.startswith("-")), len(argv))
    args, flags = build_parser(with_arms=False).parse_known_args(argv[first_flag:])
    args.arms = argv[:first_flag]
    return args, flags


def comparison_from(argv: list[str]):
    """The Comparison a command line (and its --config YAML) asks for."""
    from trl_ext.compare.arms import parse_arms, with_seeds
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.metrics import parse_metric
    from trl_ext.run.recipe import load_recipe

    args, flags = parse_command(argv)
    config: dict[str, Any] = dict(load_recipe(args.config)) if args.config else {}
    specs = list(args.arms) or list(config.pop("arms", []) or [])
    if args.arms and "arms" in config:
        raise CLIError("Give the arms on the command line or in the YAML's arms:, not both.")
    config.pop("arms", None)
    if not specs:
        raise CLIError(
            "Name the arms first, before any flag: trl-ext compare sft asft ... --eval ... (or arms: in --config)."
        )
    values = {}
    for key, (default, _kind, _) in EVAL_KEYS.items():
        in_config = config.pop(key, default)  # never left for the arms: it is compare's, not a training key
        given = getattr(args, key)
        values[key] = given if given is not None else in_config
    metric = _metric_spec(values["eval"])
    also = args.also_eval if args.also_eval is not None else config.pop("also_eval", None) or []
    config.pop("also_eval", None)
    also = [_metric_spec(item) for item in (also if isinstance(also, list) else [also])]
    pairs = _pairs(args.head_to_head if args.head_to_head is not None else config.pop("head_to_head", None) or [])
    config.pop("head_to_head", None)
    seed = _seed(flags, config)
    arms = parse_arms(specs)
    seeds = _seeds(args.seeds, config.pop("seeds", None), flags)
    if seeds:
        arms = with_seeds(arms, seeds)
    return Comparison(
        arms=arms,
        metric=parse_metric(metric),
        also=[parse_metric(item) for item in also],
        output_dir=args.output_dir or config.pop("output_dir", "outputs/compare"),
        common=config,
        flags=flags,
        eval_dataset=values["eval_dataset"],
        eval_dataset_config=values["eval_dataset_config"],
        eval_split=values["eval_split"],
        eval_transforms=values["eval_transforms"],
        eval_rows=int(values["eval_rows"]),
        eval_every=int(values["eval_every"]),
        max_new_tokens=int(values["eval_max_new_tokens"]),
        eval_batch_size=int(values["eval_batch_size"]),
        eval_groups=values["eval_groups"],
        seed=seed,
        head_to_head=pairs,
    )


def _pairs(items: Any) -> list[tuple[str, str]]:
    """`A:B` strings or two-item lists as (A, B) pairs."""
    pairs = []
    for item in items if isinstance(items, list) else [items]:
        pair = item.split(":") if isinstance(item, str) else item
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(str(x).strip() for x in pair):
            raise CLIError(f"head_to_head takes pairs of arm labels, A:B or [A, B], got {item!r}.")
        pairs.append((str(pair[0]).strip(), str(pair[1]).strip()))
    return pairs


def _metric_spec(value: Any) -> str:
    """A metric as `--eval` takes it, from a string or a YAML mapping (`{name: pass@k, k: 4}`)."""
    if isinstance(value, dict):
        from trl_ext.run.specs import format_spec

        return format_spec(str(value["name"]), {k: v for k, v in value.items() if k != "name"})
    return str(value)


def _seeds(given: str | None, in_config: Any, flags: list[str]) -> list[int] | None:
    """`--seeds 0,1,2` (or the YAML's `seeds: [0, 1, 2]`) as ints; refused beside a command-line --seed, which would
    override every arm's own seed and train the same run again."""
    from trl_ext.compare.comparison import flag_value

    value = given if given is not None else in_config
    if value is None:
        return None
    if flag_value(flags, "seed") is not None:
        raise CLIError("Give either --seed or --seeds: a command-line --seed would override every arm's seed.")
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    try:
        return [int(str(item).strip()) for item in items]
    except ValueError:
        raise CLIError(f"--seeds takes integers separated by commas (0,1,2), got {value!r}.") from None


def _seed(flags: list[str], config: dict[str, Any]) -> int:
    from trl_ext.compare.comparison import flag_value

    value = flag_value(flags, "seed")
    return int(value) if value is not None else int(config.get("seed", 42))  # TrainingArguments' default seed


def main(argv: list[str]) -> int:
    import os

    from trl_ext.compare.report import format_table
    from trl_ext.compare.run import dry_run, run_comparison

    if not argv or argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0 if argv else 2
    comparison = comparison_from(argv)
    if parse_command(argv)[0].dry_run:
        print(dry_run(comparison))
        return 0
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        report = run_comparison(comparison)
        if several:
            import torch.distributed as dist

            # the main process measures the final models alone: the others wait for it here, not in interpreter
            # exit, where a rank that had torn its connections down under the busy main one once died of SIGABRT
            if dist.is_initialized():
                dist.barrier()
    finally:
        if several:
            from trl_ext.training.sharding import close_process_group

            close_process_group()
    if report is not None:
        print(format_table(report))
        print(f"\nWrote {comparison.output_dir}/compare.json, compare.csv, compare.md and compare.png")
    return 0
