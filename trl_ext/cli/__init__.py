"""`trl-ext`: list | info | plugins | train | transform | generate | evaluate | new-plugin | bench | compare |
peft-zoo (one module per command group)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from trl_ext.cli.catalog import cmd_info, cmd_list, cmd_plugins
from trl_ext.cli.errors import EXIT_USAGE, CLIError
from trl_ext.cli.evaluate import add_arguments as add_evaluate_arguments
from trl_ext.cli.evaluate import cmd_evaluate
from trl_ext.cli.generate import add_arguments as add_generate_arguments
from trl_ext.cli.generate import cmd_generate
from trl_ext.cli.new_plugin import cmd_new_plugin
from trl_ext.cli.peft_zoo import add_arguments as add_peft_zoo_arguments
from trl_ext.cli.peft_zoo import cmd_peft_zoo
from trl_ext.plugin.records import KINDS, Family
from trl_ext.plugin.registry import ComponentError, registry

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-ext", description="Recent post-training papers as TRL plugins.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="Everything registered: methods, rewards, transforms, ...")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--family", choices=[f.value for f in Family])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="A component's paper, config fields, data columns and an example command.")
    p.add_argument("name")
    p.add_argument("--kind", choices=KINDS)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("plugins", help="Each discovered plugin with its version and load status.")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--check",
        action="store_true",
        help="Import each plugin in its own child process with a timeout: finds one that exits or hangs at import.",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="Seconds each plugin may take to import (--check).")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("new-plugin", help="Scaffold a working plugin for a new paper: an installable distribution.")
    p.add_argument("slug")
    p.add_argument(
        "--dest", help="The folder to write <slug>/ into (default: the current folder; plugins with --builtin)."
    )
    p.add_argument(
        "--builtin", action="store_true", help="Write a built-in plugin folder of trl-ext's own plugins/ instead."
    )
    p.set_defaults(func=cmd_new_plugin)
    p = sub.add_parser(
        "generate",
        help="Complete a dataset's prompts with a model, optionally through registered logits processors (JSONL).",
    )
    add_generate_arguments(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser(
        "evaluate",
        help="Run registered evaluation callbacks on a saved model or every checkpoint of a run (table, JSON, PNG).",
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser(
        "peft-zoo",
        help="Every peft method at one trainable-parameter budget: knob solved, survey category (configs to a dir).",
    )
    add_peft_zoo_arguments(p)
    p.set_defaults(func=cmd_peft_zoo)
    for name, help_text in (
        ("train", "Train METHOD with TRL-style flags, or a YAML recipe (--config)."),
        ("transform", "Run a registered transform on a dataset and write the result."),
        ("bench", "Time METHOD's step and memory against TRL's own trainer; GRPO: each reward's share of a step."),
        ("compare", "Train several methods on the same model, data and budget; one table, plot and CSV."),
    ):
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# Commands that parse their own flags (TRL's parser, the bench's): argparse hands them the rest of the line.
PASSTHROUGH = {
    "train": "trl_ext.cli.train:cmd_train",
    "transform": "trl_ext.cli.train:cmd_transform",
    "bench": "trl_ext.cli.bench:main",
    "compare": "trl_ext.cli.compare:main",
}


# Errors printed as one line, without a traceback, as (module, class). A module not imported yet cannot have raised
# its error, so they are looked up in sys.modules only: `list` and `--help` import no datasets, TRL or torch.
EXPECTED_ERRORS = (
    ("huggingface_hub.errors", "HfHubHTTPError"),  # e.g. --push_to_hub without a token, or a repo it may not write
    ("huggingface_hub.errors", "OfflineModeIsEnabled"),
    ("trl_ext.plugin.lazy", "ImportPathError"),  # a plugin's trainer, config or factory does not import
    ("trl_ext.models", "ModelLoadError"),
    ("trl_ext.run.checks", "DistributedSetupError"),
    ("builtins", "FileExistsError"),
    ("builtins", "FileNotFoundError"),
    # config validation (__post_init__), TRL's argument checks, and trl-ext's own subclasses (DatasetLoadError,
    # DatasetColumnError, RecipeError, SpecError)
    ("builtins", "ValueError"),
)


def expected_errors() -> tuple[type[BaseException], ...]:
    return (CLIError, ComponentError) + tuple(
        getattr(sys.modules[module], name) for module, name in EXPECTED_ERRORS if module in sys.modules
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv[:1] != ["plugins"] or "--check" not in argv:  # --check must not import the plugins in this process
            report_plugin_problems()
        if argv and argv[0] in PASSTHROUGH:
            module, _, function = PASSTHROUGH[argv[0]].partition(":")
            return getattr(importlib.import_module(module), function)(argv[1:])
        args = make_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse has printed its usage error (or --help); a message of ours has not
        if isinstance(exc.code, str):
            print(f"trl-ext: error: {exc.code}", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except Exception as exc:
        if not isinstance(exc, expected_errors()) or os.environ.get("TRL_EXT_DEBUG"):  # a traceback for a bug report
            raise
        print(f"trl-ext: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def report_plugin_problems() -> None:
    """One short stderr line per plugin that failed to load or lost a name conflict, on every command."""
    for line in registry().problems():
        print(f"trl-ext: warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
