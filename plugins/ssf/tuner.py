"""The SSF tuner for peft: per-channel scale and shift after linears and norms, y = gamma * x + beta.

Modelled on peft's BEFT and IA3 layers (the BaseTunerLayer contract: adapter dicts keyed by adapter name, merge /
unmerge, active adapters), written for this plugin. Each adapter's vectors live in `nn.ModuleDict`s, so parameter
names read `...q_proj.ssf_scale.default.weight` (GRPO's reference copy matches `.default.`). Registered with peft
through trl_ext.compat.peft_tuners (see trl_ext.adapters): `import trl_ext` before `PeftModel.from_pretrained`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

from trl_ext.adapters.targets import matches_target
from trl_ext.compat.peft_tuners import TrlExtTuner, tuner_type

SSF_PEFT_TYPE = tuner_type("ssf")
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_NORMS = ["input_layernorm", "post_attention_layernorm"]
# Which linears read each norm's output, relative to the norm's parent module (Llama family): a norm's shift folds
# into their biases on merge.
DEFAULT_CONSUMERS = {
    "input_layernorm": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "post_attention_layernorm": ["mlp.gate_proj", "mlp.up_proj"],
}
MIN_ABS_SCALE = 1e-6  # unmerge divides by the scale


@dataclass
class SSFConfig(PeftConfig):
    """SSF (arXiv 2210.08823): learned scale and shift after each target linear's output and each norm's output."""

    target_modules: list[str] | str | None = field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        metadata={"help": "Linear layers whose output gets a scale and shift (names, or one regex)."},
    )
    norm_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_NORMS),
        metadata={"help": "Norm layers (RMSNorm/LayerNorm with a weight) whose output gets a scale and shift."},
    )
    include_final_norm: bool = field(default=False, metadata={"help": "Also adapt the final norm (`norm`)."})
    final_norm_name: str = field(default="norm", metadata={"help": "Name of the final norm module."})
    norm_consumers: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CONSUMERS.items()},
        metadata={"help": "Norm name -> the linears (relative to the norm's parent) its shift folds into on merge."},
    )
    init: Literal["official", "identity"] = field(
        default="official", metadata={"help": "official: scale ~ N(1, std^2), shift ~ N(0, std^2); identity: 1, 0."}
    )
    init_std: float = field(default=0.02, metadata={"help": "Standard deviation of the official init."})
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "Extra modules trained and saved."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = SSF_PEFT_TYPE
        if self.init not in ("official", "identity"):
            raise ValueError(f"SSFConfig.init must be 'official' or 'identity', got {self.init!r}")
        if self.init_std < 0:
            raise ValueError(f"SSFConfig.init_std must be >= 0, got {self.init_std}")
        if isinstance(self.target_modules, set):
            self.target_modules = sorted(self.target_modules)

    def adapted_norms(self) -> list[str]:
        return list(self.norm_modules) + ([self.final_norm_name] if self.include_final_norm else [])


class _Vector(nn.Module):
    """One adapter's vector (kept in float32), as `weight`: names end in `.<adapter>.weight`, like LoRA's."""

    def __init__(self, size: int, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size, dtype=torch.float32, device=device))


class SSFLayer(BaseTunerLayer):
    adapter_layer_names = ("ssf_scale", "ssf_shift")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.ssf_scale = nn.ModuleDict({})
        self.ssf_shift = nn.ModuleDict({})
        self._disable_adapters = False
        self.merged_adapters = []
        self.channels = self._channels(self.get_base_layer())

    @staticmethod
    def _channels(base: nn.Module) -> int:
        raise NotImplementedError

    def update_layer(self, adapter_name: str, config: SSFConfig, **kwargs) -> None:
        base = self.get_base_layer()
        device = next((p.device for p in base.parameters() if p.device.type != "meta"), None)
        self.ssf_scale[adapter_name] = _Vector(self.channels, device=device)
        self.ssf_shift[adapter_name] = _Vector(self.channels, device=device)
        self.reset_ssf_parameters(adapter_name, config)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_ssf_parameters(self, adapter_name: str, config: SSFConfig) -> None:
        scale, shift = self.ssf_scale[adapter_name].weight, self.ssf_shift[adapter_name].weight
        if scale.device.type == "meta":
            return
        with torch.no_grad():
            if config.init == "identity":
                scale.fill_(1.0)
                shift.zero_()
            else:  # the official init: near identity, not identity
                nn.init.normal_(scale, mean=1.0, std=config.init_std)
                nn.init.normal_(shift, mean=0.0, std=config.init_std)

    def _affine(self, result: torch.Tensor) -> torch.Tensor:
        """The active adapters' scale and shift, in order, computed in float32 and cast back (the product is cast,
        not the parameters)."""
        dtype = result.dtype
        out = result
        for name in self.active_adapters:
            if name not in self.ssf_scale:
                continue
            out = out * self.ssf_scale[name].weight + self.ssf_shift[name].weight
        return out.to(dtype)

    def ssf_forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        return self._affine(self.base_layer(x, *args, **kwargs))

    def _vectors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ssf_scale[name].weight.detach().float(), self.ssf_shift[name].weight.detach().float()

    def _check_unmergeable(self) -> None:
        for name in self.merged_adapters:
            scale, _ = self._vectors(name)
            if scale.abs().min() < MIN_ABS_SCALE:
                raise ValueError(
                    f"SSF adapter {name!r}: a scale below {MIN_ABS_SCALE} in magnitude cannot be unmerged"
                )


def _plain_weight(base: nn.Module) -> torch.Tensor:
    weight = getattr(base, "weight", None)
    if weight is None or not weight.dtype.is_floating_point or type(weight) is not nn.Parameter:
        raise ValueError(
            f"SSF cannot merge into {type(base).__name__} with a {getattr(weight, 'dtype', None)} weight (a quantised "
            "base): keep the adapter unmerged, or merge into a dequantised float copy of the base model."
        )
    return weight


def add_zero_bias(linear: nn.Module) -> None:
    """Give a bias-free linear a zero bias (the merged shift needs one)."""
    if getattr(linear, "bias", None) is None:
        weight = linear.weight
        linear.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))


class SSFLinear(nn.Module, SSFLayer):
    """SSF after an nn.Linear's output (also a bnb 4-bit Linear, unmerged only)."""

    forward = SSFLayer.ssf_forward

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: SSFConfig, **kwargs) -> None:
        super().__init__()
        SSFLayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    @staticmethod
    def _channels(base: nn.Module) -> int:
        return base.out_features

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """W' = diag(gamma) W, b' = gamma * b + beta (a bias is created where the linear had none)."""
        adapter_names = check_adapters_to_merge(self, adapter_names)
        base = self.get_base_layer()
        for name in adapter_names:
            if name not in self.ssf_scale:
                continue
            weight = _plain_weight(base)
            add_zero_bias(base)
            scale, shift = self._vectors(name)
            new_weight = weight.data.float() * scale[:, None]
            new_bias = base.bias.data.float() * scale + shift
            if safe_merge and not (torch.isfinite(new_weight).all() and torch.isfinite(new_bias).all()):
                raise ValueError(f"NaNs detected in the merged weights of SSF adapter {name!r}")
            weight.data = new_weight.to(weight.dtype)
            base.bias.data = new_bias.to(base.bias.dtype)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("Already unmerged. Nothing to do.", stacklevel=2)
            return
        self._check_unmergeable()
        base = self.get_base_layer()
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            scale, shift = self._vectors(name)
            base.bias.data = ((base.bias.data.float() - shift) / scale).to(base.bias.dtype)
            base.weight.data = (base.weight.data.float() / scale[:, None]).to(base.weight.dtype)


