"""`trl-ext bench METHOD`: step time and peak memory of a method against TRL's own trainer of the same base, on the
same model, data and batch, interleaved in one process; and the memory slope per 1k tokens of sequence, measured
at two lengths, since at small scale the logits are a few percent of memory and only the slope shows a
full-logits path. For a method on another base (GRPO, RLOO, DPO, ...): its step wall time, CPU-seconds and peak
memory against the base's TRL trainer, each built as `trl-ext train` builds it (see `bench_rl`), with each reward's
share of the method's step where the base takes rewards; `--only_rewards`: the shares alone, flagged above 5% (see
`bench_rewards`). `trl-ext bench scoring`: tokens/s of a scoring transform against a bare no-grad forward, flagged
below 90% (see `bench_scoring`). `trl-ext bench generation TRANSFORM`: generated tokens/s of a sampling transform
(rif_rft) against a bare `model.generate` of the same rollouts, flagged below 90% (see `bench_generation`).

Peak memory is `torch.cuda.max_memory_allocated` on a GPU and the peak resident set (VmHWM, reset through
/proc/self/clear_refs) on a CPU, with glibc's mmap threshold pinned so freed activations go back to the OS."""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from trl_ext.training.cost import PeakMemory, synchronize

if TYPE_CHECKING:  # imported where used: `trl-ext bench --help` starts without torch
    import torch

_MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


@dataclass
class Measurement:
    name: str
    step_s: float
    peak_mib: float
    slope_mib_per_1k_tokens: float


def _reexec_with_pinned_malloc(argv: list[str]) -> None:
    import torch

    # glibc raises its mmap threshold after frees, keeping freed activations resident; pin it for honest peaks.
    if sys.platform.startswith("linux") and _MMAP_ENV not in os.environ and not torch.cuda.is_available():
        env = {**os.environ, _MMAP_ENV: "131072"}
        os.execve(sys.executable, [sys.executable, "-m", "trl_ext", "bench", *argv], env)


def _train_step(trainer, batch: dict[str, torch.Tensor]) -> None:
    num_items = (batch["labels"][:, 1:] != -100).sum()
    trainer.model.train()
    trainer.training_step(trainer.model, batch, num_items)
    trainer.model.zero_grad(set_to_none=True)


def _forward(trainer, batch: dict[str, torch.Tensor]) -> None:
    import torch

    with torch.no_grad():
        trainer.model(**batch, fused_lm_head=True)


def _synthetic_batch(batch_size: int, length: int, vocab: int, device, prompt: int = 16) -> dict[str, torch.Tensor]:
    import torch

    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, vocab, (batch_size, length), generator=g)
    labels = ids.clone()
    labels[:, :prompt] = -100
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "labels": labels.to(device),
    }


