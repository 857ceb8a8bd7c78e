"""`trl-ext bench grpo --rewards R1,R2`: the rewards' share of a GRPO step.

Runs a few GRPO steps of a GRPO-based method (TRL's GRPOTrainer for `grpo`) built exactly as `trl-ext train` builds
it, on one torch thread by default, and reports each step's wall time and CPU-seconds, the time spent inside each
reward function, and the time of TRL's whole reward computation (sync rewards run in turn, async ones are awaited
together, so per-reward times of async rewards overlap and the total is measured around them). A reward that takes
more than `LIMIT` of the step is a defect to fix (batching, async, caching), and is flagged.

Shares are totals over the timed steps: (seconds inside the reward) / (wall seconds of the steps). CPU-seconds are
user + system time of this process and of the child processes it has waited for (a sandbox jail per batch).
"""

from __future__ import annotations

import functools
import inspect
import os
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Any

from trl_ext.training.cost import cpu_seconds

LIMIT = 0.05  # a reward above 5% of the step is a defect


def _is_async(func: Any) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


def timed_reward(
    func: Any, name: str, spent: dict[str, float], key: str | None = None, cpu: dict[str, float] | None = None
) -> Any:
    """`func` (sync or async) as a function of the same kind and `__name__` (`name`) that adds its wall time to
    `spent[key or name]`: for an async reward, from its first step to its last, as TRL awaits it among the others.
    For a sync reward, its CPU-seconds (this process's user + sys, children included) go to `cpu[key or name]`
    when `cpu` is given (an async reward shares the process with the others while it waits: not counted)."""
    key = key or name
    if _is_async(func):

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

    else:

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu_start = time.perf_counter(), cpu_seconds()
            try:
                return func(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                if cpu is not None:
                    cpu[key] += cpu_seconds() - cpu_start

    timed.__name__ = timed.__qualname__ = name
    return timed


def _stage_flags(args, method_flags: list[str], output_dir: str) -> list[str]:
    flags = [
        *method_flags,
        f"--model_name_or_path={args.model_name_or_path}",
        f"--per_device_train_batch_size={args.per_device_train_batch_size}",
        f"--max_steps={args.warmup + args.steps}",
        f"--output_dir={output_dir}",
        "--report_to=none",
        "--save_strategy=no",
        "--logging_steps=1000000",
        "--disable_tqdm=true",
    ]
    if args.dataset_name:
        flags.append(f"--dataset_name={args.dataset_name}")
    if args.dtype:
        flags.append(f"--dtype={args.dtype}")
    if args.load_in_4bit:
        flags.append("--load_in_4bit")
    if args.use_peft or args.load_in_4bit:
        flags.append("--use_peft")
    return flags


class RewardClock:
    """Times a GRPO-family trainer's rewards in place: each reward function (a reward model runs inside TRL's loop and
    is only in the total) wrapped by `timed_reward`, and TRL's whole reward computation. `snapshot()` before a step
    and `since(snapshot)` after it give that step's seconds per reward (keys: the reward's index, "__all__")."""

    def __init__(self, trainer: Any):
        from torch import nn

        from trl_ext.compat.trainer import time_reward_computation

        self.spent: dict[str, float] = defaultdict(float)
        self.cpu_spent: dict[str, float] = defaultdict(float)
        self.names = list(trainer.reward_func_names)
        self.timed_keys: set[str] = set()
        for i, (func, name) in enumerate(zip(trainer.reward_funcs, self.names, strict=True)):
            if not isinstance(func, nn.Module):
                trainer.reward_funcs[i] = timed_reward(func, name, self.spent, key=str(i), cpu=self.cpu_spent)
                self.timed_keys.add(str(i))
        time_reward_computation(trainer, lambda s: self.spent.__setitem__("__all__", self.spent["__all__"] + s))

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        return dict(self.spent), dict(self.cpu_spent)

    def since(self, snapshot: tuple[dict[str, float], dict[str, float]]) -> dict[str, dict[str, float]]:
        before, cpu_before = snapshot
        return {
            "rewards_s": {k: self.spent[k] - before.get(k, 0.0) for k in self.spent},
            "rewards_cpu_s": {k: self.cpu_spent[k] - cpu_before.get(k, 0.0) for k in self.cpu_spent},
        }

    def report(self, timed: list[dict[str, Any]]) -> dict[str, Any]:
        """The `rewards`, `total` and `limit` entries of the report, from timed steps carrying `since()`'s keys and
        their `wall_s` and `cpu_s`."""
        wall = sum(s["wall_s"] for s in timed)
        cpu_total = sum(s["cpu_s"] for s in timed)

        def row(name: str, key: str) -> dict[str, Any]:
            seconds = sum(s["rewards_s"].get(key, 0.0) for s in timed)
            share = seconds / wall if wall > 0 else 0.0
            cpu = sum(s["rewards_cpu_s"].get(key, 0.0) for s in timed) if key in self.cpu_spent else None
            return {
                "name": name,
                "seconds_per_step": seconds / len(timed),
                "share": share,
                # CPU-seconds inside a sync reward / the step's: the share a machine shared with other jobs leaves
                "cpu_seconds_per_step": None if cpu is None else cpu / len(timed),
                "cpu_share": None if cpu is None or cpu_total <= 0 else cpu / cpu_total,
                "over_limit": share > LIMIT,
            }

        return {
            "rewards": [
                row(name, str(i))
                if str(i) in self.timed_keys
                else {"name": name, "seconds_per_step": None, "share": None, "over_limit": False}
                for i, name in enumerate(self.names)
            ],
            "total": row("all rewards", "__all__"),
            "limit": LIMIT,
        }


def run(args, method_flags: list[str]) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback

    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.stage import build_trainer, load_checked_dataset

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="trl-ext-bench-") as tmp:
        stage = parse_stage(args.method, _stage_flags(args, method_flags, os.path.join(tmp, "out")))
        trainer, _ = build_trainer(stage, load_checked_dataset(stage))
        clock = RewardClock(trainer)
        steps: list[dict[str, Any]] = []

        class StepClock(TrainerCallback):
            def on_step_begin(self, args_, state, control, **kwargs):
                self.start = (time.perf_counter(), cpu_seconds(), clock.snapshot())

            def on_step_end(self, args_, state, control, **kwargs):
                wall, cpu, before = self.start
                steps.append(
                    {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, **clock.since(before)}
                )

        trainer.add_callback(StepClock())
        trainer.train()

    timed = steps[args.warmup :]
    if not timed:
        raise SystemExit(f"no step was timed: {len(steps)} step(s) ran, --warmup {args.warmup}")
    config = trainer.args
    return {
        "method": args.method,
        "model": args.model_name_or_path,
        "dataset": stage.script_args.dataset_name,
        "device": device_name(),
        "dtype": str(trainer.model.dtype).replace("torch.", ""),
        "batch": {
            "completions": config.per_device_train_batch_size,
            "num_generations": config.num_generations,
            "max_completion_length": config.max_completion_length,
        },
        "reward_weights": list(config.reward_weights) if config.reward_weights is not None else None,
        "steps": len(timed),
        "step_s": statistics.median(s["wall_s"] for s in timed),
        "step_cpu_s": statistics.median(s["cpu_s"] for s in timed),
        **clock.report(timed),
    }


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n > 1 else ''})"


