"""PKTConfig: SFTConfig plus the fields of TL-Training's prioritized-key-token loss, with the paper's SFT recipe."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

from trl_ext.training.sft import FusedSFTConfig

from .paper import PAPER as PAPER  # re-exported: the trainer and older code import it from here
from .pkt import DEFAULT_CALL_REGEX, DEFAULT_TERMINATORS

PKT_NORMALIZATIONS = ("global", "per_sample")


@dataclass
class PKTConfig(FusedSFTConfig):
    r"""
    Configuration for [`PKTTrainer`], from "TL-Training: A Task-Feature-Based Framework for Training Large Language
    Models in Tool Use" (https://arxiv.org/abs/2412.15495).

    Per sequence, with e_j the token cross-entropy, P the key tool-name tokens, Q the argument terminators and O the
    rest of the target: L = (w_P Σ_P e + Σ_Q e + Σ_O e) / (w_P |P| + |Q| + |O|), w_P = min(|O|/|P|, pkt_max_weight)
    if |P| < |O| else 1. Batches use Σ numerators / Σ denominators over the whole optimizer step on all processes.
    Defaults follow the official `code/pkt/finetune.sh`: max_weight 9, lr 1e-6, 1 epoch, weight decay 0.01,
    Adam β2 0.95, warmup 1%, cosine schedule, max length 8192 (its batch is 1 per GPU on 4 GPUs; ours stays TRL's 8).
    """

    own_loss: ClassVar[str] = "PKT's weighted loss"

    pkt_max_weight: float = field(
        default=9.0, metadata={"help": "Cap on the pre-token weight w_P (official: 9; 1 gives the plain token mean)."}
    )
    pkt_call_regex: str = field(
        default=DEFAULT_CALL_REGEX,
        metadata={
            "help": "Regex matched at the start of the target, with a group 'name' for the tool name; a target "
            "it does not match (a final answer) gets no key tokens."
        },
    )
    pkt_terminators: list[str] = field(
        default_factory=lambda: list(DEFAULT_TERMINATORS),
        metadata={
            "help": "Strings whose tokens close an argument value (Q). Default: the official token list "
            "(sentencepiece '▁' read as a space); it has no JSON-style '\",'."
        },
    )
    pkt_tools_column: str | None = field(
        default="tools",
        metadata={
            "help": "Column with the available tools (JSON schemas), whose names sharing a prefix with the "
            "gold name add divergence tokens to P. None: only the name's first token."
        },
    )
    pkt_normalization: str = field(
        default="global",
        metadata={
            "help": "'global': Σ numerators / Σ denominators over the step's batch (the card); 'per_sample': "
            "the mean of per-sample weighted means (what the official batch-1, 4-GPU run averages).",
            "choices": list(PKT_NORMALIZATIONS),
        },
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate (official: 1e-6)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (official: 1)."})
    weight_decay: float = field(default=0.01, metadata={"help": "Weight decay (official: 0.01)."})
    adam_beta2: float = field(default=0.95, metadata={"help": "Adam β2 (official: 0.95)."})
    warmup_steps: float = field(default=0.01, metadata={"help": "Warmup; < 1 is a ratio of the steps (official 1%)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Schedule (official: cosine)."})
    max_length: int | None = field(default=8192, metadata={"help": "Token limit (official: 8192)."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: PKT's mask columns have to reach its collator."}
    )

    def __post_init__(self) -> None:
        if not (self.pkt_max_weight > 0 and math.isfinite(self.pkt_max_weight)):
            raise ValueError(f"pkt_max_weight={self.pkt_max_weight} must be a finite number > 0 (official: 9).")
        try:
            pattern = re.compile(self.pkt_call_regex)
        except re.error as exc:
            raise ValueError(f"pkt_call_regex={self.pkt_call_regex!r} is not a valid regex: {exc}") from exc
        if "name" not in pattern.groupindex:
            raise ValueError(
                f"pkt_call_regex={self.pkt_call_regex!r} needs a named group (?P<name>...) for the tool name."
            )
        if any(not t for t in self.pkt_terminators):
            raise ValueError(f"pkt_terminators={self.pkt_terminators!r} contains an empty string.")
        if self.pkt_normalization not in PKT_NORMALIZATIONS:
            raise ValueError(
                f"pkt_normalization={self.pkt_normalization!r} is not supported; choose one of "
                f"{', '.join(PKT_NORMALIZATIONS)}."
            )
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would drop PKT's mask columns before the collator; leave it False."
            )
        if self.packing or self.padding_free:
            raise ValueError(
                f"packing={self.packing} / padding_free={self.padding_free}: PKT weights each sample's "
                "tokens in an unpacked, padded sequence; set both to False."
            )
        super().__post_init__()

    @property
    def columns(self) -> list[str]:
        """Dataset columns PKT reads: prompt-completion rows (the completion is the last assistant turn)."""
        return ["prompt", "completion"] + ([self.pkt_tools_column] if self.pkt_tools_column else [])
