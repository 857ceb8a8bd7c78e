"""RoSTEConfig: SFTConfig plus RoSTE's quantisation and rotation settings (`RoSTESpec` holds the model-side part)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from trl import SFTConfig

SITES = ("R2", "R4")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoSTESpec:
    """What the model transform needs (the card's defaults: W4A4KV4, per-channel symmetric weights, per-token
    asymmetric activations, per-head asymmetric K/V, R1 offline, R2/R4 searched). JSON-ready for roste_state.json."""

    w_bits: int = 4
    a_bits: int = 4
    kv_bits: int = 4
    w_sym: bool = True
    a_sym: bool = False
    kv_sym: bool = False
    rotate_r1: bool = True
    search_sites: tuple[str, ...] = SITES
    ste_clip_grad: bool = False
    quantize_lm_head: bool = False

    def __post_init__(self) -> None:
        for name in ("w_bits", "a_bits", "kv_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 16:
                raise ValueError(f"{name}={value!r} must be an integer in [2, 16] (16 = not quantised).")
        object.__setattr__(self, "search_sites", tuple(self.search_sites))
        unknown = [s for s in self.search_sites if s not in SITES]
        if unknown:
            raise ValueError(f"search_sites={list(self.search_sites)!r}: {unknown} unknown; choose among {SITES}.")

    def to_dict(self) -> dict:
        return {**asdict(self), "search_sites": list(self.search_sites)}


@dataclass
class RoSTEConfig(SFTConfig):
    r"""
    Configuration for [`RoSTETrainer`], from "RoSTE: An Efficient Quantization-Aware Supervised Fine-Tuning Approach
    for Large Language Models" (https://arxiv.org/abs/2502.09003).

    Before training the model is rotated (RMSNorm weights folded, R1 Hadamard on the residual stream), each layer's
    optional rotations (R2 at o_proj, R4 at down_proj) are switched on where they lower the measured weight +
    activation quantisation error on `calib_samples` training sequences, and every decoder Linear is wrapped to
    compute Q_a(x) Q_w(W)^T with K/V through Q_kv (R3 online when kv_bits < 16). Then full-parameter SFT updates the
    latent weights through the straight-through estimator; SFTTrainer's loss is unchanged.
    """

    w_bits: int = field(default=4, metadata={"help": "Weight bits (per output channel; 16 = not quantised)."})
    a_bits: int = field(default=4, metadata={"help": "Activation bits: the input of every decoder Linear, per token."})
    kv_bits: int = field(default=4, metadata={"help": "K and V bits, per head (group = head_dim)."})
    w_sym: bool = field(default=True, metadata={"help": "Symmetric weight quantisation (SpinQuant convention)."})
    a_sym: bool = field(default=False, metadata={"help": "Symmetric activation quantisation (default asymmetric)."})
    kv_sym: bool = field(default=False, metadata={"help": "Symmetric K/V quantisation (default asymmetric)."})
    kv_group: str = field(
        default="head",
        metadata={"help": "K/V quantisation group: 'head' (one scale per head and token).", "choices": ["head"]},
    )
    rotate_r1: bool = field(
        default=True,
        metadata={"help": "Fold the RMSNorm weights and rotate the residual stream by R1 (offline, exact in fp)."},
    )
    search_sites: list[str] = field(
        default_factory=lambda: list(SITES),
        metadata={
            "help": "Optional rotations searched per layer: R2 (o_proj input, per head), R4 (down_proj input); "
            "'none': no search, both off."
        },
    )
    calib_samples: int = field(
        default=8, metadata={"help": "Training sequences (the first ones) on which the search measures the errors."}
    )
    ste_clip_grad: bool = field(
        default=False, metadata={"help": "Zero the STE gradient where round(x/s)+z leaves the integer grid."}
    )
    quantize_lm_head: bool = field(
        default=False,
        metadata={"help": "Quantise lm_head too (card default: no; refused in training: TRL's fused head reads it)."},
    )
    rotation_config_path: str | None = field(
        default=None, metadata={"help": "A rotation_config.json to use instead of searching."}
    )
    ptq_only: bool = field(
        default=False,
        metadata={
            "help": "Post-training quantisation only, the card's SFT-then-PTQ baselines: apply the rotations and "
            "quantisers and save, the weights unchanged (RTN with --no_rotate_r1 --search_sites none; rotations + "
            "RTN otherwise). Trains one step at learning rate 0 (max_steps becomes 1; with logging_steps 1 it logs "
            "the quantised model's loss on the first batch)."
        },
    )
    export_quantized: bool = field(
        default=True,
        metadata={"help": "At the end of training also write <output_dir>/roste-export: Q_w applied to the weights."},
    )

    def __post_init__(self) -> None:
        sites = [self.search_sites] if isinstance(self.search_sites, str) else list(self.search_sites or [])
        self.search_sites = [] if [s.lower() for s in sites] == ["none"] else sites  # the CLI's way to say "none"
        self.roste_spec()  # validates the bits and sites, naming the field
        if self.kv_group != "head":
            raise ValueError(f"kv_group={self.kv_group!r}: only 'head' is implemented (the card's default).")
        if not isinstance(self.calib_samples, int) or self.calib_samples < 1:
            raise ValueError(f"calib_samples={self.calib_samples!r} must be a positive integer.")
        if self.quantize_lm_head:
            raise ValueError(
                "quantize_lm_head=True: TRL's fused LM head reads lm_head's weight directly, so it would train "
                "unquantised; RoSTE (card default) leaves lm_head in 16 bits."
            )
        if self.ptq_only and self.max_steps != 1:
            logger.info("RoSTE ptq_only: max_steps %s -> 1 (one step at learning rate 0)", self.max_steps)
            self.max_steps = 1
        super().__post_init__()

    def budget_description(self) -> str | None:
        """How long the run is, in a dry run's plan: ptq_only trains nothing worth the name."""
        return "post-training quantisation only (1 step at learning rate 0)" if self.ptq_only else None

    def roste_spec(self) -> RoSTESpec:
        return RoSTESpec(
            w_bits=self.w_bits,
            a_bits=self.a_bits,
            kv_bits=self.kv_bits,
            w_sym=self.w_sym,
            a_sym=self.a_sym,
            kv_sym=self.kv_sym,
            rotate_r1=self.rotate_r1,
            search_sites=tuple(self.search_sites),
            ste_clip_grad=self.ste_clip_grad,
            quantize_lm_head=self.quantize_lm_head,
        )
