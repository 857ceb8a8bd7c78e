"""`EntropyTargetCallback`: watches a GRPO run's rollout entropy against the target (logs `acetemp/entropy_gap`,
`acetemp/temperature`), optionally picks the starting temperature with the selector before the first rollout
(`select=True`), and optionally re-tunes it during training (`adaptive=True`, our extension of the paper).

A new temperature takes effect at the next generation batch, never inside one: the old log-probs of a buffered
batch were computed at the temperature it was sampled at (card pitfall). Its state (current T, counters, the
selection table) is an `ExportableState`, saved in each checkpoint's `trainer_state.json` under
`stateful_callbacks` and restored on `resume_from_checkpoint`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from typing import Any

from transformers.trainer_callback import ExportableState

from trl_ext.training.bound_callbacks import BoundCallback
from trl_ext.training.log_figures import add_to_log

logger = logging.getLogger(__name__)

SELECTION_FILE = "acetemp_selection.json"


class EntropyTargetCallback(BoundCallback, ExportableState):
    """Keeps GRPO's rollout entropy near `target_entropy` (nats per completion token, TRL's logged `entropy`).

    Args:
        target_entropy: H* (0.3, the paper's).
        tol: the band [H* - tol, H* + tol] counted as on target.
        adaptive: re-tune T during training: each check (every `check_every` steps, on the latest logged entropy)
            outside the band counts towards `patience`; `patience` checks in a row on the same side move T by
            `step` (down when the entropy is too high), clipped to [t_min, t_max]. Off: only monitor.
        temperature: the starting T (default: the trainer's `temperature`, or the selector's choice).
        select: run `select_rl_temperature` on the training prompts before the first rollout and start there (a
            fresh run only; a resumed run keeps its saved T). The table goes to `<output_dir>/acetemp_selection.json`.
        n_prompts, max_new_tokens, method, max_evals, seed: the selector's probe (default max_new_tokens: the
            run's `max_completion_length`, the RL budget).
    """

    def __init__(
        self,
        target_entropy: float = 0.3,
        tol: float = 0.05,
        adaptive: bool = False,
        check_every: int = 10,
        patience: int = 3,
        step: float = 0.05,
        t_min: float = 0.6,
        t_max: float = 1.2,
        temperature: float | None = None,
        select: bool = False,
        n_prompts: int = 64,
        max_new_tokens: int | None = None,
        method: str = "bisect",
        max_evals: int = 6,
        seed: int = 0,
    ) -> None:
        for name, value in (("tol", tol), ("step", step)):
            if not value >= 0:
                raise ValueError(f"acereason_temp: {name} must be >= 0, got {value}")
        for name, value in (("check_every", check_every), ("patience", patience), ("n_prompts", n_prompts)):
            if int(value) < 1:
                raise ValueError(f"acereason_temp: {name} must be >= 1, got {value}")
        if not 0 < t_min <= t_max:
            raise ValueError(f"acereason_temp: need 0 < t_min <= t_max, got t_min={t_min}, t_max={t_max}")
        if method not in ("bisect", "grid"):
            raise ValueError(f"acereason_temp: method must be 'bisect' or 'grid', got {method!r}")
        self.target_entropy = float(target_entropy)
        self.tol = float(tol)
        self.adaptive = bool(adaptive)
        self.check_every = int(check_every)
        self.patience = int(patience)
        self.step = float(step)
        self.t_min, self.t_max = float(t_min), float(t_max)
        self.select = bool(select)
        self.n_prompts = int(n_prompts)
        self.max_new_tokens = max_new_tokens
        self.method = method
        self.max_evals = int(max_evals)
        self.seed = int(seed)
        # State (saved with checkpoints): the T to sample at, the T the current rollouts were sampled at, the
        # consecutive checks above/below the band, the step of the last check, the latest logged entropy.
        self.temperature: float | None = None if temperature is None else float(temperature)
        self.applied_temperature: float | None = None
        self.above = 0
        self.below = 0
        self.last_check_step = 0
        self.last_entropy: float | None = None
        self.selected = False
        self.selection: list[dict[str, float]] | None = None
        self.history: list[dict[str, float]] = []  # every change: step, old T, new T, entropy that caused it

    # --- the rule -------------------------------------------------------------------------------------------------
    def check(self, entropy: float, step: int) -> float | None:
        """One check of the logged `entropy` at global step `step`; returns the new T when it moves, else None."""
        self.last_check_step = step
        gap = entropy - self.target_entropy
        if gap > self.tol:
            self.above, self.below = self.above + 1, 0
        elif gap < -self.tol:
            self.above, self.below = 0, self.below + 1
        else:
            self.above = self.below = 0
            return None
        if not self.adaptive or self.temperature is None:
            return None
        direction = -1 if self.above >= self.patience else 1 if self.below >= self.patience else 0
        if not direction:
            return None
        self.above = self.below = 0
        new = round(min(self.t_max, max(self.t_min, self.temperature + direction * self.step)), 6)
        if new == self.temperature:
            return None
        self.history.append({"step": step, "from": self.temperature, "to": new, "entropy": entropy})
        logger.info(
            "acereason_temp: entropy %.4f off target %.3f: temperature %.4g -> %.4g",
            entropy,
            self.target_entropy,
            self.temperature,
            new,
        )
        self.temperature = new
        return new

    # --- binding to a GRPO trainer --------------------------------------------------------------------------------
    def bind(self, trainer: Any) -> None:
        """Start from the trainer's temperature (unless given) and apply a changed T before each generation batch."""
        from trl_ext.compat.grpo_seams import around_generate_and_score, rollout_temperature, samples_rollouts

        if not samples_rollouts(trainer):
            raise TypeError(
                f"acereason_temp watches GRPO rollouts; {type(trainer).__name__} does not generate any "
                "(use it with a GRPO-based method)."
            )
        super().bind(trainer)
        if self.temperature is None:
            self.temperature = rollout_temperature(trainer)
        self.applied_temperature = rollout_temperature(trainer)

        def before_generation(inner, *args, **kwargs):
            # transformers may replace this callback by a restored copy (restore_callback_states_from_checkpoint):
            # read the live one.
            live = next((c for c in trainer.callback_handler.callbacks if isinstance(c, EntropyTargetCallback)), self)
            live.trainer = trainer
            live.apply()
            return inner(*args, **kwargs)

        around_generate_and_score(trainer, before_generation)
        # Reporting integrations receive the logs before the user's callbacks: move this one ahead of them so the
        # acetemp/* keys it adds reach them too.
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
            callbacks.insert(0, self)

    def apply(self) -> None:
        """Set the trainer's rollout temperature to `self.temperature` if it differs (between generation batches)."""
        from trl_ext.compat.grpo_seams import rollout_temperature, set_rollout_temperature

        if self.trainer is None or self.temperature is None:
            return
        if rollout_temperature(self.trainer) != self.temperature:
            set_rollout_temperature(self.trainer, self.temperature)
        self.applied_temperature = self.temperature

    # --- events -----------------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__) if state.global_step > 0 else None
        if isinstance(saved, list):
            saved = saved[0] if saved else None
        if saved:  # resumed: the checkpoint's T and counters, not the command line's
            for name, value in saved.get("attributes", {}).items():
                setattr(self, name, value)
            logger.info("acereason_temp: resumed at temperature %s", self.temperature)
        elif self.select and not self.selected:
            self.run_selection(args, model, processing_class)
        self.apply()

    def run_selection(self, args, model, tokenizer) -> None:
        from .selector import format_table, select_rl_temperature, table_rows

        trainer = self.trainer
        if trainer is None or model is None or tokenizer is None:
            raise RuntimeError(
                "acereason_temp: select=true needs the callback bound to a GRPO trainer (bind_callbacks)"
            )
        # the first rows, as the probe (a streamed dataset has no select: read its first rows)
        prompts = [row["prompt"] for row in itertools.islice(iter(trainer.train_dataset), self.n_prompts)]
        budget = self.max_new_tokens or getattr(args, "max_completion_length", None) or 512
        chosen, table = select_rl_temperature(
            model,
            getattr(tokenizer, "tokenizer", tokenizer),
            prompts,
            target_entropy=self.target_entropy,
            t_min=self.t_min,
            t_max=self.t_max,
            method=self.method,
            max_evals=self.max_evals,
            max_new_tokens=int(budget),
            seed=self.seed,
            n_prompts=self.n_prompts,
            batch_size=max(1, int(getattr(args, "per_device_train_batch_size", 8))),
            tol=self.tol,
            top_p=float(getattr(args, "top_p", 1.0) or 1.0),
            top_k=int(getattr(args, "top_k", 0) or 0),
        )
        rows = table_rows(table)
        if trainer.accelerator.num_processes > 1:  # every process samples at the main process's choice
            from accelerate.utils import broadcast_object_list

            chosen, rows = broadcast_object_list([chosen, rows])
        self.temperature, self.selected, self.selection = float(chosen), True, rows
        print(
            f"acereason_temp: selected T={chosen:.4g} (target entropy {self.target_entropy})\n"
            + format_table(table, chosen),
            flush=True,
        )
        if args.should_save:
            os.makedirs(args.output_dir, exist_ok=True)
            with open(os.path.join(args.output_dir, SELECTION_FILE), "w") as f:
                json.dump(
                    {"target_entropy": self.target_entropy, "temperature": chosen, "table": self.selection},
                    f,
                    indent=1,
                )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "entropy" not in logs or logs["entropy"] is None:
            return
        entropy = float(logs["entropy"])
        self.last_entropy = entropy
        extra = {"acetemp/entropy_gap": entropy - self.target_entropy}
        if self.applied_temperature is not None:
            extra["acetemp/temperature"] = self.applied_temperature
        add_to_log(state, logs, extra)
        if state.global_step - self.last_check_step >= self.check_every:
            self.check(entropy, state.global_step)

    def state(self) -> dict[str, Any]:
        return {
            "args": {
                "target_entropy": self.target_entropy,
                "tol": self.tol,
                "adaptive": self.adaptive,
                "check_every": self.check_every,
                "patience": self.patience,
                "step": self.step,
                "t_min": self.t_min,
                "t_max": self.t_max,
                "select": self.select,
                "n_prompts": self.n_prompts,
                "max_new_tokens": self.max_new_tokens,
                "method": self.method,
                "max_evals": self.max_evals,
                "seed": self.seed,
            },
            "attributes": {
                "temperature": self.temperature,
                "above": self.above,
                "below": self.below,
                "last_check_step": self.last_check_step,
                "last_entropy": self.last_entropy,
                "selected": self.selected,
                "selection": self.selection,
                "history": self.history,
            },
        }


def make_callback(**options: Any) -> EntropyTargetCallback:
    """`--callbacks acereason_temp[:key=value...]` (see `EntropyTargetCallback`)."""
    return EntropyTargetCallback(**options)
