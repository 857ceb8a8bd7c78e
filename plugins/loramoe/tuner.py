"""The LoRAMoE tuner for peft: each targeted linear becomes W0 x + sum_i w_i(x) B_i A_i dropout(x) * alpha / r, with
w(x) = softmax(W_g x) a token-wise, dense router over E LoRA experts.

Written for this plugin after peft's LoRA conventions (init, dropout, scaling; adapters in `nn.ModuleDict`s keyed by
adapter name), so parameter names read `...gate_proj.loramoe_A.default.3.weight` and `...loramoe_router.default.weight`
(GRPO's reference copy matches `.default.`). Registered with peft through trl_ext.compat.peft_tuners (see
trl_ext.adapters): `import trl_ext` before `PeftModel.from_pretrained`.

The balance loss needs only each sample's router mass per expert, so while a `routing_record` is open a layer reduces
its (B, T, E) router probabilities to (B, E) inside its forward and keeps that (overwritten, never appended: a
gradient-checkpointing recompute rewrites the same values). Merging is refused: the gates depend on the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from trl_ext.adapters.targets import matches_target
from trl_ext.compat.peft_tuners import TrlExtTuner, tuner_type
from trl_ext.training.sharding import is_dtensor, is_zero3_partitioned

LORAMOE_PEFT_TYPE = tuner_type("loramoe")
DEFAULT_TARGETS = ["gate_proj", "up_proj", "down_proj"]  # the official targets: every FFN linear
ROUTER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MERGE_REFUSED = (
    "LoRAMoE adapters cannot be merged into the base weights: each token's expert mix w(x) = softmax(W_g x) depends on "
    "the input, so no single weight update reproduces the layer. Keep the adapter unmerged (PeftModel), or use "
    "`unload()` to get the base model back without the adapter."
)


@dataclass
class LoRAMoEConfig(PeftConfig):
    """LoRAMoE (arXiv 2312.09979): E LoRA experts per targeted linear, mixed by a float32 token-wise softmax router.
    Defaults: the paper's main setting (E=6, r=4) with the official script's alpha (32) and dropout (0.05)."""

    r: int = field(default=4, metadata={"help": "Rank of every LoRA expert."})
    lora_alpha: float = field(default=32, metadata={"help": "Scaling numerator: experts are scaled by alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the experts' input (not the router's)."})
    num_experts: int = field(default=6, metadata={"help": "Experts per linear (even when the balance loss is on)."})
    target_modules: list[str] | str | None = field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        metadata={"help": "Linear layers that get experts (names, or one regex matched against the full name)."},
    )
    router_dtype: str = field(
        default="float32", metadata={"help": "dtype of the router weight and its softmax: float32 (card), bfloat16."}
    )
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "Extra modules trained and saved."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = LORAMOE_PEFT_TYPE
        for name in ("r", "num_experts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LoRAMoEConfig.{name} must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"LoRAMoEConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.router_dtype not in ROUTER_DTYPES:
            raise ValueError(
                f"LoRAMoEConfig.router_dtype must be one of {', '.join(ROUTER_DTYPES)}, got {self.router_dtype!r}"
            )
        if isinstance(self.target_modules, set):
            self.target_modules = sorted(self.target_modules)

    @property
    def scaling(self) -> float:
        return self.lora_alpha / self.r


@dataclass
class RouterStats:
    """One layer's router mass per sample and expert for one forward, reduced over positions.

    `importance` is the card's Q (B, E), with gradient: over every position when padding counts (official), else over
    the attention mask's tokens. `real_importance` (detached) is always over real tokens, and `entropy` (detached, B)
    the sum of the per-token router entropy over real tokens: both only feed metrics."""

    importance: torch.Tensor
    real_importance: torch.Tensor
    entropy: torch.Tensor


class RoutingRecord:
    """What a trainer shares with the layers during a training step: the attention mask (B, T) of the batch and
    whether padding positions count in Q. Layers write their `RouterStats` into `stats`, keyed by (layer, adapter)."""

    def __init__(self, attention_mask: torch.Tensor | None, count_padding_tokens: bool):
        self.attention_mask = attention_mask
        self.count_padding_tokens = count_padding_tokens
        self.stats: dict[tuple[int, str], RouterStats] = {}

    def clear(self) -> None:
        self.stats.clear()


def loramoe_layers(model: nn.Module) -> list[LoRAMoELayer]:
    return [m for m in model.modules() if isinstance(m, LoRAMoELayer)]


@contextmanager
def routing_record(
    model: nn.Module, attention_mask: torch.Tensor | None, count_padding_tokens: bool = True
) -> Iterator[RoutingRecord]:
    """Have every LoRAMoE layer of `model` record its router statistics while the context is open (a training step:
    forward, and backward where gradient checkpointing re-runs the forward)."""
    record = RoutingRecord(attention_mask, count_padding_tokens)
    layers = loramoe_layers(model)
    for layer in layers:
        layer.routing = record
    try:
        yield record
    finally:
        for layer in layers:
            layer.routing = None
        record.clear()


class LoRAMoELayer(BaseTunerLayer):
    adapter_layer_names = ("loramoe_A", "loramoe_B", "loramoe_router")
    other_param_names = ("r", "lora_alpha", "scaling", "loramoe_dropout", "num_experts")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.loramoe_A = nn.ModuleDict({})
        self.loramoe_B = nn.ModuleDict({})
        self.loramoe_router = nn.ModuleDict({})
        self.loramoe_dropout = nn.ModuleDict({})
        self.r: dict[str, int] = {}
        self.lora_alpha: dict[str, float] = {}
        self.scaling: dict[str, float] = {}
        self.num_experts: dict[str, int] = {}
        self._disable_adapters = False
        self.merged_adapters = []
        self.routing: RoutingRecord | None = None
        base = self.get_base_layer()
        self.in_features, self.out_features = base.in_features, base.out_features

    def update_layer(self, adapter_name: str, config: LoRAMoEConfig, **kwargs) -> None:
        base = self.get_base_layer()
        device = next((p.device for p in base.parameters() if p.device.type != "meta"), None)
        r, experts = config.r, config.num_experts
        # Experts in float32 (as peft's autocast_adapter_dtype keeps LoRA on a half-precision base), router per config
        self.loramoe_A[adapter_name] = nn.ModuleList(
            nn.Linear(self.in_features, r, bias=False, device=device, dtype=torch.float32) for _ in range(experts)
        )
        self.loramoe_B[adapter_name] = nn.ModuleList(
            nn.Linear(r, self.out_features, bias=False, device=device, dtype=torch.float32) for _ in range(experts)
        )
        self.loramoe_router[adapter_name] = nn.Linear(
            self.in_features, experts, bias=False, device=device, dtype=ROUTER_DTYPES[config.router_dtype]
        )
        self.loramoe_dropout[adapter_name] = nn.Dropout(config.lora_dropout) if config.lora_dropout else nn.Identity()
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = config.lora_alpha
        self.scaling[adapter_name] = config.scaling
        self.num_experts[adapter_name] = experts
        self.reset_loramoe_parameters(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_loramoe_parameters(self, adapter_name: str) -> None:
        """LoRA's init (A_i kaiming-uniform, B_i = 0, so a fresh adapter leaves the model unchanged); the router
        kaiming-uniform like the official nn.Linear."""
        for a, b in zip(self.loramoe_A[adapter_name], self.loramoe_B[adapter_name], strict=True):
            if a.weight.device.type == "meta":
                return
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)
        nn.init.kaiming_uniform_(self.loramoe_router[adapter_name].weight, a=math.sqrt(5))

    def _move_adapter_to_device_of_base_layer(self, adapter_name: str, device: torch.device | None = None) -> None:
        """Device only: the experts stay float32 and the router keeps its configured dtype (peft's version would cast
        them to a half-precision base's dtype)."""
        if device is None:
            device = next((p.device for p in self.get_base_layer().parameters() if p.device.type != "meta"), None)
        if device is None:
            return
        for name in self.adapter_layer_names:
            modules = getattr(self, name)
            if adapter_name in modules:
                modules[adapter_name] = modules[adapter_name].to(device)

    def router_probs(self, x: torch.Tensor, adapter_name: str) -> torch.Tensor:
        """w(x) = softmax(W_g x) over the experts, computed in the router's dtype (float32 by default)."""
        router = self.loramoe_router[adapter_name]
        return torch.softmax(router(x.to(router.weight.dtype)), dim=-1, dtype=router.weight.dtype)

    def _record(self, adapter_name: str, probs: torch.Tensor) -> None:
        record = self.routing
        if probs.dim() != 3:
            raise ValueError(f"LoRAMoE records router statistics of (batch, seq, hidden) inputs, got {probs.dim()}-d")
        mask = record.attention_mask
        if mask is None:
            mask = probs.new_ones(probs.shape[:2])
        elif tuple(mask.shape) != tuple(probs.shape[:2]):
            raise ValueError(
                f"attention mask {tuple(mask.shape)} does not match the router's (batch, seq) {tuple(probs.shape[:2])}:"
                " padding-free or packed batches cannot be split into samples for the LoRAMoE balance loss"
            )
        mask = mask.to(device=probs.device, dtype=probs.dtype).unsqueeze(-1)
        real = (probs * mask).sum(1)
        importance = probs.sum(1) if record.count_padding_tokens else real
        with torch.no_grad():
            entropy = -(probs * probs.clamp_min(torch.finfo(probs.dtype).tiny).log()).sum(-1, keepdim=True)
            entropy = (entropy * mask).sum((1, 2))
        record.stats[(id(self), adapter_name)] = RouterStats(
            importance.float(), real.detach().float(), entropy.float()
        )

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        dtype = result.dtype
        for name in self.active_adapters:
            if name not in self.loramoe_A:
                continue
            probs = self.router_probs(x, name)
            if self.routing is not None and self.training:
                self._record(name, probs)
            x_experts = self.loramoe_dropout[name](x.to(self.loramoe_A[name][0].weight.dtype))
            delta = self._experts(name, x_experts, probs.to(x_experts.dtype))
            result = result + (delta * self.scaling[name]).to(dtype)
        return result

    def _experts(self, name: str, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """sum_i w_i B_i A_i x, the gate applied on the rank-r side (B_i is linear: w_i B_i(A_i x) = B_i(w_i A_i x)).
        As two matmuls, like one LoRA of rank E*r: [B_1 .. B_E] (w ⊗ 1_r * [A_1; ..; A_E] x), where E matmuls of rank
        r each cost a third more. Under ZeRO-3 each expert goes through its own modules' forward instead, where the
        engine gathers their weights."""
        experts_a, experts_b = self.loramoe_A[name], self.loramoe_B[name]
        if is_zero3_partitioned(experts_a[0].weight) or is_dtensor(experts_a[0].weight):
            return sum(
                b(a(x) * gates[..., i : i + 1]) for i, (a, b) in enumerate(zip(experts_a, experts_b, strict=True))
            )
        rank = experts_a[0].weight.shape[0]
        hidden = F.linear(x, torch.cat([a.weight for a in experts_a]))
        hidden = hidden * gates.repeat_interleave(rank, dim=-1)
        return F.linear(hidden, torch.cat([b.weight for b in experts_b], dim=1))

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise ValueError(MERGE_REFUSED)

    def unmerge(self) -> None:
        pass  # never merged

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        raise ValueError(MERGE_REFUSED)

    def __repr__(self) -> str:
        return "loramoe." + super().__repr__()


class LoRAMoELinear(nn.Module, LoRAMoELayer):
    """LoRAMoE experts and router beside an nn.Linear (also a bnb 4-bit Linear: the experts read its input)."""

    forward = LoRAMoELayer.forward

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: LoRAMoEConfig, **kwargs) -> None:
        super().__init__()
        LoRAMoELayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)


