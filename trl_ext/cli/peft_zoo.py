"""`trl-ext peft-zoo`: every peft method (and trl-ext tuner) at one trainable-parameter budget, as a table; with
`--output DIR` each config is saved to DIR/<method>/ for `--adapter peft:config=DIR/<method>`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trl_ext.cli.errors import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model_name_or_path", required=True, help="Hub id, local folder or built-in alias (only its config is read)."
    )
    p.add_argument(
        "--budget",
        type=float,
        default=0.005,
        help="Trainable parameters: a fraction of the base model's below 1, a count from 1 up (default 0.005).",
    )
    p.add_argument("--methods", nargs="+", help="Methods to build (default: every method the zoo offers).")
    p.add_argument("--tol", type=float, default=0.05, help="Relative tolerance for 'matched' (default 0.05).")
    p.add_argument(
        "--target_modules", default="all-linear", help="peft target_modules for methods that take it (all-linear)."
    )
    p.add_argument("--output", help="Write each config to OUTPUT/<method>/adapter_config.json and a zoo.json.")
    p.add_argument("--json", action="store_true", help="Print the rows as JSON instead of a table.")


def cmd_peft_zoo(args: argparse.Namespace) -> int:
    from trl_ext.adapters import zoo

    if args.budget <= 0:
        raise CLIError(f"--budget must be positive, got {args.budget}")
    budget: int | float = args.budget if args.budget < 1 else int(args.budget)
    methods = zoo.list_methods()
    names = args.methods or list(methods)
    unknown = [n for n in names if n not in methods]
    if unknown:
        raise CLIError(f"unknown peft-zoo method(s) {', '.join(unknown)}; one of: {', '.join(sorted(methods))}")
    meta = zoo.base_model_on_meta(args.model_name_or_path)
    rows, failed = [], {}
    for name in names:
        try:
            result = zoo.solve(name, meta, budget, tol=args.tol, target_modules=args.target_modules)
        except Exception as exc:  # one method peft refuses for this model must not hide the others
            failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            continue
        rows.append(result)
        if args.output:
            result.config.save_pretrained(str(Path(args.output) / name))
    if args.output:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        (Path(args.output) / "zoo.json").write_text(json.dumps(_as_json(rows, failed, args), indent=2) + "\n")
    if args.json:
        json.dump(_as_json(rows, failed, args), sys.stdout, indent=2)
        print()
    else:
        _print_table(rows, failed, meta, budget)
    return 0 if rows else 1


def _as_json(rows, failed, args) -> dict:
    return {
        "model": args.model_name_or_path,
        "budget": args.budget,
        "methods": [
            {
                "method": r.method,
                "category": r.category,
                "knob": r.knob,
                "value": r.value,
                "trainable": r.trainable,
                "total": r.total,
                "fraction": r.fraction,
                "target": r.target,
                "budget_matched": r.budget_matched,
            }
            for r in rows
        ],
        "failed": failed,
    }


def _print_table(rows, failed, meta, budget) -> None:
    from trl_ext.adapters.zoo import count_parameters, unsupported

    total = count_parameters(meta)
    target = rows[0].target if rows else None
    print(f"base model: {total:,} parameters; budget {budget} = {target:,} trainable" if target else "")
    header = ("method", "category", "knob", "trainable", "fraction", "matched")
    table = [header] + [
        (
            r.method,
            r.category,
            f"{r.knob}={_fmt(r.value)}" if r.knob else "(fixed)",
            f"{r.trainable:,}",
            f"{r.fraction:.5f}",
            "yes" if r.budget_matched else "no",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(
            "  ".join(
                cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for name, why in failed.items():
        print(f"not built: {name}: {why}")
    skipped = unsupported()
    if skipped:
        print("peft types not in the zoo: " + "; ".join(f"{t.lower()} ({why})" for t, why in skipped.items()))


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
