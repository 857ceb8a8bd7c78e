"""RL-Struct (arXiv:2512.00319): GRPO with a hierarchical reward for strictly valid, schema-conforming JSON.

Adds the reward components as GRPO rewards (`json_validity`, `json_format`, `json_structure`, `json_content`), their
weighted total (`rlstruct`) and the `gsm8k_to_json_task` transform. Training is TRL's GRPOTrainer (`trl-ext train
grpo --rewards ...`), optionally with LoRA as in the paper.
"""

from trl_ext import Paper, Reward, Transform, hookimpl

from .config import RLStructConfig
from .rewards import (
    JSONContentReward,
    JSONFormatReward,
    JSONStructureReward,
    JSONValidityReward,
    RLStructReward,
    structure_metrics,
)
from .transforms import gsm8k_to_json_task

__all__ = ["PAPER", "RLStructConfig", "gsm8k_to_json_task", "structure_metrics"]

PAPER = Paper(
    title="RL-Struct: A Lightweight Reinforcement Learning Framework for Reliable Structured Output in LLMs",
    arxiv="2512.00319",
    citation="""@article{hu2025rlstruct,
  title   = {RL-Struct: A Lightweight Reinforcement Learning Framework for Reliable Structured Output in LLMs},
  author  = {Hu, Ruike and Wu, Shulei},
  journal = {arXiv preprint arXiv:2512.00319},
  year    = {2025},
  url     = {https://arxiv.org/abs/2512.00319}
}""",
)

_FENCES = "allow_fences_for_valid"
_FENCES_HELP = "Accept JSON wrapped in one ```json fence pair as valid (default true)."
_PENALTY_HELP = "R_struct penalty per key the schema does not allow (default 0.1, ours)."
_TOL_HELP = "Absolute tolerance for numeric comparisons (default 1e-6)."
_TASK_HELP = "Task for rows without a `task` column: gsm8k_json, recipe or generic (default generic)."


@hookimpl
def register_rewards(register):
    common = {"family": "grpo-reward", "paper": PAPER}
    register(
        Reward(
            name="json_validity",
            example="trl-ext train grpo --rewards json_validity --dataset_name builtin:json_extract --max_steps 5",
            factory=JSONValidityReward.from_options,
            required_columns=(),
            options={_FENCES: _FENCES_HELP},
            description="R_valid: 1 if the completion is a JSON object (one ```json fence pair allowed), else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="json_format",
            example="trl-ext train grpo --rewards json_format --dataset_name builtin:json_extract --max_steps 5",
            factory=JSONFormatReward.from_options,
            required_columns=(),
            options={},
            description="R_format: 1 if the raw completion is JSON with no fences or prose around it, else 0.",
            **common,
        )
    )
    register(
        Reward(
            name="json_structure",
            example="trl-ext train grpo --rewards json_structure --dataset_name builtin:json_extract --max_steps 5",
            factory=JSONStructureReward.from_options,
            required_columns=("schema",),
            options={"extra_key_penalty": _PENALTY_HELP, _FENCES: _FENCES_HELP},
            description="R_struct: 0.5·present + 0.5·typed − 0.1·extra keys against the row's `schema` "
            "(nested schemas recurse); 0 if not valid. Logs rlstruct/valid_rate and rlstruct/struct_acc.",
            **common,
        )
    )
    register(
        Reward(
            name="json_content",
            example="trl-ext train grpo --rewards json_content --dataset_name builtin:json_extract --max_steps 5",
            factory=JSONContentReward.from_options,
            required_columns=("gold",),
            options={"task": _TASK_HELP, "numeric_tol": _TOL_HELP, _FENCES: _FENCES_HELP},
            description="R_content against the row's `gold`, scored by its `task` (optional column): gsm8k_json "
            "numeric answer, recipe token F1, generic exact match; 0 if not valid.",
            **common,
        )
    )
    register(
        Reward(
            name="rlstruct",
            example="trl-ext train grpo --rewards rlstruct --dataset_name builtin:json_extract --max_steps 5",
            factory=RLStructReward.from_options,
            required_columns=("schema", "gold"),
            options={
                "weights": "Component weights {valid, format, struct, content}; default 1.0/0.5/1.0/1.0 (ours).",
                "extra_key_penalty": _PENALTY_HELP,
                _FENCES: _FENCES_HELP,
                "numeric_tol": _TOL_HELP,
                "task": _TASK_HELP,
                "config": "An RLStructConfig instead of the fields above (Python only).",
            },
            description="RL-Struct's hierarchical total 1.0·R_valid + 0.5·R_format + 1.0·R_struct + 1.0·R_content "
            "(content only when valid) as one reward.",
            **common,
        )
    )


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="gsm8k_to_json_task",
            factory=gsm8k_to_json_task,
            family="grpo-reward",
            paper=PAPER,
            required_columns=("answer",),
            options={"system_prompt": "System message requiring JSON only in the {reasoning, answer} template."},
            description="GSM8K rows (question or prompt, answer '... #### N') -> GSM8K-JSON: a conversational prompt "
            "requiring JSON only, schema {reasoning: str, answer: number}, gold {answer: N}, task gsm8k_json.",
        )
    )
