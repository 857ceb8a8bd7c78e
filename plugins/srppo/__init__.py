"""SRPPO, Self-Rewarding PPO (arXiv:2510.21090): align with demonstrations only. SFT the pretrained model π_pt on the
demos to get π_sft, then RL from π_sft with the self-reward r(x, y) = log π_sft(y|x) − log π_pt(y|x).

Adds the method `srppo` (RLOO with the self-reward; TRL has no PPO) and the reward `self_reward_log_ratio`, usable by
name in any GRPO/RLOO run. See README.md.
"""

from trl_ext import Method, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import torch and TRL: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SRPPOConfig": ".config",
        "SRPPOTrainer": ".trainer",
        "SelfRewardConfig": ".config",
        "SelfRewardLogRatio": ".rewards",
        "render_prompt": ".rewards",
    },
)

__all__ = ["PAPER", "SRPPOConfig", "SRPPOTrainer", "SelfRewardConfig", "SelfRewardLogRatio", "render_prompt"]

_REWARD_OPTIONS = {
    "sft_model_name_or_path": "π_sft, the model SFT-ed on the demonstrations (frozen). Required.",
    "base_model_name_or_path": "π_pt, the pretrained model before SFT (frozen, same tokenizer). Required.",
    "length_normalize": "Divide the log-ratio by the completion length (default false: a sum, as the paper).",
    "reward_scale": "Multiplies the reward (default 1).",
    "reward_clip": "Clip the scaled reward to [-c, c] (default none).",
    "no_eos_reward": "Reward of a truncated completion (default none: scored normally, counted).",
    "reward_batch_size": "Sequences per frozen-model forward (default 8).",
    "reward_dtype": "float32, bfloat16 or float16 (default float32).",
    "reward_max_length": "Longest prompt + completion scored, in tokens; longer: None (default 4096).",
}


@hookimpl
def register_methods(register):
    register(
        Method(
            name="srppo",
            trainer="trl_ext_plugins.srppo.trainer:SRPPOTrainer",
            config="trl_ext_plugins.srppo.config:SRPPOConfig",
            base="rloo",
            family="grpo-reward",
            paper=PAPER,
            builds_rewards=True,
            extra_forwards=2.0,  # π_sft and π_pt score every completion (no grad)
            description="RLOO from π_sft with the self-reward log π_sft(y|x) − log π_pt(y|x) (summed over the "
            "completion, at EOS) and RLOO's KL to π_sft (beta 0.05); TRL has no PPO. --rewards adds rewards.",
            example="trl-ext train srppo --model_name_or_path outputs/sft --base_model_name_or_path smollm2-135m "
            "--dataset_name builtin:arith --max_steps 20 --num_generations 4",
        )
    )


@hookimpl
def register_rewards(register):
    register(
        Reward(
            name="self_reward_log_ratio",
            family="grpo-reward",
            paper=PAPER,
            factory="trl_ext_plugins.srppo.rewards:SelfRewardLogRatio.from_options",
            options={**_REWARD_OPTIONS, "config": "A SelfRewardConfig instead of the fields above (Python only)."},
            example="trl-ext train grpo --scale_rewards none --rewards self_reward_log_ratio:sft_model_name_or_path="
            "outputs/sft,base_model_name_or_path=smollm2-135m --model_name_or_path outputs/sft --max_steps 5",
            description="SRPPO's self-reward Σ_j log π_sft(y_j|x,y_<j) − log π_pt(y_j|x,y_<j) over the generated ids "
            "(EOS included), prompts re-rendered with the chat template; both models frozen, scored in vocabulary "
            "chunks. Logs srppo/logp_sft, srppo/logp_base, srppo/reward_mean, srppo/reward_per_token, "
            "srppo/no_eos_frac.",
        )
    )