def format_report(r: dict[str, Any]) -> str:
    b = r["batch"]
    lines = [
        f"trl-ext bench {r['method']} rewards | model {r['model']} ({r['dtype']}) | {r['device']} | {r['dataset']} | "
        f"{b['completions']} completions ({b['num_generations']} per prompt, <= {b['max_completion_length']} tokens)"
        f" | {r['steps']} timed steps",
        f"step: median {r['step_s']:.3f} s wall, {r['step_cpu_s']:.3f} CPU-s (user+sys, with waited-for children)",
        f"{'reward':<28}{'s / step':>10}{'share of step':>16}{'CPU-s / step':>14}{'CPU share':>11}",
    ]
    for m in [*r["rewards"], r["total"]]:
        if m["share"] is None:
            lines.append(f"{m['name']:<28}{'-':>10}{'-':>16}   (a reward model: in the total only)")
            continue
        flag = f"   OVER {r['limit']:.0%}: a defect to fix" if m["over_limit"] else ""
        cpu = (
            f"{m['cpu_seconds_per_step']:>14.4f}{m['cpu_share']:>10.2%}"
            if m.get("cpu_share") is not None
            else f"{'-':>14}{'-':>11}"
        )
        lines.append(f"{m['name']:<28}{m['seconds_per_step']:>10.4f}{m['share']:>15.2%} {cpu}{flag}")
    lines.append(
        "(async rewards are awaited together: their own times overlap; 'all rewards' is TRL's whole reward "
        "computation)"
    )
    return "\n".join(lines)
