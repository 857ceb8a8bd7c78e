"""MaskFTConfig (the card's fields) and MaskFTSFTConfig (SFTConfig plus the same fields, prefixed, for
`trl-ext train maskft`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trl import SFTConfig

MODES = ("knowledge", "sft")
UNITS = ("word", "token")
# Ours (the paper's wording is not published): the mask string is filled in from `mask_str`.
DEFAULT_TEMPLATE = (
    "Below is a passage with some words hidden as {mask}. Write out the complete original passage.\n\n{masked}\n"
)
DEFAULT_SFT_TEMPLATE = "Hint: the answer with some words hidden as {mask}:\n{masked}"


@dataclass
class MaskFTConfig:
    """How a masked copy is made. Knowledge mode: prompt = `template` with the document's masked copy, completion =
    the document verbatim. SFT mode: prompt = q + "\\n\\n" + `sft_template` with the answer's masked copy, completion
    = the answer; with probability `p_plain` the plain (q, a) pair instead.

    Per example (and per epoch, when `resample_each_epoch`): t ~ U(t_min, t_max), then each unit (a whitespace-split
    word, or a token of the tokenizer's) is replaced by `mask_str` with probability t. The random draws of a row are
    seeded by (seed, epoch, row index, copy), so a resumed run re-draws the same masks."""

    mode: Literal["knowledge", "sft"] = "knowledge"
    unit: Literal["word", "token"] = "word"
    t_min: float = 0.0
    t_max: float = 1.0
    mask_str: str = "<mask>"
    collapse_runs: bool = False
    p_plain: float = 0.0
    template: str = DEFAULT_TEMPLATE
    sft_template: str = DEFAULT_SFT_TEMPLATE
    resample_each_epoch: bool = True
    seed: int = 0
    conversational: bool = True  # ours: knowledge-mode rows as a user turn and an assistant turn (chat template)
    text_column: str = "text"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {MODES}.")
        if self.unit not in UNITS:
            raise ValueError(f"unit={self.unit!r} must be one of {UNITS}.")
        if not (0.0 <= self.t_min <= self.t_max <= 1.0):
            raise ValueError(f"t_min={self.t_min}, t_max={self.t_max}: need 0 <= t_min <= t_max <= 1.")
        if not (0.0 <= self.p_plain <= 1.0):
            raise ValueError(f"p_plain={self.p_plain} must be in [0, 1].")
        if not self.mask_str:
            raise ValueError("mask_str must be a non-empty string.")
        for name in ("template", "sft_template"):
            if "{masked}" not in getattr(self, name):
                raise ValueError(f"{name} must contain the placeholder {{masked}}; got {getattr(self, name)!r}.")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.text_column,) if self.mode == "knowledge" else ("prompt", "completion")


@dataclass
class MaskFTSFTConfig(SFTConfig):
    """SFTConfig for [`MaskFTTrainer`]: masked-copy -> original reconstruction built on the fly by the collator, masks
    re-sampled every epoch (arXiv:2510.09885). The `maskft_*` fields are MaskFTConfig's; the seed is `seed`'s."""

    maskft_mode: str = field(default="knowledge", metadata={"help": "knowledge (a `text` column) or sft "
                             "(prompt/completion).", "choices": list(MODES)})  # fmt: skip
    maskft_unit: str = field(default="word", metadata={"help": "Masking unit: word or token.", "choices": list(UNITS)})
    maskft_t_min: float = field(default=0.0, metadata={"help": "Lower bound of the per-example mask ratio t."})
    maskft_t_max: float = field(default=1.0, metadata={"help": "Upper bound of the per-example mask ratio t."})
    maskft_mask_str: str = field(default="<mask>", metadata={"help": "The mask string (plain text, no new token)."})
    maskft_collapse_runs: bool = field(default=False, metadata={"help": "Merge runs of masks into one."})
    maskft_p_plain: float = field(default=0.0, metadata={"help": "SFT mode: probability of the plain (q, a) pair."})
    maskft_template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "Knowledge-mode prompt (ours)."})
    maskft_sft_template: str = field(default=DEFAULT_SFT_TEMPLATE, metadata={"help": "SFT-mode hint (ours)."})
    maskft_resample_each_epoch: bool = field(default=True, metadata={"help": "New masks every epoch (as a dLLM)."})
    maskft_conversational: bool = field(
        default=True, metadata={"help": "Knowledge mode: a user turn (masked copy) and an assistant turn (ours)."}
    )
    maskft_text_column: str = field(default="text", metadata={"help": "Knowledge-mode document column."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.maskft()  # validates the fields

    def maskft(self) -> MaskFTConfig:
        return MaskFTConfig(
            mode=self.maskft_mode,  # type: ignore[arg-type]
            unit=self.maskft_unit,  # type: ignore[arg-type]
            t_min=self.maskft_t_min,
            t_max=self.maskft_t_max,
            mask_str=self.maskft_mask_str,
            collapse_runs=self.maskft_collapse_runs,
            p_plain=self.maskft_p_plain,
            template=self.maskft_template,
            sft_template=self.maskft_sft_template,
            resample_each_epoch=self.maskft_resample_each_epoch,
            seed=self.seed,
            conversational=self.maskft_conversational,
            text_column=self.maskft_text_column,
        )