class SSFNorm(nn.Module, SSFLayer):
    """SSF after a norm's output (RMSNorm or LayerNorm with a per-channel weight). On merge the scale folds into the
    norm's weight (and bias, if it has one); a shift folds into the linears that read the norm (`merge(consumers=)`,
    which SSFModel.merge_and_unload calls before any other merge), or into the norm's own bias if it has one."""

    forward = SSFLayer.ssf_forward

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: SSFConfig, **kwargs) -> None:
        super().__init__()
        SSFLayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.folded_shift: dict[str, bool] = {}
        self.update_layer(adapter_name, config)

    @staticmethod
    def _channels(base: nn.Module) -> int:
        weight = getattr(base, "weight", None)
        if weight is None or weight.dim() != 1:
            raise TypeError(f"SSF norm targets need a 1-d weight (RMSNorm/LayerNorm), got {type(base).__name__}")
        return weight.shape[0]

    def merge(
        self, safe_merge: bool = False, adapter_names: list[str] | None = None, consumers: list[nn.Module] = ()
    ) -> None:
        """w' = gamma * w; the shift goes into the norm's bias if it has one, else into each consumer linear's bias
        (b_L += W_L beta). Without consumers a non-zero shift cannot be merged."""
        if adapter_names is None and set(self.active_adapters) <= set(self.merged_adapters):
            return  # folded already by merge_and_unload, which merges norms first
        adapter_names = [n for n in check_adapters_to_merge(self, adapter_names) if n in self.ssf_scale]
        if not adapter_names:
            return
        base = self.get_base_layer()
        weight = _plain_weight(base)
        norm_bias = getattr(base, "bias", None)
        new_weight = weight.data.float()
        total_shift = torch.zeros_like(new_weight)
        for name in adapter_names:
            scale, shift = self._vectors(name)
            new_weight = new_weight * scale
            total_shift = total_shift * scale + shift
        if norm_bias is not None:
            norm_bias.data = (
                norm_bias.data.float() * torch.stack([self._vectors(n)[0] for n in adapter_names]).prod(0)
                + total_shift
            ).to(norm_bias.dtype)
        elif total_shift.abs().max() > 0:
            if not consumers:
                raise ValueError(
                    "An SSF shift after an RMSNorm cannot live in the norm: it folds into the next linears, which "
                    "only `merge_and_unload()` does (the norm's consumers are configured by `norm_consumers`)."
                )
            for linear in consumers:
                base_linear = linear.get_base_layer() if isinstance(linear, BaseTunerLayer) else linear
                if isinstance(linear, BaseTunerLayer) and linear.merged:
                    raise ValueError("fold SSF norm shifts before merging the consumer linears")
                w = _plain_weight(base_linear)
                add_zero_bias(base_linear)
                folded = base_linear.bias.data.float() + w.data.float() @ total_shift
                base_linear.bias.data = folded.to(base_linear.bias.dtype)
        if safe_merge and not torch.isfinite(new_weight).all():
            raise ValueError("NaNs detected in the merged SSF norm weight")
        weight.data = new_weight.to(weight.dtype)
        for name in adapter_names:
            self.folded_shift[name] = norm_bias is None
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("Already unmerged. Nothing to do.", stacklevel=2)
            return
        self._check_unmergeable()
        base = self.get_base_layer()
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            scale, shift = self._vectors(name)
            if self.folded_shift.get(name) and shift.abs().max() > 0:
                raise ValueError("an SSF norm shift folded into the next linears cannot be unmerged")
            if getattr(base, "bias", None) is not None:
                base.bias.data = ((base.bias.data.float() - shift) / scale).to(base.bias.dtype)
            base.weight.data = (base.weight.data.float() / scale).to(base.weight.dtype)


