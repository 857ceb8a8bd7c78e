"""`trl-ext bench METHOD` for a method whose training base is not SFT (GRPO, RLOO, DPO, and any base registered in
`trl_ext.run.bases`): the method's trainer against its base's reference trainer
(`training_base(method.base).reference_trainer()`, e.g. TRL's GRPOTrainer), step by step.

Both trainers are built as `trl-ext train METHOD` builds them, from the same flags (`parse_stage` +
`build_trainer`): the same model, data, transforms, rewards, seed, config (the method's own config class, so the
generation settings are equal) and base trainer arguments (`TrainingBase.extra_kwargs`: a teacher, an expert dataset;
those the reference trainer's constructor does not take are dropped for it and listed as `reference_drops`). Each
runs `trainer.train()` for `--warmup` + `--steps` optimizer steps in its own thread, the two
handing over after every step (reference step 1, method step 1, reference step 2, ...; one thread runs at a time,
and each keeps its own python/numpy/torch random streams across the hand-overs, so the method's rollouts are those it
would sample alone), on one torch thread by default; the warm-up steps are excluded. Per trainer: the median step's
wall time and CPU-seconds (user + sys of the process and its waited-for children), and the largest peak memory of a
timed step above what was held when the step began (`torch.cuda.max_memory_allocated` on a GPU, the peak resident
set on a CPU, as `bench` measures it). The ratios are method / reference.

Intrinsic cost (the contract a method declares): `Method(extra_forwards=...)`, the field SFT methods already give,
a number or a callable `(config, model) -> float` (or its import path), 0 by default. For a non-SFT base its unit is
one no-grad forward of the trained model over one reference step's batch as its loss sees it (prompt + completion
tokens of the per-device batch for GRPO/RLOO/distillation, the chosen + rejected rows for DPO), which the bench
times after the trainers' steps (`forward_s`). A teacher's forward on the same rollouts is 1; an expert SFT term
(forward + backward, about 3 forwards) on a batch half the size is 1.5. The budget is reference step +
extra_forwards x forward_s; `within_budget` is method step <= 1.1 x budget (wall time; `cpu_within_budget` the same
in CPU-seconds, the figure that a machine shared with other jobs leaves intact).

For a base that takes rewards, the method's reward functions are timed as `--only_rewards` times them
(`bench_rewards`), and the report carries its `rewards`, `total` and `limit` entries for the method's steps.

The report (`--json`; the table prints the same figures):
- `method`, `base`, `reference` ("GRPOTrainer (trl)"), `reference_drops`, `model`, `dataset`, `device`, `dtype`;
- `batch` (`completions`, `num_generations`, `max_completion_length` for GRPO-like configs, else `rows`),
  `step_tokens` ([rows, tokens] of the forward unit's batch), `steps` (timed), `warmup`;
- `results`: [reference, method], each `name`, `trainer` (class name), `step_s`, `step_cpu_s` (medians),
  `peak_mib`, `steps_s` (each timed step's wall time);
- `time_ratio`, `cpu_ratio`, `peak_ratio` (method / reference);
- `forward_s`, `forward_cpu_s`, `extra_forwards`, `budget_s`, `cpu_budget_s`, `time_vs_budget`, `cpu_vs_budget`,
  `tolerance` (1.1), `within_budget`, `cpu_within_budget`;
- with rewards: `reward_weights`, `step_s`, `step_cpu_s` (the method's), `rewards`, `total`, `limit`.

Caveats: both models (and their optimizer states) are held at once. On a machine shared with other jobs the
CPU-seconds ratio is the steadier figure. Generation is part of each step, so a method whose rollouts end earlier
or later than the reference's (other sampled tokens) changes its step time for that reason too.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import os
import statistics
import tempfile
import threading
import time
from typing import Any

TOLERANCE = 1.1  # measured overhead beyond the intrinsic cost x this is a defect


def _accepting(reference: type, dropped: list[str]) -> type:
    """A subclass of `reference` that drops the keyword arguments its constructor does not take (their names go to
    `dropped` when it is built), and is otherwise the reference trainer unchanged: for a base whose `extra_kwargs`
    builds arguments only the method's trainer takes (an expert dataset for an SFT+GRPO hybrid)."""
    params = inspect.signature(reference.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return reference

    def __init__(self, **kwargs: Any) -> None:
        dropped.extend(sorted(k for k in kwargs if k not in params))
        reference.__init__(self, **{k: v for k, v in kwargs.items() if k in params})

    return type(reference.__name__, (reference,), {"__init__": __init__, "__module__": reference.__module__})


def _forward_inputs(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """A step's loss inputs as one causal-LM batch: prompt + completion (GRPO, RLOO, distillation) or the trainer's
    own `input_ids` (DPO: chosen and rejected rows)."""
    import torch

    if "prompt_ids" in inputs and "completion_ids" in inputs:
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    elif "input_ids" in inputs:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask", torch.ones_like(ids))
    else:
        return None
    return {"input_ids": ids.detach(), "attention_mask": mask.detach()}


def _time_forward(model, batch: dict[str, Any], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of a no-grad forward of `model` over `batch`, scoring every token through the
    fused LM head where the trainer added one (no full logits), else a plain forward."""
    import torch

    from trl_ext.training.cost import cpu_seconds, synchronize

    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    was_training = model.training
    model.eval()
    walls, cpus = [], []
    try:
        for i in range(repeats + 1):  # the first call warms caches: not counted
            synchronize(batch["input_ids"].device)
            start, cpu = time.perf_counter(), cpu_seconds()
            with torch.no_grad():
                try:
                    model(**batch, labels=labels, fused_lm_head=True)
                except TypeError:  # no fused head on this model: the plain forward
                    model(**batch)
            synchronize(batch["input_ids"].device)
            if i:
                walls.append(time.perf_counter() - start)
                cpus.append(cpu_seconds() - cpu)
    finally:
        model.train(was_training)
    return statistics.median(walls), statistics.median(cpus)


def _rng_state() -> tuple:
    import random

    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _set_rng_state(state: tuple) -> None:
    import random

    import numpy as np
    import torch

    py, npy, cpu, cuda = state
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


class _Baton:
    """Lets one of several threads run at a time, in turn: each trainer's `train()` runs in its own thread and hands
    over after each optimizer step, so the trainers' steps alternate (A B A B ...) as the SFT bench's do."""

    def __init__(self, n: int):
        self.cond = threading.Condition()
        self.turn, self.n, self.done = 0, n, set()

    def wait(self, i: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == i)

    def pass_on(self, i: int, finished: bool = False) -> None:
        with self.cond:
            if finished:
                self.done.add(i)
            following = [(i + k) % self.n for k in range(1, self.n + 1)]
            self.turn = next((j for j in following if j not in self.done), -1)
            self.cond.notify_all()


def _run_interleaved(trainers: list, warmup: int, rewards: list[bool]) -> list[dict[str, Any]]:
    """Train each trainer for its max_steps, their optimizer steps alternating (one thread runs at a time, so a
    step's wall time and the process's CPU-seconds are its own; each trainer keeps its own random streams across
    the hand-overs). Returns per trainer: the timed (post-warm-up) steps, the largest per-step peak memory above
    what was held when the step began, and the last step's loss inputs."""
    from transformers import TrainerCallback

    from trl_ext.cli.bench_rewards import RewardClock
    from trl_ext.training.cost import PeakMemory, cpu_seconds, synchronize

    baton = _Baton(len(trainers))
    runs: list[dict[str, Any]] = []
    for i, (trainer, timed_rewards) in enumerate(zip(trainers, rewards, strict=True)):
        run: dict[str, Any] = {"steps": [], "peaks": [], "inputs": None, "error": None, "rng": _rng_state()}
        run["clock"] = RewardClock(trainer) if timed_rewards else None
        runs.append(run)
        compute_loss = trainer.compute_loss  # public: every trainer's loss inputs pass through it

        def capturing(model, inputs, *args: Any, _run=run, _inner=compute_loss, **kwargs: Any):
            _run["inputs"] = inputs
            return _inner(model, inputs, *args, **kwargs)

        trainer.compute_loss = capturing

        class StepClock(TrainerCallback):
            def __init__(self, index: int, run: dict[str, Any], device):
                self.index, self.run, self.device = index, run, device

            def on_step_begin(self, args_, state, control, **kwargs):
                self.mem = PeakMemory(self.device).start()
                synchronize(self.device)
                clock = self.run["clock"]
                self.start = (time.perf_counter(), cpu_seconds(), clock.snapshot() if clock else None)

            def on_step_end(self, args_, state, control, **kwargs):
                synchronize(self.device)
                wall, cpu, before = self.start
                step = {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}
                self.mem.stop()
                if self.run["clock"]:
                    step.update(self.run["clock"].since(before))
                self.run["steps"].append(step)
                self.run["peaks"].append(self.mem.peak / 2**20)
                self.run["rng"] = _rng_state()  # hand over: the next trainer resumes its own streams
                baton.pass_on(self.index)
                baton.wait(self.index)
                _set_rng_state(self.run["rng"])

        trainer.add_callback(StepClock(i, run, trainer.args.device))

    def train(i: int) -> None:
        baton.wait(i)
        try:
            _set_rng_state(runs[i]["rng"])
            trainers[i].train()
        except BaseException as error:  # re-raised in the calling thread
            runs[i]["error"] = error
        finally:
            baton.pass_on(i, finished=True)

    threads = [threading.Thread(target=train, args=(i,), name=f"bench-{i}", daemon=True) for i in range(len(trainers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        if run["error"] is not None:
            raise run["error"]
        run["timed"] = run["steps"][warmup:]
        if not run["timed"]:
            raise SystemExit(f"no step was timed: {len(run['steps'])} step(s) ran, --warmup {warmup}")
        run["peak_mib"] = max(run["peaks"][warmup:])
    return runs


def _summary(name: str, trainer_name: str, run: dict[str, Any]) -> dict[str, Any]:
    timed = run["timed"]
    return {
        "name": name,
        "trainer": trainer_name,
        "step_s": statistics.median(s["wall_s"] for s in timed),
        "step_cpu_s": statistics.median(s["cpu_s"] for s in timed),
        "peak_mib": run["peak_mib"],
        "steps_s": [s["wall_s"] for s in timed],
    }


def _batch_entry(config) -> dict[str, Any]:
    if hasattr(config, "num_generations"):
        return {
            "completions": config.per_device_train_batch_size,
            "num_generations": config.num_generations,
            "max_completion_length": getattr(config, "max_completion_length", None),
        }
    return {"rows": config.per_device_train_batch_size}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def run(args, method_flags: list[str]) -> dict[str, Any]:
    import torch
    from datasets import DatasetDict

    from trl_ext.cli.bench_rewards import _stage_flags, device_name
    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.stage import build_trainer, load_checked_dataset

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="trl-ext-bench-") as tmp:
        flags = _stage_flags(args, method_flags, os.path.join(tmp, "out"))
        stage = parse_stage(args.method, flags)  # every flag checked before a model loads
        method, base = stage.method, stage.base
        dataset = load_checked_dataset(stage)
        reference = base.reference_trainer()

        # The reference: the same stage (parsed anew, so no config object is shared) with the trainer class swapped
        ref_stage = parse_stage(args.method, flags)
        dropped: list[str] = []
        if base.extra_kwargs:
            ref_stage.method = dataclasses.replace(method, trainer=_accepting(reference, dropped))
        else:
            ref_stage.method = dataclasses.replace(method, trainer=reference)
        ref_trainer, _ = build_trainer(ref_stage, DatasetDict(dict(dataset)))  # transforms replace splits: a copy
        trainer, _ = build_trainer(stage, DatasetDict(dict(dataset)))
        ref_run, method_run = _run_interleaved(
            [ref_trainer, trainer], args.warmup, rewards=[False, base.takes_rewards]
        )
        batch = _forward_inputs(ref_run["inputs"] or {})
        if batch is None:
            raise SystemExit(
                f"trl-ext bench: no input_ids or prompt/completion ids in {reference.__name__}'s loss inputs"
            )
        forward_s, forward_cpu_s = _time_forward(ref_trainer.model, batch, max(args.steps, 1))
        step_tokens = list(batch["input_ids"].shape)
        dtype = str(ref_trainer.model.dtype).replace("torch.", "")
        extra = method.forwards_for(trainer.args, trainer.model)
        config = trainer.args
        method_trainer = type(trainer).__name__
        del ref_run["inputs"], method_run["inputs"], batch
        del ref_trainer, trainer  # the models and optimizer states, before the report is assembled
        gc.collect()

    ref = _summary(f"{base.name} ({reference.__name__})", reference.__name__, ref_run)
    meth = _summary(args.method, method_trainer, method_run)
    budget = ref["step_s"] + extra * forward_s
    cpu_budget = ref["step_cpu_s"] + extra * forward_cpu_s
    report: dict[str, Any] = {
        "method": args.method,
        "base": base.name,
        "reference": f"{reference.__name__} ({reference.__module__.split('.')[0]})",
        "reference_drops": dropped,
        "model": args.model_name_or_path,
        "dataset": stage.script_args.dataset_name,
        "device": device_name(),
        "dtype": dtype + (" 4-bit QLoRA" if args.load_in_4bit else ""),
        "batch": _batch_entry(config),
        "step_tokens": step_tokens,
        "steps": len(method_run["timed"]),
        "warmup": args.warmup,
        "results": [ref, meth],
        "time_ratio": _ratio(meth["step_s"], ref["step_s"]),
        "cpu_ratio": _ratio(meth["step_cpu_s"], ref["step_cpu_s"]),
        "peak_ratio": _ratio(meth["peak_mib"], ref["peak_mib"]),
        "forward_s": forward_s,
        "forward_cpu_s": forward_cpu_s,
        "extra_forwards": extra,
        "budget_s": budget,
        "cpu_budget_s": cpu_budget,
        "time_vs_budget": _ratio(meth["step_s"], budget),
        "cpu_vs_budget": _ratio(meth["step_cpu_s"], cpu_budget),
        "tolerance": TOLERANCE,
        "within_budget": meth["step_s"] <= TOLERANCE * budget,
        "cpu_within_budget": meth["step_cpu_s"] <= TOLERANCE * cpu_budget,
    }
    if base.takes_rewards:  # the method's reward shares, as `--only_rewards` reports them
        report["reward_weights"] = list(config.reward_weights) if config.reward_weights is not None else None
        report["step_s"], report["step_cpu_s"] = meth["step_s"], meth["step_cpu_s"]
        report.update(method_run["clock"].report(method_run["timed"]))
    return report


def format_report(r: dict[str, Any]) -> str:
    b = r["batch"]
    shape = (
        f"{b['completions']} completions ({b['num_generations']} per prompt, <= {b['max_completion_length']} tokens)"
        if "completions" in b
        else f"{b['rows']} rows"
    )
    lines = [
        f"trl-ext bench {r['method']} vs {r['reference']} | model {r['model']} ({r['dtype']}) | {r['device']} | "
        f"{r['dataset']} | {shape} | median of {r['steps']} steps after {r['warmup']} warm-up",
        f"{'':<28}{'step (s)':>10}{'CPU-s / step':>14}{'peak MiB':>11}",
    ]
    for m in r["results"]:
        lines.append(f"{m['name']:<28}{m['step_s']:>10.3f}{m['step_cpu_s']:>14.3f}{m['peak_mib']:>11.1f}")
    lines.append(f"{'ratio':<28}{r['time_ratio']:>9.2f}x{r['cpu_ratio']:>13.2f}x{r['peak_ratio']:>10.2f}x")
    verdict = "within" if r["within_budget"] else "OVER"
    cpu_verdict = "within" if r["cpu_within_budget"] else "OVER"
    lines.append(
        f"intrinsic budget: reference step + {r['extra_forwards']:g} forward(s) of {r['forward_s']:.3f} s "
        f"({r['step_tokens'][0]} x {r['step_tokens'][1]} tokens, no grad) = {r['budget_s']:.3f} s; "
        f"{r['method']} / budget = {r['time_vs_budget']:.2f} ({verdict} intrinsic x {r['tolerance']:g}); "
        f"CPU-s: {r['cpu_vs_budget']:.2f} ({cpu_verdict})"
    )
    if r["reference_drops"]:
        lines.append(f"(the reference takes no {', '.join(r['reference_drops'])}: built without)")
    if "rewards" in r:
        from trl_ext.cli.bench_rewards import format_report as format_rewards

        lines += ["", *format_rewards(r).splitlines()[1:]]  # the reward rows of the method's steps
    return "\n".join(lines)