class LoRAMoEModel(TrlExtTuner):
    """Wraps a transformers model with LoRAMoE layers (see LoRAMoEConfig). `merge_and_unload()` is refused (input-
    dependent gates); `unload()` returns the base model."""

    prefix: str = "loramoe_"
    mergeable = False  # trl_ext.models.load_trained keeps it unmerged
    tuner_layer_cls = LoRAMoELayer

    @classmethod
    def is_target(cls, config: LoRAMoEConfig, key: str) -> bool:
        return matches_target(config.target_modules, key)

    def create_layer(self, config: LoRAMoEConfig, adapter_name: str, target: nn.Module, key: str):
        if isinstance(target, LoRAMoELayer):
            target.update_layer(adapter_name, config)
            return None
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not (hasattr(base, "in_features") and hasattr(base, "out_features")):
            raise TypeError(f"LoRAMoE target {key!r} is a {type(base).__name__}; only Linear layers")
        return LoRAMoELinear(target, adapter_name, config)

    def _check_merge_allowed(self):
        raise ValueError(MERGE_REFUSED)


def trainable_count(model: nn.Module, config: LoRAMoEConfig) -> int:
    """The card's formula, summed over the targeted linears of the unwrapped model: E * r * (d_in + d_out) for the
    experts plus E * d_in for the router (L_layers * 3 * (E*r*(d_in+d_out) + E*d_in) on a Llama FFN)."""
    e, r = config.num_experts, config.r
    return sum(
        e * r * (m.in_features + m.out_features) + e * m.in_features
        for key, m in model.named_modules()
        if matches_target(config.target_modules, key) and isinstance(m, nn.Linear)
    )


__all__ = [
    "LORAMOE_PEFT_TYPE",
    "LoRAMoEConfig",
    "LoRAMoELayer",
    "LoRAMoELinear",
    "LoRAMoEModel",
    "MERGE_REFUSED",
    "RouterStats",
    "RoutingRecord",
    "loramoe_layers",
    "routing_record",
    "trainable_count",
]
