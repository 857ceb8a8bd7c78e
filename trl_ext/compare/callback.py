"""What `trl-ext compare` records while an arm trains: the metric every `eval_every` steps (for the plot), and the
arm's cost (step time and CPU-seconds with the evaluations taken out, peak memory, trainable parameters, tokens).

The metric is measured on the main process between optimiser steps, so it needs the whole model there: under
ZeRO-3 or FSDP (parameters sharded) the arm is refused before its first step unless `eval_every` is 0, and the
final model is measured from its saved weights instead. The history goes into every checkpoint, so an arm resumed
after an interruption keeps the points measured before it.

An arm that chains stages gets one recorder per stage (`stage_index`), each writing the arm's record: a later stage
starts from the record its predecessor left (steps, costs, tokens and history run on across the stages; the metric
is measured again at its start, on the previous stage's model), also when a rerun kept the earlier stages.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trl_ext.compare.metrics import MetricSpec, measure
from trl_ext.training.cost import PeakMemory, cpu_seconds

logger = logging.getLogger(__name__)

HISTORY = "compare_history.json"
TRAIN_RECORD = "compare_train.json"


class CompareEvalCallback(TrainerCallback):
    def __init__(
        self,
        metric: MetricSpec,
        rows: list[dict[str, Any]],
        eval_every: int = 0,
        max_new_tokens: int = 64,
        batch_size: int = 16,
        seed: int = 0,
        output_dir: str | None = None,
        stage_index: int = 0,
    ) -> None:
        self.metric, self.rows, self.eval_every = metric, rows, eval_every
        self.generation = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed}
        # The arm's folder: a method that trains in phases (LT-SFT) points args.output_dir at each phase's folder.
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []
        self.eval_wall = self.eval_cpu = 0.0
        self.generated_tokens = 0.0
        self._last_logged_step = 0
        # Totals of the earlier train() calls of this arm: a phased method calls train() once per phase, each
        # starting again from step 0, and its record covers them all.
        self.earlier = {"steps": 0, "steps_timed": 0, "wall": 0.0, "cpu": 0.0, "tokens": 0.0, "peak": 0.0}
        # Of an arm's later stage: what its earlier stages used (another trainer: its token count started at 0)
        self.stage_index, self.train_calls = stage_index, 0
        self.before = {"tokens": 0.0, "trainable": 0}
        # The earlier stages' own budgets (steps, tokens trained, tokens generated), and where this stage's start
        self.earlier_stages: list[dict[str, Any]] = []
        # TRL's logged training metrics of the earlier stages and train() calls (each entry tagged with its stage)
        self.earlier_logs: list[dict[str, Any]] = []
        self.stage_start = {"steps": 0, "generated": 0.0}

    def _measure(self, state, model, tokenizer) -> None:
        if not state.is_world_process_zero or model is None or tokenizer is None:
            return
        wall, cpu = time.perf_counter(), cpu_seconds()
        was_training = model.training
        try:
            _, figures = measure(self.metric, model, tokenizer, self.rows, **self.generation)
        finally:
            model.train(was_training)
        self.history.append({"step": self.earlier["steps"] + state.global_step, **figures})
        self.eval_wall += time.perf_counter() - wall
        self.eval_cpu += cpu_seconds() - cpu

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        from trl_ext.training.sharding import full_shape, is_sharded

        if self.eval_every and model is not None and is_sharded(model):
            raise ValueError(
                "trl-ext compare: --eval_every needs the whole model on the main process, but this engine shards "
                "the parameters (ZeRO-3 / FSDP); pass --eval_every 0 (each arm's final model is measured from its "
                "saved weights)."
            )
        continues_arm = self.stage_index > 0 and self.train_calls == 0
        self.train_calls += 1
        if continues_arm:
            self._continue_arm(args)
        resumed = getattr(args, "resume_from_checkpoint", None)
        if resumed and (Path(resumed) / HISTORY).is_file():
            self.history = json.loads((Path(resumed) / HISTORY).read_text())["history"]
        # full_shape: a ZeRO-3 / FSDP2 parameter's whole size, not this process's shard
        self.trainable = (
            sum(full_shape(p).numel() for p in model.parameters() if p.requires_grad) if model is not None else 0
        )
        self.start_step = state.global_step
        self._last_logged_step = state.global_step
        if self.eval_every and state.global_step == 0 and (not self.history or continues_arm):
            # step 0: the starting point every arm shares; a later stage's start: the previous stage's final model
            self._measure(state, model, processing_class)
        self.eval_wall = self.eval_cpu = 0.0  # this call's evaluations, taken out of its cost
        self.memory = PeakMemory(args.device).start()
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()

    def _continue_arm(self, args) -> None:
        """Start from the record the arm's previous stage wrote (it covers stages 0..stage_index-1)."""
        path = Path(self.output_dir or args.output_dir) / TRAIN_RECORD
        record = json.loads(path.read_text()) if path.is_file() else {}
        if record.get("stages") != self.stage_index:
            logger.warning(
                "trl-ext compare: %s holds no record of this arm's first %d stage(s); its costs start here",
                path,
                self.stage_index,
            )
            return
        self.history = record["history"]
        self.earlier.update({key: record["totals"][key] for key in ("steps", "steps_timed", "wall", "cpu", "peak")})
        self.before = {"tokens": record.get("num_tokens") or 0.0, "trainable": record.get("trainable_params") or 0}
        self.generated_tokens = record.get("generated_tokens") or 0.0
        self.earlier_stages = record.get("per_stage", [])
        self.earlier_logs = record.get("log_history", [])
        self.stage_start = {"steps": self.earlier["steps"], "generated": self.generated_tokens}

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.eval_every and state.global_step % self.eval_every == 0 and state.global_step < state.max_steps:
            self._measure(state, model, processing_class)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """GRPO/RLOO: generated tokens = mean completion length x completions per optimiser step x steps since the
        previous log (exact with logging_steps 1)."""
        length = (logs or {}).get("completions/mean_length")
        if length is not None:
            per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
            self.generated_tokens += float(length) * per_step * (state.global_step - self._last_logged_step)
        self._last_logged_step = state.global_step

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / HISTORY).write_text(json.dumps({"history": self.history}))

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        done = self.earlier
        done["steps"] += state.global_step
        done["steps_timed"] += state.global_step - self.start_step
        done["wall"] += time.perf_counter() - self.wall - self.eval_wall
        done["cpu"] += cpu_seconds() - self.cpu - self.eval_cpu
        done["peak"] = max(done["peak"], (self.memory.stop().base + self.memory.peak) / 2**20)  # in use, not the rise
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        tokens = [entry["num_tokens"] for entry in state.log_history if "num_tokens" in entry]
        # TRL's mean token entropy of what the policy trained on over the last logging interval (GRPO/RLOO: its own
        # completions), the diversity figure CHORD's card reads beside accuracy
        entropies = [entry["entropy"] for entry in state.log_history if "entropy" in entry]
        done["tokens"] = max(done["tokens"], tokens[-1] if tokens else 0.0)  # TRL's count runs on across calls
        steps = done["steps_timed"]
        logs = [*self.earlier_logs, *({"stage": self.stage_index, **entry} for entry in state.log_history)]
        self.earlier_logs = logs  # a phased method's next train() call starts a new log
        record = {
            "history": self.history,
            "steps": done["steps"],
            "steps_timed": steps,
            "train_loss": losses[-1] if losses else None,
            "train_entropy": entropies[-1] if entropies else None,
            "step_time_s": done["wall"] / steps if steps else None,
            "cpu_s": done["cpu"],
            "peak_memory_mib": done["peak"],
            # of a chained arm: the most any stage trained (LP-FT: the full stage, not the head-only one)
            "trainable_params": max(self.trainable, self.before["trainable"]),
            "num_tokens": self.before["tokens"] + done["tokens"] or None,
            "generated_tokens": self.generated_tokens or None,
            "world_size": args.world_size,
            "pid": os.getpid(),
            "stages": self.stage_index + 1,  # the arm's stages this record covers
            # each stage's budget: a chained arm states what each of its stages spent (SFT: tokens trained on,
            # GRPO/RLOO: tokens generated), not one sum of unlike counts
            "per_stage": [
                *self.earlier_stages,
                {
                    "steps": done["steps"] - self.stage_start["steps"],
                    "trained_tokens": done["tokens"] or None,
                    "generated_tokens": self.generated_tokens - self.stage_start["generated"] or None,
                },
            ],
            "totals": {key: done[key] for key in ("steps", "steps_timed", "wall", "cpu", "peak")},
            # every figure the trainer logged (GRPO's reward and zero-std share, a plugin's own metrics): compare.json
            # keeps them per arm, for curves beyond the table's columns
            "log_history": logs,
        }
        folder = Path(self.output_dir or args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRAIN_RECORD).write_text(json.dumps(record, indent=2))