def _with_row_columns(synthetic: dict[str, torch.Tensor], real: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Carry a method's per-row batch columns (e.g. PoFT's precomputed scores) into a synthetic batch, cycling over
    the real rows; per-token columns (masks) cannot be resized and are left out: the methods read them as neutral."""
    import torch

    rows, length = synthetic["input_ids"].shape[0], real["input_ids"].shape[1]
    for key, value in real.items():
        if key in synthetic or not torch.is_tensor(value) or value.dim() == 0:
            continue
        if value.dim() >= 2 and value.shape[1] == length:
            continue
        synthetic[key] = value[torch.arange(rows, device=value.device) % value.shape[0]]
    return synthetic


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(
        prog="trl-ext bench",
        description=__doc__.split("\n\n")[0],
        epilog="Other flags go to the method as `trl-ext train` takes them, e.g. for GRPO: --rewards, "
        "--reward_weights, --num_generations, --max_completion_length. SFT methods with --adapter NAME: the method trains "
        "through that adapter and the reference through TRL's LoRA (--use_peft, shaped by --lora_r, --lora_alpha, "
        "--lora_target_modules), e.g. `trl-ext bench sft --adapter ssf --use_peft --lora_r 1 --lora_target_modules "
        "all-linear`; both trainable counts are reported. `trl-ext bench scoring`: tokens/s of the "
        "loglik_filter scoring transform against a bare no-grad forward (see `trl-ext bench scoring --help`). "
        "`trl-ext bench generation TRANSFORM`: generated tokens/s of a sampling transform such as rif_rft against a "
        "bare model.generate of the same rollouts (see `trl-ext bench generation --help`).",
    )
    parser.add_argument("method")
    parser.add_argument("--model_name_or_path", default="smollm2-135m")
    parser.add_argument("--dataset_name", default=None, help="Default: the method's built-in dataset.")
    parser.add_argument("--per_device_train_batch_size", type=int, default=8, help="GRPO: completions per step.")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per trainer (after --warmup).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lengths", default="128,512", help="SFT methods: two sequence lengths for the memory slope.")
    parser.add_argument(
        "--memory_batch_size", type=int, default=2, help="SFT methods: rows per step when measuring memory."
    )
    parser.add_argument("--dtype", default=None, help="Model dtype (e.g. bfloat16); default float32 on CPU.")
    parser.add_argument("--load_in_4bit", action="store_true", help="QLoRA: 4-bit base (bitsandbytes) + LoRA.")
    parser.add_argument("--use_peft", action="store_true")
    parser.add_argument(
        "--reference_lora",
        action="store_true",
        help="Only the reference trains TRL's LoRA (shaped by --lora_r, --lora_alpha, --lora_target_modules); the "
        "method trains its own parameters: a sparse or selective method (spiel, lt_sft, locft_bf) against LoRA at a "
        "matched budget (`trl-ext peft-zoo` sizes it).",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="Non-SFT methods: torch threads on a CPU (default 1, as measured)."
    )
    parser.add_argument(
        "--only_rewards",
        action="store_true",
        help="Methods whose base takes rewards: only each reward's share of the method's steps (no reference run).",
    )
    parser.add_argument("--json", action="store_true")
    return parser.parse_known_args(argv)


def build_trainers(args, method_flags: list[str]):
    import torch
    from datasets import Dataset
    from trl import ModelConfig, SFTConfig, get_peft_config

    from trl_ext.data import load_dataset
    from trl_ext.models import load_model_and_tokenizer
    from trl_ext.plugin.registry import get
    from trl_ext.run.bases import SFT, training_base

    method = get("method", args.method)
    if training_base(method.base) is not SFT:
        raise SystemExit(f"trl-ext bench supports SFT-based methods for now; {method.name!r} is {method.base}-based.")
    cuda = torch.cuda.is_available()
    common = dict(
        output_dir="/tmp/trl-ext-bench",
        per_device_train_batch_size=args.per_device_train_batch_size,
        report_to="none",
        save_strategy="no",
        bf16=bool(cuda and args.dtype in (None, "bfloat16")),
        use_cpu=not cuda,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    from trl_ext.run.arguments import build_parser, resolve_steps

    parsed = build_parser(method).parse_args_into_dataclasses(
        args=method_flags + [f"--{k}={v}" for k, v in common.items()]
    )
    config, given_model_args, ext = parsed[1], parsed[2], parsed[3]
    model_args = ModelConfig(
        model_name_or_path=args.model_name_or_path,
        dtype=args.dtype or "float32",
        load_in_4bit=args.load_in_4bit,
        use_peft=args.use_peft or args.load_in_4bit or args.reference_lora,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    for name in _LORA_FLAGS:  # the reference's LoRA as the user shaped it (an adapter-vs-LoRA comparison)
        if any(flag.split("=")[0] == f"--{name}" for flag in method_flags):
            setattr(model_args, name, getattr(given_model_args, name))
    adapters = resolve_steps("adapter", ext.adapter)
    if args.dtype is None and cuda:
        model_args.dtype = "bfloat16"
    dataset = load_dataset(args.dataset_name or method.default_dataset, form="sft")["train"]
    dataset = Dataset.from_list([dataset[i] for i in range(min(len(dataset), 64))])
    peft_config = get_peft_config(model_args)
    base_model, tokenizer = load_model_and_tokenizer(model_args, config)
    method_model = copy.deepcopy(base_model) if not args.load_in_4bit else load_model_and_tokenizer(model_args)[0]
    for record, options in adapters:  # the method side trains through its adapters instead of the reference's LoRA
        method_model = record.build(**options)(method_model)
    base = SFT.reference_trainer()(
        model=base_model,
        args=SFTConfig(**common),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    other = method.trainer(
        model=method_model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=None if adapters or args.reference_lora else peft_config,
    )
    return method, config, base, other, tokenizer


_LORA_FLAGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def method_label(method: str, method_flags: list[str]) -> str:
    """The method side's name in the report: `sft+ssf` when it trains through an adapter (`--adapter ssf`)."""
    from trl_ext.run.specs import parse_spec_list

    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--adapter")
    spec = flags.parse_known_args(method_flags)[0].adapter
    return "+".join([method] + [name for name, _ in parse_spec_list(spec)])