# Llama-family config flags that give these linears a bias (so a merged model saved with new biases reloads them).
BIAS_FLAGS = {
    "attention_bias": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp_bias": ("gate_proj", "up_proj", "down_proj"),
}


class SSFModel(TrlExtTuner):
    """Wraps a transformers model with SSF layers (see SSFConfig). `merge_and_unload()` folds norm shifts into the
    next linears first, then every scale and shift into the preceding weights, and sets the Llama bias flags."""

    prefix: str = "ssf_"
    tuner_layer_cls = SSFLayer

    @classmethod
    def is_target(cls, config: SSFConfig, key: str) -> bool:
        return matches_target(config.target_modules, key) or matches_target(config.adapted_norms(), key)

    def create_layer(self, config: SSFConfig, adapter_name: str, target: nn.Module, key: str):
        if isinstance(target, SSFLayer):
            target.update_layer(adapter_name, config)
            return None
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if matches_target(config.adapted_norms(), key):
            return SSFNorm(target, adapter_name, config)
        if isinstance(base, nn.Linear):
            return SSFLinear(target, adapter_name, config)
        raise TypeError(f"SSF target {key!r} is a {type(base).__name__}; only Linear and norm layers")

    def _consumers(self, norm_key: str, config: SSFConfig) -> list[nn.Module]:
        parent_key, _, name = norm_key.rpartition(".")
        if name == config.final_norm_name and config.include_final_norm and name not in config.norm_consumers:
            raise ValueError(
                "merging the final-norm SSF shift needs an lm_head bias, which Llama-family configs cannot express: "
                "keep the adapter unmerged or train with include_final_norm=False"
            )
        parent = self.model.get_submodule(parent_key) if parent_key else self.model
        consumer_names = config.norm_consumers.get(name)
        if not consumer_names:
            raise ValueError(f"SSF: no `norm_consumers` entry for norm {name!r}; its shift has nowhere to fold")
        return [parent.get_submodule(c) for c in consumer_names]

    def before_merge(self, adapter_names, safe_merge: bool) -> None:
        """Norms first: their shifts fold into linears that must not be merged yet."""
        for key, module in list(self.model.named_modules()):
            if isinstance(module, SSFNorm):
                names = adapter_names or module.active_adapters
                config = self.peft_config[names[0]]
                module.merge(safe_merge=safe_merge, adapter_names=names, consumers=self._consumers(key, config))

    def after_merge(self, model: nn.Module) -> None:
        set_bias_flags(model)


