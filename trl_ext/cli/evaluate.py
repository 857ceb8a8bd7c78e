"""`trl-ext evaluate`: run registered evaluation callbacks (any built on `GenerationEvalCallback`: their
`evaluate(model, tokenizer)`) on a saved model, or on every checkpoint of a run folder (the figures over steps).

It prints one table (a row per figure, a column per checkpoint), writes the figures as JSON and draws each
callback's figures over steps as a PNG (`trl_ext.evaluation.plots`) next to the run's logs: `<out>/evaluate.json` and
`<out>/plots/evaluate_<callback>.png`, `<out>` being `--output_dir`, else the run folder, else the model folder.

A run folder's models are its `checkpoint-N` folders (step N); its root model (what `save_model` wrote at the end)
is evaluated too when no checkpoint holds the final step (read from the last checkpoint's trainer_state.json:
`global_step` < `max_steps`), or when it has no checkpoint at all. A LoRA folder is loaded on the base model its
adapter_config.json names, merged.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

from trl_ext.cli.errors import CLIError

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--callbacks",
        required=True,
        metavar="NAME[:key=value...][,NAME...]",
        help="Registered evaluation callbacks (`trl-ext list --kind callback`), e.g. rlhf_diversity:num_samples=4.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--model_name_or_path", help="A saved model (folder, LoRA folder, built-in alias or Hub id).")
    where.add_argument("--run_dir", help="A training output folder: each checkpoint-N is evaluated (step N).")
    p.add_argument("--output_dir", help="Where evaluate.json and plots/ go (default: the run or model folder).")
    p.add_argument("--seed", type=int, default=0, help="torch seed set before each model's evaluation (default 0).")


def models_of_run(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of each model of a run folder, by step (see the module's docstring)."""
    from trl_ext.run.checks import saved_model_files

    if not run_dir.is_dir():
        raise CLIError(f"--run_dir {run_dir} is not a folder")
    found = sorted(
        (int(m.group(1)), child)
        for child in run_dir.iterdir()
        if child.is_dir() and (m := _CHECKPOINT.match(child.name)) and saved_model_files(child)
    )
    if saved_model_files(run_dir):
        final = _final_step(found)
        if final is not None:
            found.append((final, run_dir))
    if not found:
        raise CLIError(f"--run_dir {run_dir} holds no saved model and no checkpoint-N folder with one")
    return found


def _final_step(checkpoints: list[tuple[int, Path]]) -> int | None:
    """The root model's step, or None when the last checkpoint already is the final model."""
    if not checkpoints:
        return 0
    step, folder = checkpoints[-1]
    state_file = folder / "trainer_state.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    max_steps = state.get("max_steps")
    if isinstance(max_steps, int) and max_steps > step:
        return max_steps  # the run stopped at max_steps, after its last checkpoint
    return None


def load_for_eval(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a saved model as `trl_ext.models.load_trained` reads it: a LoRA folder merged into the
    base its adapter_config.json names, a method's own format (lta-thinker) through its loader."""
    from trl_ext.models import load_tokenizer, load_trained

    path_str = str(path)
    adapter = Path(path_str) / "adapter_config.json"
    if adapter.exists():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base:
            raise CLIError(f"{adapter} names no base_model_name_or_path")
        has_tokenizer = any((Path(path_str) / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
        return load_trained(path_str, base), load_tokenizer(path_str if has_tokenizer else base)
    return load_trained(path_str), load_tokenizer(path_str)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from trl_ext.evaluation.callback import GenerationEvalCallback
    from trl_ext.run.arguments import resolve_steps

    steps = resolve_steps("callback", args.callbacks)
    if not steps:
        raise CLIError("--callbacks names no callback")
    callbacks = [record.build(**options) for record, options in steps]
    for record, callback in zip((r for r, _ in steps), callbacks, strict=True):
        if not isinstance(callback, GenerationEvalCallback):
            raise CLIError(
                f"callback {record.name!r} is not an evaluation callback (built on "
                "trl_ext.evaluation.callback.GenerationEvalCallback): it has no evaluate(model, tokenizer)"
            )
    if args.run_dir:
        models = models_of_run(Path(args.run_dir))
        out = Path(args.output_dir or args.run_dir)
    else:
        from trl_ext.models import check_model_path

        check_model_path(args.model_name_or_path)
        models = [(0, Path(args.model_name_or_path))]
        local = Path(args.model_name_or_path)
        out = Path(args.output_dir) if args.output_dir else local if local.is_dir() else Path("evaluate")

    rows: list[dict[str, Any]] = []
    for step, folder in models:
        model, tokenizer = load_for_eval(args.model_name_or_path if not args.run_dir else folder)
        model.eval()
        figures: dict[str, dict[str, float]] = {}
        for record, callback in zip((r for r, _ in steps), callbacks, strict=True):
            torch.manual_seed(args.seed)
            with torch.no_grad():
                result = callback.evaluate(model, tokenizer)
            figures[record.name] = {k: float(v) for k, v in result.items()}
            callback.history.append({**figures[record.name], "step": step})
        rows.append({"step": step, "model": str(folder), "figures": figures})
        del model

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "evaluate.json"
    json_path.write_text(
        json.dumps({"callbacks": args.callbacks, "results": rows}, indent=2, default=_json_number) + "\n"
    )
    print(format_table(rows))
    print(f"Wrote {json_path}")
    for record, callback in zip((r for r, _ in steps), callbacks, strict=True):
        png = callback.plot(out / "plots" / f"evaluate_{record.name}.png")
        if png is not None:
            print(f"Wrote {png}")
    return 0


def format_number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A row per (callback, figure), a column per evaluated model (its step)."""
    keys = list(dict.fromkeys((cb, name) for row in rows for cb, figs in row["figures"].items() for name in figs))
    header = ["callback", "figure", *(f"step {row['step']}" for row in rows)]
    body = [
        [cb, name, *(format_number(row["figures"].get(cb, {}).get(name, math.nan)) for row in rows)]
        for cb, name in keys
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *body]]
    return "\n".join(lines)


def _json_number(value: Any) -> Any:
    return float(value)
