"""The card's `PaSTPipeline`: PaST as a core recipe (stages run by `trl-ext train`'s runner: kept on rerun, checked
before the first trains), built for any options, including iterative skill refinement.

Plain PaST (refine_rounds K = 1), three stages:
  1. SFT(theta_0, source docs)                    -> theta_sft_S
  2. GRPO(theta_sft_S, source QA, correctness)    -> theta_rl_S;  past_extract saves v = theta_rl_S - theta_sft_S
  3. SFT(theta_0, target docs)                    -> theta_sft_T; past_inject makes it theta_sft_T + lambda v

Iterative refinement (K > 1; our reading of the paper's outline, flagged): the source set is split into K disjoint
subsets (`past_subset`); v_0 = 0; round k trains SFT(theta_0, docs_k) -> theta_sft_k, starts GRPO from
theta_sft_k + v_{k-1} (past_inject with lambda 1 on the SFT stage) and extracts v_k = theta_rl_k - theta_sft_k, which
past_extract computes as (end - start) + v_{k-1} since the start is theta_sft_k + v_{k-1}. The last round's v_K is
the skill vector injected into the target.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .callbacks import SKILL_FILE

DEFAULT_MODEL = "smollm2-135m"
DATASET = "builtin:past_facts"

# Ours: the card gives the paper's setups (Qwen2.5-7B, verl), not values for a 135M model on CPU. SFT must store the
# facts (a high rate, several epochs: 3 epochs at 1e-4 left smollm2-135m naming wrong cities); GRPO teaches the answer
# format from exact-match rewards, with half credit for a verbose correct answer so that it has reward variance.
SFT_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 8,
    "per_device_train_batch_size": 8,
    "learning_rate": 3.0e-4,
}
GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 4,
    "per_device_train_batch_size": 8,
    "max_completion_length": 16,
    "learning_rate": 1.0e-5,
    "max_steps": 100,
}


@dataclass
class PaSTOptions:
    """The card's PaSTPipeline fields. `source_docs` / `source_qa` / `target_docs`: each a stage's `dataset_name`
    (and `dataset_config`); `sft` / `grpo`: flags of those stages (TRL's SFTConfig / GRPOConfig fields)."""

    base_model: str = DEFAULT_MODEL
    source_docs: dict[str, Any] = field(
        default_factory=lambda: {"dataset_name": DATASET, "dataset_config": "source_docs"}
    )
    source_qa: dict[str, Any] = field(default_factory=lambda: {"dataset_name": DATASET, "dataset_config": "source_qa"})
    target_docs: dict[str, Any] = field(
        default_factory=lambda: {"dataset_name": DATASET, "dataset_config": "target_docs"}
    )
    sft: dict[str, Any] = field(default_factory=lambda: dict(SFT_DEFAULTS))
    grpo: dict[str, Any] = field(default_factory=lambda: dict(GRPO_DEFAULTS))
    rewards: str = "normalized_exact_match:partial=0.5"
    lam: float = 1.0
    refine_rounds: int = 1
    exclude_embeddings: bool = True
    output_dir: str = "outputs/past"
    inject_options: dict[str, Any] = field(default_factory=dict)  # past_inject's evaluation options

    def __post_init__(self) -> None:
        if isinstance(self.refine_rounds, bool) or not isinstance(self.refine_rounds, int) or self.refine_rounds < 1:
            raise ValueError(
                f"PaSTOptions.refine_rounds={self.refine_rounds!r} must be an integer >= 1 (1: plain PaST)"
            )
        if not isinstance(self.lam, (int, float)) or isinstance(self.lam, bool):
            raise ValueError(f"PaSTOptions.lam={self.lam!r} must be a number (the card sweeps 0.5, 1, 1.5)")


def _round_file(k: int, rounds: int) -> str:
    return SKILL_FILE if k == rounds else f"skill_vector_round{k}.safetensors"


def past_recipe(options: PaSTOptions | None = None) -> dict[str, Any]:
    """The recipe mapping (what recipes/past.yaml holds for the defaults) for `options`."""
    options = options or PaSTOptions()
    rounds = options.refine_rounds
    exclude = "" if not options.exclude_embeddings else "embed_tokens|lm_head"
    selection = {} if options.exclude_embeddings else {"exclude": exclude}
    stages: list[dict[str, Any]] = []
    for k in range(1, rounds + 1):
        subset = [{"name": "past_subset", "part": k, "parts": rounds}] if rounds > 1 else []
        sft: dict[str, Any] = {"method": "sft", **options.source_docs, **options.sft}
        if k > 1:
            sft["model_name_or_path"] = options.base_model  # every round's knowledge delta starts from theta_0
            sft["callbacks"] = [
                {"name": "past_inject", "skill_vector": _round_file(k - 1, rounds), "lam": 1.0, "evaluate": False}
            ]
        if subset:
            sft["transforms"] = copy.deepcopy(subset)
        extract = {
            "name": "past_extract",
            "path": _round_file(k, rounds),
            "base_model_name_or_path": options.base_model,
        }
        if k > 1:
            extract["previous"] = _round_file(k - 1, rounds)
        grpo: dict[str, Any] = {
            "method": "grpo",
            **options.source_qa,
            "rewards": options.rewards,
            **options.grpo,
            "callbacks": [{**extract, **selection}],
        }
        if subset:
            grpo["transforms"] = copy.deepcopy(subset)
        stages += [sft, grpo]
    target = {
        "method": "sft",
        **options.target_docs,
        "model_name_or_path": options.base_model,
        **options.sft,
        "callbacks": [
            {"name": "past_inject", "skill_vector": SKILL_FILE, "lam": options.lam, **options.inject_options}
        ],
    }
    stages.append(target)
    return {
        "model_name_or_path": options.base_model,
        "output_dir": options.output_dir,
        "logging_steps": 5,
        "save_strategy": "no",
        "report_to": "none",
        "stages": stages,
    }


def run_past(options: PaSTOptions | None = None, flags: Sequence[str] = ()) -> str:
    """Run the recipe as `trl-ext train --config` runs a file; the folder of theta_final."""
    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.recipe import checked_recipe, stages
    from trl_ext.run.stage import run_stages

    plan = stages(checked_recipe(past_recipe(options), "past recipe"))
    parsed = []
    for i, values in enumerate(plan):
        values = dict(values)
        parsed.append(parse_stage(values.pop("method"), list(flags), values, first=i == 0, in_recipe=len(plan) > 1))
    return run_stages(parsed)
