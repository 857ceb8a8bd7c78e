"""VideoRFT (arXiv:2505.12434): the RL stage's rewards, with the semantic-consistency reward from a frozen dual encoder.

Adds `vrft_accuracy_reward` (by problem type), `vrft_format_reward`, `vrft_semantic_reward` (reasoning text vs the
image or video frames under a user-supplied SigLIP/CLIP encoder, gated by accuracy), `vrft_length_bonus` and
`builtin:vrft_shapes` (text prompts describing a synthetic picture, the picture in `frames` for the reward). Training
is TRL's GRPOTrainer: `trl-ext train grpo --rewards vrft_accuracy_reward,vrft_format_reward,...`. See README.md.
"""

from trl_ext import Dataset, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import the reward toolkit, `datasets` or torch: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VRFTAccuracyReward": ".rewards",
        "VRFTFormatReward": ".rewards",
        "VRFTLengthBonus": ".rewards",
        "VRFTSemanticReward": ".rewards",
        "VideoRFTRewardConfig": ".config",
        "build_vrft_shapes": ".data:build",
    },
)

__all__ = [
    "PAPER",
    "VRFTAccuracyReward",
    "VRFTFormatReward",
    "VRFTLengthBonus",
    "VRFTSemanticReward",
    "VideoRFTRewardConfig",
    "build_vrft_shapes",
]

_EXAMPLE = "trl-ext train grpo --dataset_name builtin:vrft_shapes --rewards {} --max_steps 5"
_ACC = (
    "by `problem_type`: multiple choice (exact), numerical (decimal-point mismatch 0, else round(·, 2) equality), "
    "OCR (1 − WER), free-form (mean ROUGE-1/2/L F), regression (1 − relative error)"
)


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER}
    register(
        Reward(
            name="vrft_accuracy_reward",
            example=_EXAMPLE.format("vrft_accuracy_reward,vrft_format_reward"),
            factory="trl_ext_plugins.videorft.rewards:VRFTAccuracyReward.from_options",
            required_columns=("solution", "problem_type"),
            description=f"VideoRFT R_acc of the first <answer> span against the `solution`'s, {_ACC}; no answer "
            "span is the empty answer; an answer that does not parse scores 0, a row whose gold cannot be used (unknown type, "
            "empty or non-numeric gold) None.",
            **common,
        )
    )
    register(
        Reward(
            name="vrft_format_reward",
            example=_EXAMPLE.format("vrft_accuracy_reward,vrft_format_reward"),
            factory="trl_ext_plugins.videorft.rewards:VRFTFormatReward.from_options",
            description="VideoRFT R_fmt: 1 iff the completion fully matches <think>.*?</think>\\s*<answer>.*?</answer> "
            "(DOTALL), else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="vrft_semantic_reward",
            example="trl-ext train grpo --dataset_name builtin:vrft_shapes --rewards vrft_accuracy_reward,"
            "vrft_format_reward,vrft_semantic_reward:encoder_name_or_path=/models/siglip,vrft_length_bonus",
            factory="trl_ext_plugins.videorft.rewards:VRFTSemanticReward.from_options",
            required_columns=("solution", "problem_type"),
            options={
                "encoder_name_or_path": "The frozen SigLIP/CLIP dual encoder (local folder or Hub id); required.",
                "w_scale": "w in min(1, w·max(s, 0)) (default 2.0).",
                "drop_first_sentence": "Encode the think text without its first sentence (default true).",
                "gate_on_accuracy": "Zero R_sem when R_acc <= acc_gate_threshold (default true).",
                "acc_gate_threshold": "The accuracy gate (default 0.0).",
                "max_frames": "Frames used per row, evenly spaced (default 16).",
                "device": "Device of the encoder (default: the process's accelerator, else cpu).",
            },
            description="VideoRFT R_sem: mean over the row's frames (`frames` list, `video` path, or `image`) of "
            "min(1, w·max(u(f)·t(T'), 0)) with T' the think text minus its first sentence, under a frozen dual "
            "encoder; 0 when R_acc <= 0; None for a row without visual input. Logs vrft/semantic_raw_mean, "
            "vrft/gate_zero_frac, vrft/text_truncated_rate.",
            **common,
        )
    )
    register(
        Reward(
            name="vrft_length_bonus",
            example=_EXAMPLE.format("vrft_accuracy_reward,vrft_format_reward,vrft_length_bonus"),
            factory="trl_ext_plugins.videorft.rewards:VRFTLengthBonus.from_options",
            required_columns=("solution", "problem_type"),
            options={
                "len_bonus": "The bonus (default 0.2).",
                "len_range": "[low, high] completion tokens, EOS included (default [320, 512]).",
                "len_acc_threshold": "R_acc a completion needs to qualify (default 0.1).",
                "num_generations": "Group size (default: runs of the same prompt, as GRPOTrainer orders them).",
            },
            description="VideoRFT len_control: within a group, when at least 2 completions have R_acc > 0.1, each of "
            "them with 320 <= length <= 512 tokens gets +0.2. Logs vrft/len_bonus_rate.",
            **common,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="vrft_shapes",
            factory="trl_ext_plugins.videorft.data:build",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="48 text prompts describing a synthetic 32×32 picture of a colored shape (color: multiple "
            "choice; corners: numerical), the picture in `frames` for vrft_semantic_reward; 32 train / 16 test.",
            columns={"grpo": ("prompt", "solution", "problem_type", "frames", "description")},
        )
    )
