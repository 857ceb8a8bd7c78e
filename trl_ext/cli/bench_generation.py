"""`trl-ext bench generation`: the cost of a sampling transform against a bare `model.generate` of the same rollouts.

Runs a registered transform that samples rollouts with the model (`rif_rft`: `num_rollouts` completions per prompt,
`batch_size` prompts per `generate` call, then scored by reward functions), built as `trl-ext transform NAME` builds
it, on the first `--rows` rows of a dataset, and, interleaved with it, the generation a user would write by hand:
the same prompts chat-templated, cut into the same batches (dataset order, left-padded), one
`model.generate(do_sample=True, top_k=0, temperature, top_p, num_return_sequences=K, max_new_tokens)` per batch under
`torch.no_grad()`, the settings read from the transform's options (its own defaults where not given). Each of the
bare side's batches starts from the random state the transform's `generate` call of that batch started from
(recorded on the transform's warm-up run), so both sides sample the same rollouts when they feed `generate` the same
inputs; the report says whether they did. Generated tokens count each returned sequence up to and including its
first stop token; times are medians over `--repeats` interleaved runs (taking turns at going first) after one
warm-up of each (the transform's over every row, the bare side's over one batch), every transform run in a fresh
curation directory (a finished run's saved batches would be resumed, not sampled). A transform below `LIMIT` of the
bare generation's tokens/s (prompts/s when the transform's tokens cannot be seen) is a defect to fix, and is flagged.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trl_ext.cli.bench_rewards import device_name
from trl_ext.cli.bench_scoring import timed
from trl_ext.cli.errors import CLIError

LIMIT = 0.90  # a sampling transform below 90% of the bare generation's speed is a defect

# The transform options the bare side reads (name -> its `generate` meaning); the first two must exist.
GENERATION_OPTIONS = ("num_rollouts", "max_new_tokens", "temperature", "top_p", "batch_size")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    # No abbreviations: a transform option must not be taken for one of the bench's flags (as `trl-ext transform`).
    parser = argparse.ArgumentParser(
        prog="trl-ext bench generation",
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        epilog="Other flags are the transform's options, as `trl-ext transform NAME` takes them, e.g. for rif_rft: "
        "--rewards rif_task_reward --num_rollouts 4 --max_new_tokens 16 --batch_size 8 --temperature 0.7 (rif_rft "
        "stops when it drops every prompt: with a model that solves none, add --drop_all_wrong false).",
    )
    parser.add_argument("transform", help="A registered transform that samples with the model, e.g. rif_rft.")
    parser.add_argument("--model_name_or_path", default="smollm2-135m")
    parser.add_argument("--dataset_name", default="builtin:rif_tasks")
    parser.add_argument("--dataset_config", default=None, help="E.g. a built-in dataset's form (rif_tasks: add).")
    parser.add_argument("--split", default="train")
    parser.add_argument("--rows", type=int, default=16, help="The first N rows of the split.")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved timed runs of each (median reported).")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads on a CPU (default 1).")
    parser.add_argument("--json", action="store_true")
    return parser.parse_known_args(argv)


def generation_settings(record: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The transform's sampling settings (`GENERATION_OPTIONS`, plus `seed` and `prompt_column`): the options given,
    else its factory's defaults. A transform without `num_rollouts` and `max_new_tokens` options is refused."""
    from trl_ext.run.checks import accepted_options

    accepted = accepted_options(record) or set(getattr(record, "options", {}))
    missing = [name for name in ("num_rollouts", "max_new_tokens") if name not in accepted]
    if missing or not getattr(record, "needs_model", False):
        raise CLIError(
            f"transform {record.name!r} does not sample rollouts with the model (no {' or '.join(missing) or 'model'} "
            "option): `trl-ext bench generation` times transforms with num_rollouts and max_new_tokens options, such "
            "as rif_rft; a scoring transform has `trl-ext bench scoring`."
        )
    try:
        params = inspect.signature(record.factory).parameters
    except (TypeError, ValueError):
        params = {}
    fallback = {"seed": 0, "prompt_column": "prompt"}
    settings = {}
    for name in (*GENERATION_OPTIONS, "seed", "prompt_column"):
        if name in options:
            settings[name] = options[name]
        elif name in params and params[name].default is not inspect.Parameter.empty:
            settings[name] = params[name].default
        elif name in fallback:
            settings[name] = fallback[name]
        else:
            raise CLIError(
                f"transform {record.name!r}: its default {name} cannot be read from its factory; pass --{name}."
            )
    for name in ("num_rollouts", "max_new_tokens", "batch_size"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CLIError(f"--{name} {value!r}: an integer >= 1.")
    return settings


def generated_tokens(sequences: Sequence[Sequence[int]], stop_ids: set[int], prompt_width: int = 0) -> int:
    """Generated tokens of `generate`'s returned sequences (`prompt_width` columns of prompt first): each counted up
    to and including its first stop token (the padding of a finished sequence is not counted), all of it without."""
    from trl_ext.inference.generation import cut_at_stop

    return sum(len(cut_at_stop(list(row)[prompt_width:], stop_ids)) for row in sequences)


@dataclass
class GenerateCall:
    """One `model.generate` call of the transform: the random state it started from, its prompts' padded width and
    the sequences it returned (prompt + completion)."""

    rng_state: tuple[Any, Any]
    prompt_width: int
    sequences: list[list[int]]


def _rng_state() -> tuple[Any, Any]:
    import torch

    return torch.get_rng_state(), torch.cuda.get_rng_state() if torch.cuda.is_available() else None


def record_generate_calls(model, func: Callable[[], Any]) -> list[GenerateCall]:
    """Run `func()` with `model.generate` wrapped to record each call (see `GenerateCall`), then unwrap it."""
    original, had_own = model.generate, "generate" in vars(model)
    calls: list[GenerateCall] = []

    def generate(*args: Any, **kwargs: Any) -> Any:
        state = _rng_state()
        out = original(*args, **kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        sequences = getattr(out, "sequences", out)
        width = ids.shape[1] if ids is not None else 0
        calls.append(GenerateCall(state, width, sequences.tolist()))
        return out

    model.generate = generate
    try:
        func()
    finally:
        if had_own:
            model.generate = original
        else:
            del model.generate
    return calls


def bare_generate(
    model,
    tokenizer,
    prompts: Sequence[Any],
    settings: dict[str, Any],
    rng_states: Sequence[tuple[Any, Any]] | None = None,
) -> list[tuple[int, list[list[int]]]]:
    """The generation a user writes by hand: per batch of `batch_size` prompts, chat-template them, left-pad, one
    sampled `model.generate` with K return sequences. Batch b starts from `rng_states[b]` when given, else from the
    seed `seed + b`; the global random state is left as it was. Returns (prompt width, sequences) per batch."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    size = settings["batch_size"]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    out = []
    try:
        for b, start in enumerate(range(0, len(prompts), size)):
            batch = prompts[start : start + size]
            texts = [
                tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                if isinstance(p, list)
                else p
                for p in batch
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                if rng_states is not None:
                    torch.set_rng_state(rng_states[b][0])
                    if rng_states[b][1] is not None:
                        torch.cuda.set_rng_state(rng_states[b][1])
                else:
                    torch.manual_seed(settings["seed"] + b)
                sequences = model.generate(
                    **enc,
                    do_sample=True,
                    top_k=0,
                    temperature=settings["temperature"],
                    top_p=settings["top_p"],
                    num_return_sequences=settings["num_rollouts"],
                    max_new_tokens=settings["max_new_tokens"],
                    pad_token_id=pad_id,
                )
            out.append((enc["input_ids"].shape[1], sequences))
    finally:
        tokenizer.padding_side = side
    return [(width, sequences.tolist()) for width, sequences in out]


def compare(transform: Callable[[], Any], bare: Callable[[], Any], repeats: int = 3) -> dict[str, float]:
    """Time `bare()` and `transform()` interleaved `repeats` times, taking turns at going first (no side always runs
    right after the other): their median wall and CPU seconds."""
    runs: dict[str, list[tuple[float, float]]] = {"transform": [], "bare": []}
    for i in range(repeats):
        for name in ("bare", "transform") if i % 2 == 0 else ("transform", "bare"):
            runs[name].append(timed(bare if name == "bare" else transform))
    return {
        f"{k}{suffix}": statistics.median(t[i] for t in v)
        for k, v in runs.items()
        for i, suffix in ((0, "_s"), (1, "_cpu_s"))
    }


def verdict(
    prompts: int,
    transform_s: float,
    bare_s: float,
    transform_tokens: int | None = None,
    bare_tokens: int | None = None,
    transform_cpu_s: float = 0.0,
    bare_cpu_s: float = 0.0,
) -> dict[str, Any]:
    """Prompts/s and tokens/s both ways; `ratio` = transform / bare tokens/s when both sides' generated tokens are
    known (else prompts/s, the `basis`), and `defect` when the ratio is below `LIMIT`."""
    transform_pps, bare_pps = prompts / transform_s, prompts / bare_s
    transform_tps = transform_tokens / transform_s if transform_tokens is not None else None
    bare_tps = bare_tokens / bare_s if bare_tokens is not None else None
    on_tokens = bool(transform_tokens) and bool(bare_tokens)
    ratio = transform_tps / bare_tps if on_tokens else transform_pps / bare_pps
    # the same ratio on CPU-seconds: steadier than wall time on a machine shared with other jobs
    work = (transform_tokens, bare_tokens) if on_tokens else (prompts, prompts)
    cpu_ratio = (work[0] / transform_cpu_s) / (work[1] / bare_cpu_s) if transform_cpu_s > 0 < bare_cpu_s else None
    return {
        "prompts": prompts,
        "transform_tokens": transform_tokens,
        "bare_tokens": bare_tokens,
        "transform_s": transform_s,
        "bare_s": bare_s,
        "transform_cpu_s": transform_cpu_s,
        "bare_cpu_s": bare_cpu_s,
        "transform_tokens_per_s": transform_tps,
        "bare_tokens_per_s": bare_tps,
        "transform_prompts_per_s": transform_pps,
        "bare_prompts_per_s": bare_pps,
        "basis": "tokens/s" if on_tokens else "prompts/s",
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "limit": LIMIT,
        "defect": ratio < LIMIT,
    }


def run(argv: list[str]) -> dict[str, Any]:
    from trl_ext.cli.train import _options_from_flags
    from trl_ext.plugin.registry import registry
    from trl_ext.run.checks import accepted_options, check_inputs, check_options
    from trl_ext.run.specs import parse_value

    args, rest = parse_args(argv)
    options = _options_from_flags(rest, parse_value)
    record = registry().get("transform", args.transform)
    check_options(record, options)
    settings = generation_settings(record, options)
    if args.rows < 1 or args.repeats < 1:
        raise CLIError("--rows and --repeats: integers >= 1.")

    import torch
    from datasets import Dataset

    from trl_ext.data import load_dataset
    from trl_ext.inference.generation import stop_token_ids
    from trl_ext.models import load_model, load_tokenizer

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    splits = load_dataset(args.dataset_name, args.dataset_config)
    if args.split not in splits:
        raise CLIError(f"{args.dataset_name} has no split {args.split!r}; splits: {list(splits)}")
    data = splits[args.split]
    data = Dataset.from_list([data[i] for i in range(min(args.rows, len(data)))])
    check_inputs(record.columns_for(options), data.column_names, f"transform {record.name!r}", args.dataset_name)
    model, tokenizer = load_model(args.model_name_or_path, dtype=args.dtype), load_tokenizer(args.model_name_or_path)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    prompts = list(data[settings["prompt_column"]])
    stop_ids = stop_token_ids(model, tokenizer)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    takes_dir = "curation_dir" in (accepted_options(record) or set())

    with tempfile.TemporaryDirectory(prefix="trl-ext-bench-generation-") as tmp:
        from trl_ext.data.curation import curation_output

        runs = iter(range(10**6))

        def transform() -> None:
            # a fresh curation directory each time: a finished run's saved batches would be resumed, not sampled
            fresh = os.path.join(tmp, str(next(runs)))
            extra = {"curation_dir": fresh} if takes_dir else {}
            with curation_output(fresh):
                record.build(model=model, tokenizer=tokenizer, **{**options, **extra})(data)
            sync()

        bare_out: list[list[tuple[int, list[list[int]]]]] = []
        calls = record_generate_calls(model, transform)  # the warm-up: records each batch's random state
        batches = -(-len(prompts) // settings["batch_size"])
        replay = [c.rng_state for c in calls] if len(calls) == batches else None

        def bare(rows: Sequence[Any] = prompts) -> None:
            bare_out.append(bare_generate(model, tokenizer, rows, settings, replay))
            sync()

        bare(prompts[: settings["batch_size"]])  # the warm-up batch
        bare_out.clear()
        times = compare(transform, bare, repeats=args.repeats)
    transform_tokens = sum(generated_tokens(c.sequences, stop_ids, c.prompt_width) for c in calls) if calls else None
    bare_tokens = sum(generated_tokens(seqs, stop_ids, width) for width, seqs in bare_out[0])
    same = [c.sequences for c in calls] == [seqs for _, seqs in bare_out[0]]
    config = f"/{args.dataset_config}" if args.dataset_config else ""
    return {
        "transform": record.name,
        "model": args.model_name_or_path,
        "dtype": str(model.dtype).replace("torch.", ""),
        "device": device_name(),
        "dataset": f"{args.dataset_name}{config}[{args.split}]",
        "rollouts_per_prompt": settings["num_rollouts"],
        "rollouts": len(prompts) * settings["num_rollouts"],
        "max_new_tokens": settings["max_new_tokens"],
        "temperature": settings["temperature"],
        "top_p": settings["top_p"],
        "batch_size": settings["batch_size"],
        "repeats": args.repeats,
        "generate_calls": len(calls),
        "same_samples": same,
        **verdict(
            len(prompts),
            times["transform_s"],
            times["bare_s"],
            transform_tokens,
            bare_tokens,
            times["transform_cpu_s"],
            times["bare_cpu_s"],
        ),
    }


def format_report(r: dict[str, Any]) -> str:
    flag = (
        f"BELOW {r['limit']:.0%}: a defect to fix"
        if r["defect"]
        else f"at least {r['limit']:.0%} of the bare generate: ok"
    )
    if r["same_samples"]:
        samples = "samples: identical on both sides (each batch from the same random state)"
    elif r["generate_calls"]:
        samples = (
            f"samples: NOT identical ({r['generate_calls']} generate calls by the transform): its inputs or settings "
            "differ from the bare side's, so compare tokens/s"
        )
    else:
        samples = "samples: the transform called no model.generate that could be seen; ratio on prompts/s"

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def row(name: str, side: str) -> str:
        tokens = r[f"{side}_tokens"]
        return (
            f"{name:<16}{'-' if tokens is None else tokens:>10}{num(r[f'{side}_tokens_per_s']):>12}"
            f"{num(r[f'{side}_prompts_per_s'], 2):>12}{r[f'{side}_s']:>10.3f}{r[f'{side}_cpu_s']:>10.3f}"
        )

    return "\n".join(
        [
            f"trl-ext bench generation | {r['transform']} vs a bare model.generate | model {r['model']} ({r['dtype']}) "
            f"| {r['device']} | {r['dataset']}: {r['prompts']} prompts x {r['rollouts_per_prompt']} rollouts = "
            f"{r['rollouts']}, max {r['max_new_tokens']} new tokens, T {r['temperature']:g}, top_p {r['top_p']:g}, "
            f"batches of {r['batch_size']} prompts | median of {r['repeats']}",
            f"{'':<16}{'tokens':>10}{'tokens/s':>12}{'prompts/s':>12}{'wall s':>10}{'CPU-s':>10}",
            row(r["transform"], "transform"),
            row("bare generate", "bare"),
            samples,
            f"ratio {r['ratio']:.2f} on {r['basis']} ({flag})"
            + ("" if r.get("cpu_ratio") is None else f"; on CPU-seconds {r['cpu_ratio']:.2f}"),
        ]
    )


def main(argv: list[str]) -> int:
    import json

    parse_args(argv)  # --help and usage errors before torch is imported
    report = run(argv)
    print(json.dumps(report, indent=2) if "--json" in argv else format_report(report))
    return 0
