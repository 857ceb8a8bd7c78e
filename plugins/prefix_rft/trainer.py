"""PrefixRFTTrainer: GRPOTrainer whose groups hold rollouts that start from a demonstration prefix (arXiv 2507.01679).

Per generation batch (train mode):
1. `draw_plan`: from the trainer's own numpy generator (never the global RNG, so m = 0 leaves every rollout of plain
   GRPO untouched), every process draws the same plan for the whole gathered batch: the last m rows of each group are
   prefixed, in variants of n rows sharing one ratio rho = lo + (hi(t) - lo) u, u ~ Beta(a, b).
2. Generation (`_generate_single_turn` seam): a prefixed row's prompt ids get its prefix appended; the generated
   continuation is returned as prefix ++ continuation, cut to max_completion_length (the continuation is cut, never
   the prefix). The prefix is the demonstration's first l tokens, decoded and re-rendered after the prompt (the chat
   template's `continue_final_message`) and tokenised with it, as the official code does; or the ids themselves.
3. Rewards (`_calculate_rewards` seam): the gathered reward matrix is kept; in the official advantage mode the
   per-token (B, T) advantages are rebuilt from it (`_generate_and_score_completions` seam): continuation tokens get
   r - mean of their sub-group, prefix tokens (A - mean of the plain rollouts) / n.
4. Loss: TRL's, with `prefix_mask` riding in the batch. TRL's `get_high_entropy_mask` hook is pointed at the prefix
   tokens: the N - int((1 - q) N) highest-entropy prefix tokens of the micro-batch (all processes') keep their loss,
   the others are zeroed while staying in the denominators - zeroing a token's loss is zeroing its advantage, since
   every TRL loss type is linear in A. Official aggregation multiplies TRL's dr_grpo loss by the micro-batch's rows.

The generator's state and the recent plans are saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOTrainer
from trl.data_utils import is_conversational

from trl_ext.compat.grpo_seams import around_generate_and_score, around_single_turn_generation, observe_rewards
from trl_ext.compat.trainer import record_metric

from .config import PrefixRFTConfig
from .paper import PAPER
from .prefix import PLAIN, band_high, draw_plan, official_advantages, prefix_length

logger = logging.getLogger(__name__)
STATE_FILE = "trl_ext_prefix_rft.json"
HISTORY = 1000  # plans kept for inspection (step, ratios, prefix lengths)


def demo_text(value: Any) -> str | None:
    """The demonstration's text: a string, a message dict, or a message list (its last assistant message)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return demo_text(value.get("content"))
    if isinstance(value, (list, tuple)) and value:
        assistant = [m for m in value if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return demo_text(assistant[-1] if assistant else value[-1])
    return None


@dataclass
class PrefixRow:
    prompt: Any
    demo_ids: list[int]
    length: int


class PrefixRFTTrainer(GRPOTrainer):
    """Prefix-RFT (arXiv 2507.01679) on TRL's GRPOTrainer."""

    config_class = PrefixRFTConfig
    _name = "Prefix-RFT"
    _tag_names = ["trl", "grpo", "prefix-rft", "trl-ext"]
    paper = PAPER

    def __init__(self, model, reward_funcs=None, args: PrefixRFTConfig | None = None, *posargs, **kwargs):
        if args is None:
            args = PrefixRFTConfig(output_dir="prefix_rft")
        if not isinstance(args, PrefixRFTConfig):
            raise TypeError(f"PrefixRFTTrainer needs a PrefixRFTConfig, got {type(args).__name__}.")
        super().__init__(model, reward_funcs, args, *posargs, **kwargs)
        if self.tools or self.rollout_func is not None or self.environment_factories is not None:
            raise ValueError(
                "Prefix-RFT injects prefixes into single-turn generation: tools, rollout_func and "
                "environments are not supported."
            )
        self._check_dataset(self.train_dataset)
        seed = args.seed if args.prefix_seed is None else args.prefix_seed
        self.prefix_rng = np.random.default_rng(seed)
        self.prefix_history: list[dict] = []
        self.current_prefix_mask: torch.Tensor | None = None
        self.retokenize_fallbacks = 0
        self._pending: list[PrefixRow | None] | None = None
        self._lengths: list[int] = []
        self._rewards: torch.Tensor | None = None
        if args.num_prefixed_per_group > 0 and args.prefix_entropy_keep_quantile < 1.0:
            # TRL calls `get_high_entropy_mask` (overridden below for the prefix tokens) only below 1.0
            self.top_entropy_quantile = args.prefix_entropy_keep_quantile
        around_generate_and_score(self, self.generate_and_score_with_prefixes)
        around_single_turn_generation(self, self.generate_with_prefixes)
        observe_rewards(self, self.keep_rewards)
        self.add_callback(_PrefixStateCallback(self))

    def _check_dataset(self, dataset) -> None:
        args: PrefixRFTConfig = self.args
        names = getattr(dataset, "column_names", None)
        if args.num_prefixed_per_group > 0 and names is not None and args.demo_column not in names:
            raise ValueError(
                f"Prefix-RFT needs the demonstration column {args.demo_column!r} (--demo_column); the training "
                f"dataset has {', '.join(names)}. builtin:prefix_arith and builtin:prefix_reverse carry one."
            )

    @property
    def tokenizer_(self):
        return getattr(self.processing_class, "tokenizer", self.processing_class)

    # --- 1. the plan --------------------------------------------------------------------------------------------------
    def schedule_total(self) -> int:
        args: PrefixRFTConfig = self.args
        return args.prefix_schedule_steps or max(self.state.max_steps or args.max_steps, 1)

    def band_high(self, step: int | None = None) -> float:
        args: PrefixRFTConfig = self.args
        step = self.state.global_step if step is None else step
        return band_high(
            step, self.schedule_total(), args.prefix_ratio_high_start, args.prefix_ratio_high_end, args.prefix_schedule
        )

    def generate_and_score_with_prefixes(self, inner, inputs: list[dict]) -> dict:
        args: PrefixRFTConfig = self.args
        if not self.model.training or args.num_prefixed_per_group == 0:
            return inner(inputs)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        n_local = len(inputs)
        hi = self.band_high()
        plan = draw_plan(
            self.prefix_rng,
            n_local * world,
            self.num_generations,
            args.num_prefixed_per_group,
            args.prefix_rollouts_per_variant,
            args.prefix_ratio_low,
            hi,
            args.prefix_beta_a,
            args.prefix_beta_b,
        )
        rows: list[PrefixRow | None] = []
        for i, x in enumerate(inputs):
            g = rank * n_local + i
            if plan.variant[g] == PLAIN:
                rows.append(None)
                continue
            text = demo_text(x.get(args.demo_column))
            ids = self.tokenizer_(text, add_special_tokens=False)["input_ids"] if text else []
            length = prefix_length(plan.ratio[g], len(ids), args.min_prefix_len, args.max_completion_length - 1)
            rows.append(PrefixRow(x["prompt"], list(ids), length) if length > 0 else None)
        self._pending, self._lengths, self._rewards = rows, [0] * n_local, None
        try:
            output = inner(inputs)
        finally:
            self._pending = None
        return self.add_prefix_fields(output, plan, hi)

    # --- 2. generation ------------------------------------------------------------------------------------------------
    def prefix_ids(self, prompt_ids: list[int], row: PrefixRow) -> list[int]:
        """The completion's prefix tokens for `row` after `prompt_ids` (see the module docstring)."""
        args: PrefixRFTConfig = self.args
        cut = row.demo_ids[: row.length]
        if not args.prefix_retokenize:
            return cut
        text = self.tokenizer_.decode(cut)
        if is_conversational({"prompt": row.prompt}):
            full = self.processing_class.apply_chat_template(
                conversation=list(row.prompt) + [{"role": "assistant", "content": text}],
                chat_template=self.chat_template,
                continue_final_message=True,
                tokenize=True,
                return_dict=True,
                **self.chat_template_kwargs,
            )["input_ids"]
        else:
            full = self.processing_class(text=row.prompt + text)["input_ids"]
        full = list(full[0]) if full and isinstance(full[0], list) else list(full)
        n = len(prompt_ids)
        if len(full) <= n or full[:n] != list(prompt_ids):
            self.retokenize_fallbacks += 1  # the rendering does not extend the prompt's ids: feed the ids instead
            return cut
        return full[n:][: args.max_completion_length - 1]

    def generate_with_prefixes(self, inner, prompt_ids, *args, **kwargs):
        rows = self._pending
        if not rows or not any(rows):
            return inner(prompt_ids, *args, **kwargs)
        if len(rows) != len(prompt_ids):
            raise RuntimeError(f"Prefix-RFT planned {len(rows)} rows, generation got {len(prompt_ids)}.")
        prefixes = [
            self.prefix_ids(list(p), r) if r is not None else [] for p, r in zip(prompt_ids, rows, strict=True)
        ]
        extended = [list(p) + q for p, q in zip(prompt_ids, prefixes, strict=True)]
        completion_ids, logprobs = inner(extended, *args, **kwargs)
        budget = self.args.max_completion_length
        completion_ids = [(q + list(c))[:budget] for q, c in zip(prefixes, completion_ids, strict=True)]
        if logprobs is not None:  # no sampling log-prob for demonstration tokens: NaN (TRL neutralises those)
            logprobs = [([None] * len(q) + list(lp))[:budget] for q, lp in zip(prefixes, logprobs, strict=True)]
        self._lengths = [len(q) for q in prefixes]
        return completion_ids, logprobs

    # --- 3. rewards and advantages ----------------------------------------------------------------------------------
    def keep_rewards(self, rewards_per_func: torch.Tensor) -> None:
        self._rewards = rewards_per_func.detach()

    def add_prefix_fields(self, output: dict, plan, hi: float) -> dict:
        args: PrefixRFTConfig = self.args
        device = output["completion_ids"].device
        lengths = torch.tensor(self._lengths, device=device)
        local_variant = torch.tensor(
            [
                plan.variant[self.accelerator.process_index * len(self._lengths) + i] if n > 0 else PLAIN
                for i, n in enumerate(self._lengths)
            ],
            device=device,
        )
        variant = self.accelerator.gather(local_variant)
        all_lengths = self.accelerator.gather(lengths)
        width = output["completion_ids"].size(1)
        prefix_mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]) & output[
            "completion_mask"
        ].bool()
        output["prefix_mask"] = prefix_mask.long()
        prefixed = variant != PLAIN

        rewards = None
        if self._rewards is not None:
            rpf = self._rewards.to(device)
            rewards = (rpf * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
            rewards[torch.isnan(rpf).all(dim=1)] = torch.nan
        if args.prefix_advantage_mode == "official" and bool(prefixed.any()) and rewards is not None:
            cont, pre = official_advantages(
                rewards.cpu(), variant.cpu(), self.num_generations, args.prefix_rollouts_per_variant
            )
            rank, n_local = self.accelerator.process_index, len(self._lengths)
            cont = cont[rank * n_local : (rank + 1) * n_local].to(device)
            pre = pre[rank * n_local : (rank + 1) * n_local].to(device)
            output["advantages"] = torch.where(prefix_mask, pre[:, None], cont[:, None])

        ratios = [r for r, p in zip(plan.ratio, prefixed.tolist(), strict=True) if p]
        record_metric(self, "train", "prefix/band_high", hi)
        record_metric(self, "train", "prefix/ratio_mean", float(np.mean(ratios)) if ratios else 0.0)
        record_metric(self, "train", "prefix/tokens", float(all_lengths.sum()))
        if rewards is not None:
            for key, rows in (("prefix/reward_mean", prefixed), ("onpolicy/reward_mean", ~prefixed)):
                chosen = rewards[rows.to(rewards.device)]
                if chosen.numel():
                    record_metric(self, "train", key, float(torch.nanmean(chosen)))
        self.prefix_history = [
            *self.prefix_history,
            {"step": self.state.global_step, "band_high": hi, "ratio": ratios, "length": all_lengths.tolist()},
        ][-HISTORY:]
        return output

    # --- 4. the loss ----------------------------------------------------------------------------------------------------
    def get_high_entropy_mask(self, entropies: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
        """Continuation tokens all kept; of the prefix tokens, those at or above the (1 - q) entropy quantile of the
        micro-batch's prefix tokens (every process's, as TRL's method gathers them)."""
        prefix = self.current_prefix_mask
        if prefix is None:
            return mask.bool()
        prefix = prefix.bool() & mask.bool()
        q = self.args.prefix_entropy_keep_quantile
        kept = super().get_high_entropy_mask(entropies, prefix.long(), 1.0 - q)
        counts = self.accelerator.gather(torch.stack([kept.sum(), prefix.sum()]).reshape(1, 2)).sum(0)
        if counts[1] > 0 and self.model.training:
            record_metric(self, "train", "prefix/kept_tokens_frac", float(counts[0] / counts[1]))
        return (mask.bool() & ~prefix) | kept

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.current_prefix_mask = inputs.get("prefix_mask")
        try:
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self.current_prefix_mask = None
        if self.args.prefix_loss_aggregation == "official":
            # TRL's dr_grpo: sum / (rows * L_max); official: sum over the whole micro-batch / L_max (layout-free:
            # the rows of every process, as DDP averages the processes' gradients)
            loss = loss * inputs["completion_ids"].size(0) * self.accelerator.num_processes
        return loss

    # --- checkpoint state ---------------------------------------------------------------------------------------------
    def prefix_state(self) -> dict:
        return {"rng": self.prefix_rng.bit_generator.state, "history": self.prefix_history}

    def load_prefix_state(self, folder: str) -> bool:
        path = os.path.join(folder, STATE_FILE)
        if not os.path.isfile(path):
            return False
        with open(path) as f:
            state = json.load(f)
        self.prefix_rng.bit_generator.state = state["rng"]
        self.prefix_history = state["history"]
        return True

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        folder = resume_from_checkpoint
        if folder is True:
            folder = get_last_checkpoint(self.args.output_dir)
        if isinstance(folder, str):
            if self.load_prefix_state(folder):
                logger.info("Prefix-RFT: prefix generator restored from %s.", folder)
            else:
                logger.warning("Prefix-RFT: %s holds no prefix generator state; drawing from a fresh one.", folder)
        return super().train(resume_from_checkpoint, *args, **kwargs)


class _PrefixStateCallback(TrainerCallback):
    """Writes the prefix generator's state into every checkpoint (the same on every process: the main one writes)."""

    def __init__(self, trainer: PrefixRFTTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder) and self.trainer.is_world_process_zero():
            with open(os.path.join(folder, STATE_FILE), "w") as f:
                json.dump(self.trainer.prefix_state(), f)
