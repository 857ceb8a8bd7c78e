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
- the rollout temperature, which `__init__` copies from `args.temperature` into the sampler and the fused LM heads
  (`set_rollout_temperature` changes it during training).
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


def rollout_temperature(trainer: Any) -> float:
    """The temperature GRPOTrainer samples its rollouts at and divides the logits by for its log-probs and `entropy`."""
    return float(trainer.temperature)


def set_rollout_temperature(trainer: Any, temperature: float) -> None:
    """Make GRPOTrainer sample and score at `temperature` from its next generation batch on.

    TRL 1.16 reads `args.temperature` once, in `__init__`, into five places: `trainer.temperature`, the sampling
    `generation_config` and `generation_kwargs` (transformers generation), the vLLM backend's `temperature`, and the
    fused LM head patched onto the policy and the reference model (`add_fused_lm_head(temperature=...)`, a closure
    over the value), which gives the old/new log-probs and the logged `entropy`. All five are set here; the fused
    heads are patched again from the models' own forwards. Call it only between generation batches: a buffered batch
    sampled at the old temperature would otherwise be scored at the new one."""
    from trl.trainer.utils import add_fused_lm_head

    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    trainer.temperature = temperature
    trainer.args.temperature = temperature
    if getattr(trainer, "generation_config", None) is not None:
        trainer.generation_config.temperature = temperature
    if isinstance(getattr(trainer, "generation_kwargs", None), dict):
        trainer.generation_kwargs["temperature"] = temperature
    if getattr(trainer, "vllm_generation", None) is not None:
        trainer.vllm_generation.temperature = temperature
    cast = bool(getattr(trainer.args, "cast_lm_head_to_fp32", False))
    policy = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    _repatch_fused_head(policy, add_fused_lm_head, temperature, cast, ("log_probs", "entropy"))
    if getattr(trainer, "ref_model", None) is not None:
        ref = trainer.accelerator.unwrap_model(trainer.ref_model)
        _repatch_fused_head(ref, add_fused_lm_head, temperature, cast, ("log_probs",))


def _repatch_fused_head(model: Any, add_fused_lm_head: Callable, temperature: float, cast: bool, outputs) -> None:
    # TRL's patch is an instance `forward` over the class's; dropping it first keeps one layer, not one per change.
    if "forward" not in vars(model):
        raise RuntimeError(
            f"{type(model).__name__} has no fused LM head patched onto it: GRPOTrainer (trl {TESTED_TRL}) patches one "
            "in __init__; this trl changed how, so trl_ext.compat.grpo_seams.set_rollout_temperature needs updating."
        )
    vars(model).pop("forward")
    add_fused_lm_head(model, temperature=temperature, cast_lm_head_to_fp32=cast, outputs=outputs)


def samples_rollouts(trainer: Any) -> bool:
    """Whether `trainer` generates rollouts through GRPOTrainer's seams and temperature (GRPO and its subclasses)."""
    return hasattr(trainer, "_generate_and_score_completions") and hasattr(trainer, "temperature")
