"""SRPPO on TRL's `RLOOTrainer` (arXiv:2510.21090): RLOO with the self-reward `self_reward_log_ratio` first among its
rewards, the policy starting from π_sft, and RLOO's KL-in-reward against the initial policy (π_sft) at `beta`.

TRL 1.16 has no PPOTrainer: the paper's PPO (clip 0.2, learned critic, GAE) becomes RLOO's leave-one-out baseline
over the k completions of a prompt (see README.md, Fidelity). The reward is sequence-level, at EOS, as in the paper.
"""

from __future__ import annotations

import logging
from typing import Any

from trl import RLOOTrainer

from .config import SRPPOConfig
from .paper import PAPER
from .rewards import SelfRewardLogRatio

logger = logging.getLogger(__name__)


def _policy_name(model: Any) -> str | None:
    if isinstance(model, str):
        return model
    config = getattr(model, "config", None)
    return getattr(model, "name_or_path", None) or getattr(config, "name_or_path", None) or None


class SRPPOTrainer(RLOOTrainer):
    """RLOO whose first reward is SRPPO's self-reward, built from `SRPPOConfig`; `reward_funcs` given are added after
    it (`reward_weights` count the self-reward first)."""

    _name = "SRPPO"
    _tag_names = ["trl", "rloo", "trl-ext", "srppo"]
    _paper = {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def __init__(self, model, reward_funcs=None, args: SRPPOConfig | None = None, **kwargs: Any):
        if not isinstance(args, SRPPOConfig):
            raise TypeError(f"SRPPOTrainer needs an SRPPOConfig (base_model_name_or_path, ...), got {type(args)}.")
        policy = _policy_name(model)
        reward_config = args.reward_config(policy)
        if policy and reward_config.sft_model_name_or_path != policy:
            logger.warning(
                "srppo: the policy (%s) is not π_sft (%s); the paper starts the policy from π_sft, and RLOO's KL "
                "reference is the initial policy.",
                policy,
                reward_config.sft_model_name_or_path,
            )
        self.self_reward = SelfRewardLogRatio(reward_config)
        if reward_funcs is None:
            reward_funcs = []
        elif not isinstance(reward_funcs, list):
            reward_funcs = [reward_funcs]
        super().__init__(model, reward_funcs=[self.self_reward, *reward_funcs], args=args, **kwargs)
        self.self_reward.bind(self.processing_class, self.chat_template_kwargs)
        self.self_reward.scorers()  # load π_sft and π_pt now: a bad path or vocabulary fails before training
