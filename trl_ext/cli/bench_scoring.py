"""`trl-ext bench scoring`: tokens/s of a scoring transform against a bare no-grad forward of the same model.

Runs the core's `loglik_filter` transform (as `trl-ext transform loglik_filter` runs it: batched log-likelihoods
through `trl_ext.inference.scoring`, per-row scores and decisions written next to the output) on the first `--rows`
rows of a dataset, and, interleaved with it, a bare `model(input_ids, attention_mask)` under `torch.no_grad()` on the
same rows cut into the same batches (dataset order, `--batch_size` rows, right-padded): the forward pass a user
would run to score the rows by hand, full logits included. Tokens/s count every token of the rendered
(prompt, completion) pairs, as SFT renders them; times are medians over `--repeats` interleaved runs after one
warm-up batch of each. A transform below `LIMIT` of the bare forward's tokens/s is a defect to fix, and is flagged.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from trl_ext.cli.bench_rewards import device_name
from trl_ext.training.cost import cpu_seconds

LIMIT = 0.90  # scoring below 90% of the bare forward's tokens/s is a defect


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="trl-ext bench scoring",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model_name_or_path", default="smollm2-135m")
    parser.add_argument("--dataset_name", default="builtin:arith")
    parser.add_argument("--dataset_config", default=None, help="Default: the dataset's `sft` form when it has one.")
    parser.add_argument("--split", default="train")
    parser.add_argument("--rows", type=int, default=64, help="The first N rows of the split.")
    parser.add_argument("--batch_size", type=int, default=16, help="Rows per batch, both ways.")
    parser.add_argument("--max_length", type=int, default=None)
    parser.add_argument("--prompt_column", default="prompt")
    parser.add_argument("--completion_column", default="completion")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved timed runs of each (median reported).")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads on a CPU (default 1).")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def timed(func: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU-seconds user+sys) of `func()`."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    func()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def compare(tokens: int, scoring: Callable[[], Any], forward: Callable[[], Any], repeats: int = 3) -> dict[str, Any]:
    """Time `scoring()` and `forward()` (each over the same `tokens`), interleaved `repeats` times; medians of both
    and the verdict (see `verdict`)."""
    runs: dict[str, list[tuple[float, float]]] = {"scoring": [], "forward": []}
    for _ in range(repeats):
        runs["forward"].append(timed(forward))
        runs["scoring"].append(timed(scoring))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    return verdict(tokens, wall["scoring"], wall["forward"], cpu["scoring"], cpu["forward"])


def verdict(
    tokens: int, scoring_s: float, forward_s: float, scoring_cpu_s: float = 0.0, forward_cpu_s: float = 0.0
) -> dict[str, Any]:
    """Tokens/s both ways, `ratio` = scoring / forward tokens/s, and `defect` when the ratio is below `LIMIT`."""
    scoring_tps, forward_tps = tokens / scoring_s, tokens / forward_s
    ratio = scoring_tps / forward_tps
    return {
        "tokens": tokens,
        "scoring_s": scoring_s,
        "forward_s": forward_s,
        "scoring_cpu_s": scoring_cpu_s,
        "forward_cpu_s": forward_cpu_s,
        "scoring_tokens_per_s": scoring_tps,
        "forward_tokens_per_s": forward_tps,
        "ratio": ratio,
        "limit": LIMIT,
        "defect": ratio < LIMIT,
    }


def run(argv: list[str]) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from trl_ext.data import load_dataset
    from trl_ext.inference.curation import bare_forward, loglik_filter
    from trl_ext.inference.scoring import tokenize_pair
    from trl_ext.models import load_model, load_tokenizer

    args = parse_args(argv)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    splits = load_dataset(args.dataset_name, args.dataset_config, form="sft")
    data = splits[args.split]
    data = Dataset.from_list([data[i] for i in range(min(args.rows, len(data)))])
    model, tokenizer = load_model(args.model_name_or_path, dtype=args.dtype), load_tokenizer(args.model_name_or_path)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    pc, cc = args.prompt_column, args.completion_column
    encoded = [tokenize_pair(tokenizer, r[pc], r[cc], args.max_length)[0] for r in data]
    tokens = sum(len(ids) for ids in encoded)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    with tempfile.TemporaryDirectory(prefix="trl-ext-bench-scoring-") as tmp:
        runs = iter(range(10**6))

        def scoring(rows: Dataset = data) -> None:
            # a fresh curation directory each time: a finished run's saved batches would be resumed, not scored
            transform = loglik_filter(
                model,
                tokenizer,
                prompt_column=pc,
                completion_column=cc,
                batch_size=args.batch_size,
                max_length=args.max_length,
                curation_dir=os.path.join(tmp, str(next(runs))),
            )
            transform(rows)
            sync()

        def forward(ids: list[list[int]] = encoded) -> None:
            bare_forward(model, ids, batch_size=args.batch_size, pad_id=pad_id, sort=False)
            sync()

        warm = min(args.batch_size, len(data))
        forward(encoded[:warm])
        scoring(data.select(range(warm)))
        result = compare(tokens, scoring, forward, repeats=args.repeats)
    return {
        "transform": "loglik_filter",
        "model": args.model_name_or_path,
        "dtype": str(model.dtype).replace("torch.", ""),
        "device": device_name(),
        "dataset": f"{args.dataset_name}[{args.split}]",
        "rows": len(data),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        **result,
    }


def format_report(r: dict[str, Any]) -> str:
    flag = (
        f"BELOW {r['limit']:.0%}: a defect to fix"
        if r["defect"]
        else f"at least {r['limit']:.0%} of the bare forward: ok"
    )
    return "\n".join(
        [
            f"trl-ext bench scoring | {r['transform']} vs a bare no-grad forward | model {r['model']} ({r['dtype']}) | "
            f"{r['device']} | {r['dataset']}: {r['rows']} rows, {r['tokens']} tokens, batches of {r['batch_size']} | "
            f"median of {r['repeats']}",
            f"{'':<16}{'tokens/s':>12}{'wall s':>10}{'CPU-s':>10}",
            f"{r['transform']:<16}{r['scoring_tokens_per_s']:>12.1f}{r['scoring_s']:>10.3f}{r['scoring_cpu_s']:>10.3f}",
            f"{'bare forward':<16}{r['forward_tokens_per_s']:>12.1f}{r['forward_s']:>10.3f}{r['forward_cpu_s']:>10.3f}",
            f"ratio {r['ratio']:.2f} ({flag})",
        ]
    )


def main(argv: list[str]) -> int:
    import json

    parse_args(argv)  # --help and usage errors before torch is imported
    report = run(argv)
    print(json.dumps(report, indent=2) if "--json" in argv else format_report(report))
    return 0
