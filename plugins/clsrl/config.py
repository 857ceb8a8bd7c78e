"""Configuration of CLS-RL and No-Thinking-CLS-RL (arXiv:2503.16188).

CLS-RL changes only the prompt and the reward, so this is a plain dataclass, not a TRL config: training is TRL's
`GRPOTrainer` (the official run: loss_type "grpo", beta 0.04, scale_rewards "group"), configured with `GRPOConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MODES = ("think", "no_think")
# The official question (the class list follows "[ ", the names joined by ", ").
DEFAULT_QUESTION_TEMPLATE = "What type of object is in the photo? Please choose one from list [ {classes}]"
# What each mode appends to the question (official strings, the leading newline and space included).
SUFFIXES = {
    "think": "\n Please output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "no_think": "\n Please directly output the answer.",
}
DEFAULT_MAX_PROMPT_CHARS = 8192


def _is_tag(value: object) -> bool:
    return isinstance(value, str) and bool(value) and value.replace("_", "").replace("-", "").isalnum()


@dataclass
class ClsRLConfig:
    """Options of [CLS-RL](https://arxiv.org/abs/2503.16188): which variant (thinking or not), how the question is
    built and how the answer is compared with the gold class."""

    mode: Literal["think", "no_think"] = field(
        default="think",
        metadata={
            "help": "think: CLS-RL, the prompt asks for <think>…</think><answer>…</answer>, rewards "
            "cls_accuracy_reward + cls_format_reward; no_think: No-Thinking-CLS-RL, the prompt asks for the answer "
            "directly, reward cls_equality_reward only."
        },
    )
    use_symbolic_verify: bool = field(
        default=False,
        metadata={
            "help": "Try a math-verify symbolic check of the completion against the gold first (the R1-V code's "
            "step; needs the math-verify package). Off by default: class names are not math."
        },
    )
    eq_normalize: bool = field(
        default=False,
        metadata={
            "help": "No-think equality with strip() and casefold() on both sides (ours). Default false: the "
            "official exact, case-sensitive comparison."
        },
    )
    question_template: str = field(
        default=DEFAULT_QUESTION_TEMPLATE,
        metadata={"help": "The question; {classes} is replaced by the class names joined by ', '."},
    )
    answer_tag: str = field(default="answer", metadata={"help": "Tag of the answer span (<answer>…</answer>)."})
    max_prompt_chars: int = field(
        default=DEFAULT_MAX_PROMPT_CHARS,
        metadata={
            "help": "A built prompt longer than this many characters is refused (GRPO in TRL 1.16 never truncates "
            "prompts; a byte-level BPE token covers at least one character, so this bounds the prompt's tokens). "
            "Ours: 8192 covers a few hundred class names."
        },
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        for name in ("use_symbolic_verify", "eq_normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        if not isinstance(self.question_template, str) or "{classes}" not in self.question_template:
            raise ValueError(f"question_template={self.question_template!r} must be a string holding {{classes}}")
        if not _is_tag(self.answer_tag):
            raise ValueError(f"answer_tag={self.answer_tag!r} must be a tag name (letters, digits, '_' or '-')")
        if isinstance(self.max_prompt_chars, bool) or not isinstance(self.max_prompt_chars, int):
            raise ValueError(f"max_prompt_chars={self.max_prompt_chars!r} must be an integer >= 1")
        if self.max_prompt_chars < 1:
            raise ValueError(f"max_prompt_chars={self.max_prompt_chars!r} must be an integer >= 1")
