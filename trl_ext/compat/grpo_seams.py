"""GRPOTrainer's private generation and scoring steps that a method may extend, each wrapped once here.

Written against trl 1.16; tests/test_compat_grpo_seams.py pins the signatures and the call order, and fails loudly
when TRL renames or reorders them. Each wrapper replaces the bound method on one trainer instance (never on the
class), so other trainers and wrappers applied later (the bench's reward timer) are unaffected.

- `_generate_and_score_completions(inputs)`: one generation batch, from the rows to the dict of padded tensors that
  the loss reads (`advantages` may be (B,) or (B, T): TRL unsqueezes a (B,) tensor in `_compute_loss`).
- `_generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, ...)`: token ids in, the
  completion ids (and sampling log-probs or None) out, one row per prompt row.
- `_calculate_rewards(inputs, prompts, completions, completion_ids_list)`: the rewards of every process's rows,
  gathered ((N_global, n_funcs), NaN where a function gave None).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

TESTED_TRL = "1.16"
SEAMS = ("_generate_and_score_completions", "_generate_single_turn", "_calculate_rewards")


def _wrap(trainer: Any, name: str, around: Callable[..., Any]) -> None:
    inner = getattr(trainer, name)

    @functools.wraps(inner)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return around(inner, *args, **kwargs)

    setattr(trainer, name, wrapped)


def around_generate_and_score(trainer: Any, around: Callable[..., dict[str, Any]]) -> None:
    """Call `around(inner, inputs) -> output` instead of GRPOTrainer's `_generate_and_score_completions(inputs)`;
    `inner(inputs)` runs TRL's (rows in, the batch dict out)."""
    _wrap(trainer, "_generate_and_score_completions", around)


def around_single_turn_generation(trainer: Any, around: Callable[..., tuple[list, Any]]) -> None:
    """Call `around(inner, prompt_ids, *args, **kwargs) -> (completion_ids, logprobs)` instead of GRPOTrainer's
    `_generate_single_turn`; `inner` generates from lists of token ids, one row per prompt row."""
    _wrap(trainer, "_generate_single_turn", around)


def observe_rewards(trainer: Any, observe: Callable[[Any], None]) -> None:
    """Hand every gathered reward matrix of GRPOTrainer's `_calculate_rewards` ((N_global, n_funcs) tensor, rows in
    the order of the processes' generation batches) to `observe` before TRL turns it into advantages."""

    def around(inner: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        rewards_per_func = inner(*args, **kwargs)
        observe(rewards_per_func)
        return rewards_per_func

    _wrap(trainer, "_calculate_rewards", around)