def set_bias_flags(model: nn.Module) -> list[str]:
    """After a merge gave some linears a bias: set the Llama-family flags that cover them and give every linear those
    flags cover a (zero) bias, so the saved model reloads with its biases. The flags set."""
    config = getattr(model, "config", None)
    flags = []
    for flag, names in BIAS_FLAGS.items():
        linears = [m for k, m in model.named_modules() if isinstance(m, nn.Linear) and k.rpartition(".")[2] in names]
        if not any(m.bias is not None for m in linears):
            continue
        if config is None or not hasattr(config, flag):
            warnings.warn(f"SSF merge added biases but the model config has no {flag!r} flag", stacklevel=2)
            continue
        for m in linears:
            add_zero_bias(m)
        setattr(config, flag, True)
        flags.append(flag)
    return flags


def trainable_count(model: nn.Module, config: SSFConfig) -> int:
    """The card's formula: 2 * (sum of the targeted linears' out_features + the channels of every adapted norm),
    read from the unwrapped model's modules."""
    total = 0
    for key, module in model.named_modules():
        if matches_target(config.adapted_norms(), key) and getattr(module, "weight", None) is not None:
            total += module.weight.shape[0]
        elif matches_target(config.target_modules, key) and isinstance(module, nn.Linear):
            total += module.out_features
    return 2 * total


__all__ = [
    "SSF_PEFT_TYPE",
    "SSFConfig",
    "SSFLayer",
    "SSFLinear",
    "SSFModel",
    "SSFNorm",
    "set_bias_flags",
    "trainable_count",
]
