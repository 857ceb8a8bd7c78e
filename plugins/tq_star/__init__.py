"""tq_star (arXiv:2405.20495, Transfer Q*): decoding-time alignment. At each step the SFT model's top-k candidates
are rescored with l(z) + alpha * Qhat(s_t, z), Qhat from a reward on an aligned baseline model's greedy continuation.

Adds the `tq_star` logits processor (`trl-ext generate --logits_processors tq_star:baseline_model=...:reward=...`),
the rule-based `tq_star_keyword_reward` for demos and tests, and the Python API `generate(model, tokenizer, prompts,
...)` / `TransferQStarDecoder` (see README.md)."""

from __future__ import annotations

from trl_ext import LogitsProcessor, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TQStarGeneration": ".api",
        "TransferQStarDecoder": ".api",
        "TransferQStarProcessor": ".decoding",
        "generate": ".api",
        "indirect_q": ".decoding",
        "summarize": ".api",
        "transfer_scores": ".decoding",
    },
)

__all__ = ["PAPER"]

_MODULE = "trl_ext_plugins.tq_star"


@hookimpl
def register_logits_processors(register):
    register(
        LogitsProcessor(
            name="tq_star",
            factory=f"{_MODULE}.api:tq_star_processor",
            family="recipe",
            paper=PAPER,
            needs_model=True,
            options={
                "baseline_model": "rho_BL: the aligned model continuing each candidate (folder, Hub id or built-in "
                "alias; same tokenizer). Default: the generating model itself (the official scripts' setup).",
                "reward": "r: a reward name (registered, TRL's, a reward model folder/Hub id, module.function). "
                "None: no rescoring (plain top-k decoding).",
                "alpha": "Decoding strength alpha >= 0 (default 1.0, official rm_weight).",
                "top_k": "k candidates per step (default 10, official).",
                "horizon": "H: rollout tokens (default 20: the official direct transfer; 5 for indirect).",
                "transfer": "direct (rho_BL aligned to r, default) or indirect (needs baseline_reward or dpo_beta).",
                "baseline_reward": "r_BL for indirect transfer: a reward name.",
                "dpo_beta": "r_BL = dpo_beta * log rho_BL(y|x)/pi_sft(y|x), the DPO implicit reward (indirect).",
                "importance_beta": "beta_w of the indirect weight exp((r - r_BL)/beta_w) (default 2, official).",
                "batch_candidates": "Rollouts per baseline generate call (default 10).",
                "skip_special_tokens": "Decode rollouts without special tokens before the reward (default true; the "
                "official code keeps them).",
                "progress": "A progress bar over the decoding steps (default true).",
            },
            example="trl-ext generate --model_name_or_path smollm2-135m --dataset_name builtin:arith "
            "--num_samples 2 --max_new_tokens 8 --logits_processors "
            "tq_star:baseline_model=smollm2-135m:reward=tq_star_keyword_reward:alpha=2:top_k=5:horizon=8",
            description="Transfer Q*: top-k candidates of the model rescored by l(z) + alpha * r(rollout of the "
            "baseline after z); greedy or sampled (--do_sample --temperature) over the top-k.",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="tq_star_keyword_reward",
            factory=f"{_MODULE}.rewards:keyword_reward.from_options",
            family="recipe",
            paper=PAPER,
            options={"keywords": "Comma-separated words counted (default: politeness words, please/thank/glad/...)."},
            description="Count of politeness keywords in the completion (case-insensitive, whole words): tq_star's "
            "demo reward.",
        )
    )