def _base_of(method_name: str):
    from trl_ext.plugin.registry import get
    from trl_ext.run.bases import training_base

    return training_base(get("method", method_name).base)


def _check_same_layout(method: str, batch: dict[str, Any], sft_keys, vocab: int) -> None:
    """The SFT comparison feeds SFTTrainer the method's own batch (the same tokens); a method whose batches have
    another layout (other columns, or token ids it added to the vocabulary) cannot be compared that way."""
    missing = sorted(set(sft_keys) - set(batch))
    ids = batch.get("input_ids")
    added = ids is not None and int(ids.max()) >= vocab
    if missing or added:
        reason = f"no {', '.join(missing)}" if missing else f"token ids outside the model's {vocab}-token vocabulary"
        raise SystemExit(
            f"bench {method}: its batches have their own layout ({reason}), so SFTTrainer cannot run the same "
            "batch as the reference; this method is not benchable against SFTTrainer yet."
        )


def run(argv: list[str]) -> dict[str, Any]:
    import torch

    from trl_ext.compat.trainer import prepare_inputs

    args, method_flags = parse_args(argv)
    base = _base_of(args.method)
    if args.only_rewards:
        if not base.takes_rewards:
            raise SystemExit(f"--only_rewards: {args.method!r} is {base.name}-based, which takes no rewards.")
        from trl_ext.cli import bench_rewards

        return bench_rewards.run(args, method_flags)
    if base.name != "sft":  # the method's trainer against its base's reference trainer (see bench_rl)
        from trl_ext.cli import bench_rl

        return bench_rl.run(args, method_flags)
    method, config, base, other, tokenizer = build_trainers(args, method_flags)
    device = base.args.device
    # The method's collated batch (with any columns it needs), and the same rows for SFTTrainer without them
    method_batch = prepare_inputs(other, next(iter(other.get_train_dataloader())))
    sft_keys = next(iter(base.get_train_dataloader())).keys()
    batch = {k: v for k, v in method_batch.items() if k in sft_keys}
    _check_same_layout(args.method, batch, sft_keys, base.model.get_input_embeddings().num_embeddings)
    label = method_label(args.method, method_flags)
    batches = {"sft (TRL)": batch, label: method_batch}
    trainers = {"sft (TRL)": base, label: other}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    forward_times: list[float] = []
    for i in range(args.warmup + args.steps):
        for name, trainer in trainers.items():  # interleaved: drift in machine load hits both alike
            synchronize(device)
            start = time.perf_counter()
            _train_step(trainer, batches[name])
            synchronize(device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
        synchronize(device)
        start = time.perf_counter()
        _forward(base, batch)
        synchronize(device)
        if i >= args.warmup:
            forward_times.append(time.perf_counter() - start)

    lengths = [int(x) for x in args.lengths.split(",")]
    vocab = base.model.get_output_embeddings().weight.shape[0]
    peaks: dict[str, dict[int, float]] = {name: {} for name in trainers}
    for length in lengths:
        synthetic = _synthetic_batch(args.memory_batch_size, length, vocab, device)
        for name, trainer in trainers.items():
            step_batch = _with_row_columns(dict(synthetic), batches[name])
            _train_step(trainer, step_batch)  # warm: optimizer-free, but allocator caches settle
            with PeakMemory(device) as mem:
                _train_step(trainer, step_batch)
            peaks[name][length] = mem.peak / 2**20
    tokens_k = (lengths[1] - lengths[0]) * args.memory_batch_size / 1000
    results = [
        Measurement(
            name,
            statistics.median(times[name]),
            peaks[name][lengths[0]],
            (peaks[name][lengths[1]] - peaks[name][lengths[0]]) / tokens_k,
        )
        for name in trainers
    ]
    sft, meth = results
    forward = statistics.median(forward_times)
    extra = method.forwards_for(config, other.model)
    budget = sft.step_s + extra * forward
    return {
        "method": args.method,
        "model": args.model_name_or_path,
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(base.model.dtype).replace("torch.", "") + (" 4-bit QLoRA" if args.load_in_4bit else ""),
        "batch": {"size": args.per_device_train_batch_size, "tokens": int(batch["input_ids"].shape[1])},
        "steps": args.steps,
        "results": [asdict(r) for r in results],
        "trainable": {name: trainable_parameters(trainer.model) for name, trainer in trainers.items()},
        "time_ratio": meth.step_s / sft.step_s,
        "peak_ratio": meth.peak_mib / sft.peak_mib if sft.peak_mib > 0 else float("nan"),
        "slope_ratio": meth.slope_mib_per_1k_tokens / sft.slope_mib_per_1k_tokens
        if sft.slope_mib_per_1k_tokens > 0
        else float("nan"),
        "forward_s": forward,
        "extra_forwards": extra,
        "budget_s": budget,
        "time_vs_budget": meth.step_s / budget,
        "within_budget": meth.step_s <= 1.1 * budget,
        "memory_lengths": lengths,
        "memory_batch": args.memory_batch_size,
    }


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"trl-ext bench {r['method']} vs TRL SFTTrainer | model {r['model']} ({r['dtype']}) | {r['device']} | "
        f"batch {r['batch']['size']} x {r['batch']['tokens']} tokens | median of {r['steps']} steps",
        f"{'':<14}{'step (s)':>10}{'peak MiB @' + str(r['memory_lengths'][0]):>18}{'MiB / 1k tokens':>18}"
        f"   (memory: {r['memory_batch']} rows x {r['memory_lengths'][0]} and {r['memory_lengths'][1]} tokens)",
    ]
    for m in r["results"]:
        lines.append(f"{m['name']:<14}{m['step_s']:>10.3f}{m['peak_mib']:>18.1f}{m['slope_mib_per_1k_tokens']:>18.2f}")
    lines.append(f"{'ratio':<14}{r['time_ratio']:>9.2f}x{r['peak_ratio']:>17.2f}x{r['slope_ratio']:>17.2f}x")
    if "trainable" in r:
        lines.append("trainable parameters: " + ", ".join(f"{k} {v:,}" for k, v in r["trainable"].items()))
    lines.append(
        f"intrinsic budget: SFT step + {r['extra_forwards']:g} forward(s) of {r['forward_s']:.3f} s = "
        f"{r['budget_s']:.3f} s; {r['method']} / budget = {r['time_vs_budget']:.2f} "
        f"({'within' if r['within_budget'] else 'OVER'} 1.1x)"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["scoring"]:  # `trl-ext bench scoring`: its own flags (see bench_scoring)
        from trl_ext.cli import bench_scoring

        return bench_scoring.main(argv[1:])
    if argv[:1] == ["generation"]:  # `trl-ext bench generation TRANSFORM`: its own flags (see bench_generation)
        from trl_ext.cli import bench_generation

        return bench_generation.main(argv[1:])
    parse_args(argv)  # --help and usage errors before torch is imported
    _reexec_with_pinned_malloc(argv)
    report = run(argv)
    if "--json" in argv:
        print(json.dumps(report, indent=2))
    elif "reference" in report:
        from trl_ext.cli.bench_rl import format_report as format_rl_report

        print(format_rl_report(report))
    elif "rewards" in report:
        from trl_ext.cli.bench_rewards import format_report as format_rewards_report

        print(format_rewards_report(report))
    else:
        print(format_report(report))
    return 0
