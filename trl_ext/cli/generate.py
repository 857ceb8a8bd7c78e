"""`trl-ext generate`: completions of a dataset's prompts under a model, optionally through registered logits
processors (decoding interventions that cannot go through GRPO's `generation_kwargs`), written as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trl_ext.cli.errors import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model_name_or_path", required=True, help="Hub id, local folder or built-in alias (smollm2-135m)."
    )
    p.add_argument("--dataset_name", required=True, help="Hub name, local file or folder, or builtin:NAME.")
    p.add_argument("--dataset_config", help="The dataset's config (for builtin:NAME, its form, e.g. grpo).")
    p.add_argument("--dataset_split", default="train", help="The split whose prompts are completed (default train).")
    p.add_argument("--num_samples", type=int, help="Complete only the first N prompts of the split (default all).")
    p.add_argument("--max_new_tokens", type=int, default=64, help="Tokens generated per prompt at most (default 64).")
    p.add_argument("--batch_size", type=int, default=8, help="Prompts per generate call (default 8).")
    p.add_argument(
        "--logits_processors",
        nargs="+",
        default=[],
        metavar="NAME[:key=value...]",
        help="Registered logits processors (`trl-ext list --kind logits_processor`), applied in order.",
    )
    p.add_argument("--do_sample", action="store_true", help="Sample instead of greedy decoding.")
    p.add_argument("--temperature", type=float, help="Sampling temperature (with --do_sample).")
    p.add_argument("--seed", type=int, default=0, help="Seed for sampling (default 0).")
    p.add_argument("--output", default="-", help="The JSON-lines file to write (default: standard output).")


def cmd_generate(args: argparse.Namespace) -> int:
    from trl_ext.plugin.registry import get
    from trl_ext.run.checks import check_options
    from trl_ext.run.specs import parse_spec

    for name, value in (("--num_samples", args.num_samples), ("--max_new_tokens", args.max_new_tokens)):
        if value is not None and value < 1:
            raise CLIError(f"{name} must be at least 1, got {value}")
    if args.batch_size < 1:
        raise CLIError(f"--batch_size must be at least 1, got {args.batch_size}")
    # Names and the dataset are checked before the model loads.
    processors = [
        (get("logits_processor", name), options) for name, options in map(parse_spec, args.logits_processors)
    ]
    for record, options in processors:
        if "tokenizer" in options:
            raise CLIError(f"logits processor {record.name!r}: the tokenizer is the model's, not an option")
        if record.needs_model and "model" in options:
            raise CLIError(f"logits processor {record.name!r}: the model is --model_name_or_path, not an option")
        check_options(record, options)
    rows = _load_rows(args)

    import torch

    from trl_ext.inference.generation import generate_completions
    from trl_ext.models import load_tokenizer, load_trained

    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model_name_or_path)
    model = load_trained(args.model_name_or_path)  # a run's folder too: LoRA merged, a method's own format
    processors = [
        (record, {**options, "model": model} if record.needs_model else options) for record, options in processors
    ]
    for record, options in processors:  # a bad option fails here, once, rather than at the first batch
        record.build(tokenizer=tokenizer, **options)
    sampling: dict[str, Any] = {"do_sample": args.do_sample}
    if args.temperature is not None:
        sampling["temperature"] = args.temperature
    outputs = generate_completions(
        model,
        tokenizer,
        [row["prompt"] for row in rows],
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        logits_processors=(
            (lambda: [record.build(tokenizer=tokenizer, **options) for record, options in processors])
            if processors
            else None
        ),
        **sampling,
    )
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row, generation in zip(rows, outputs, strict=True):
            record = {**row, "completion": generation.text, "num_completion_tokens": generation.num_tokens}
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output != "-":
        print(f"Wrote {len(rows)} completions to {args.output}", file=sys.stderr)
    return 0


def _load_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from trl_ext.data import load_dataset

    dataset = load_dataset(args.dataset_name, args.dataset_config, form="grpo")
    if args.dataset_split not in dataset:
        raise CLIError(f"Dataset {args.dataset_name} has no split {args.dataset_split!r}; splits: {list(dataset)}")
    split = dataset[args.dataset_split]
    if "prompt" not in split.column_names:
        raise CLIError(
            f"trl-ext generate reads the 'prompt' column (a string or a list of messages); dataset "
            f"{args.dataset_name} has the columns: {', '.join(split.column_names)}"
        )
    if args.num_samples is not None:
        split = split.select(range(min(args.num_samples, len(split))))
    return list(split)
