"""PaST's skill vector: v = theta_rl_S - theta_sft_S per weight tensor, injected as theta_final = theta_sft_T + lambda v.

Deltas are computed and stored in float32 (the card's pitfall: the three checkpoints share theta_0; subtracting in a
16-bit dtype loses the small RL update) and cast to each parameter's dtype only when added. Parameters are walked with
`named_parameters()`, which lists a tied tensor once, so a tied embedding / LM head is updated once, not twice.
Embeddings and the LM head are excluded by default (the card's `exclude_embeddings`): the RL stage barely moves them
and the target's vocabulary rows are its own.

LoRA: `lora_skill_vector` reads an adapter's merged delta (B A * alpha / r, peft's `get_delta_weight`) under the base
weight's name, so a LoRA skill applies to a full-weight target; `inject_lora_skill` adds the RL adapter to a target
PeftModel through peft's `add_weighted_adapter(..., combination_type="cat")`, which stacks the adapters' factors and is
exactly W + sum_i w_i dW_i (`linear` averages A and B separately and adds cross terms: not the skill vector).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch

DEFAULT_EXCLUDE = ("embed_tokens", "lm_head")
_FORMAT = "past-skill-vector"


class SkillVectorError(ValueError):
    """Two models (or a model and a vector) that do not share an architecture: the names or shapes differ."""


def _selected(name: str, include: Sequence[str] | None, exclude: Sequence[str]) -> bool:
    if any(pattern in name for pattern in exclude):
        return False
    return include is None or any(pattern in name for pattern in include)


def _parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return dict(model.named_parameters())  # a tied tensor appears once, under its first name


@contextlib.contextmanager
def _writable(params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Full parameters to write in place: gathered under DeepSpeed ZeRO-3 (rank 0's values are partitioned back
    out on exit, so every rank must apply the same update), as they are otherwise; FSDP2 DTensors are refused."""
    from trl_ext.training.sharding import is_dtensor, is_zero3_partitioned

    if any(is_dtensor(p) for p in params):
        raise SkillVectorError("A skill vector cannot be written into FSDP2 shards; apply it to the saved model.")
    partitioned = [p for p in params if is_zero3_partitioned(p)]
    if partitioned:
        import deepspeed

        with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=0), torch.no_grad():
            yield
    else:
        with torch.no_grad():
            yield


def full_state(model: torch.nn.Module, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """float32 copies of the full values of `model`'s parameters (all, or `names`), gathered if sharded."""
    from trl_ext.training.sharding import full_parameters

    params = _parameters(model)
    names = list(params if names is None else names)
    with full_parameters([params[n] for n in names]) as values:
        return {n: v.detach().to(torch.float32).clone() for n, v in zip(names, values, strict=True)}


class SkillVector:
    """A per-tensor weight delta in float32, keyed by parameter name (as `named_parameters()` of the model names it)."""

    def __init__(self, deltas: Mapping[str, torch.Tensor]) -> None:
        self.deltas = {name: d.detach().to(torch.float32) for name, d in deltas.items()}

    # --- building -----------------------------------------------------------------------------------------------
    @classmethod
    def from_state_dicts(
        cls,
        rl_state: Mapping[str, torch.Tensor],
        sft_state: Mapping[str, torch.Tensor],
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
    ) -> SkillVector:
        """v = rl - sft over the selected names both hold; a name in one only, or a shape that differs, is refused
        (they must be the same architecture trained from one theta_0)."""
        rl_names = {n for n in rl_state if _selected(n, include, exclude)}
        sft_names = {n for n in sft_state if _selected(n, include, exclude)}
        if rl_names != sft_names:
            only_rl, only_sft = sorted(rl_names - sft_names), sorted(sft_names - rl_names)
            raise SkillVectorError(
                f"The RL and SFT models hold different parameters (only in RL: {only_rl[:3]}, only in SFT: "
                f"{only_sft[:3]}): a skill vector needs one architecture."
            )
        deltas = {}
        for name in sorted(rl_names):
            rl, sft = rl_state[name], sft_state[name]
            if rl.shape != sft.shape:
                raise SkillVectorError(
                    f"{name}: shape {tuple(rl.shape)} in the RL model, {tuple(sft.shape)} in the SFT model (a "
                    "different vocabulary or size?): a skill vector needs one architecture."
                )
            deltas[name] = rl.to(torch.float32) - sft.to(torch.float32)
        return cls(deltas)

    @classmethod
    def from_models(
        cls,
        rl_model: torch.nn.Module,
        sft_model: torch.nn.Module,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
    ) -> SkillVector:
        """v = theta_rl - theta_sft for two full-weight models of one architecture (a PeftModel: merge it first, or
        use `lora_skill_vector` for an adapter trained on top of the SFT model)."""
        return cls.from_state_dicts(full_state(rl_model), full_state(sft_model), include, exclude)

    # --- arithmetic ---------------------------------------------------------------------------------------------
    def __add__(self, other: SkillVector) -> SkillVector:
        if set(self.deltas) != set(other.deltas):
            raise SkillVectorError("Skill vectors over different parameters cannot be added.")
        return SkillVector({n: d + other.deltas[n] for n, d in self.deltas.items()})

    def scaled(self, lam: float) -> SkillVector:
        return SkillVector({n: lam * d for n, d in self.deltas.items()})

    def apply(self, model: torch.nn.Module, lam: float = 1.0) -> torch.nn.Module:
        """theta <- theta + lam * v in place (each tensor in float32, cast back to its dtype); returns `model`.
        lam = 0 leaves the model untouched, bit for bit."""
        if lam == 0:  # x + 0.0 would turn a -0.0 weight into +0.0
            return model
        params = _parameters(model)
        missing = sorted(set(self.deltas) - set(params))
        if missing:
            raise SkillVectorError(
                f"The model has no parameter {missing[0]!r} (and {len(missing) - 1} more) the skill vector changes: "
                "it needs the architecture the vector was extracted from."
            )
        from trl_ext.training.sharding import full_shape

        for name, delta in self.deltas.items():
            if tuple(full_shape(params[name])) != tuple(delta.shape):
                raise SkillVectorError(
                    f"{name}: shape {tuple(full_shape(params[name]))} in the model, {tuple(delta.shape)} in the skill "
                    "vector: it needs the architecture the vector was extracted from."
                )
        targets = [params[n] for n in self.deltas]
        with _writable(targets):
            for name, delta in self.deltas.items():
                param = params[name]
                value = param.data.to(torch.float32) + lam * delta.to(param.device)
                param.data.copy_(value.to(param.dtype))
        return model

    def remove(self, model: torch.nn.Module, lam: float = 1.0) -> torch.nn.Module:
        """Undo `apply(model, lam)` (exact when the sums are exact in the parameter's dtype)."""
        return self.apply(model, -lam)

    # --- reports ------------------------------------------------------------------------------------------------
    def norm(self) -> float:
        """||v||_2 over every tensor."""
        return math.sqrt(sum(float(d.pow(2).sum()) for d in self.deltas.values()))

    def norm_report(self) -> dict[str, float]:
        """||v_l||_2 per tensor."""
        return {n: float(d.norm()) for n, d in self.deltas.items()}

    # --- files --------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One safetensors file, float32, written tensor by tensor's worth of memory at most once more."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({n: d.contiguous() for n, d in self.deltas.items()}, str(tmp), metadata={"format": _FORMAT})
        tmp.replace(path)  # a killed save leaves no file that looks complete
        return path

    @classmethod
    def load(cls, path: str | Path) -> SkillVector:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No skill vector at {path} (written by past_extract or SkillVector.save).")
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("format") != _FORMAT:
                raise SkillVectorError(f"{path} is not a skill vector file (no {_FORMAT!r} metadata).")
            return cls({name: handle.get_tensor(name) for name in handle.keys()})  # noqa: SIM118

    def __len__(self) -> int:
        return len(self.deltas)

    def __repr__(self) -> str:
        return f"SkillVector({len(self.deltas)} tensors, norm={self.norm():.4g})"


def cosine_report(
    sft_delta: SkillVector | Mapping[str, torch.Tensor], rl_delta: SkillVector | Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Per weight matrix, cos_l = <dW_sft_l, dW_rl_l> / (||dW_sft_l|| ||dW_rl_l||) in float64; nan where either delta
    is zero (no direction). Over the names both hold."""
    a = sft_delta.deltas if isinstance(sft_delta, SkillVector) else sft_delta
    b = rl_delta.deltas if isinstance(rl_delta, SkillVector) else rl_delta
    report = {}
    for name in sorted(set(a) & set(b)):
        x, y = a[name].to(torch.float64).flatten(), b[name].to(torch.float64).flatten()
        denominator = float(x.norm()) * float(y.norm())
        report[name] = float(x @ y) / denominator if denominator > 0 else math.nan
    return report


def mean_abs_cosine(report: Mapping[str, float]) -> float:
    """Mean |cos| over the matrices with a defined cosine (nan ones skipped); nan when none is."""
    values = [abs(c) for c in report.values() if not math.isnan(c)]
    return sum(values) / len(values) if values else math.nan


# --- LoRA ---------------------------------------------------------------------------------------------------------
_PEFT_PREFIX = re.compile(r"^base_model\.model\.")


def lora_skill_vector(peft_model: torch.nn.Module, adapter_name: str = "default") -> SkillVector:
    """The adapter's merged delta per target weight (B A * scaling, peft's `get_delta_weight`), keyed by the base
    model's parameter name (`model.layers.0.self_attn.q_proj.weight`): the skill vector of an RL stage that trained a
    LoRA adapter from zero (B = 0 at init) on top of the SFT model."""
    from peft.tuners.lora import LoraLayer

    deltas = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            with torch.no_grad():
                delta = module.get_delta_weight(adapter_name)
            deltas[_PEFT_PREFIX.sub("", name) + ".weight"] = delta.to(torch.float32)
    if not deltas:
        raise SkillVectorError(f"The model has no LoRA layer with an adapter {adapter_name!r}.")
    return SkillVector(deltas)


def inject_lora_skill(
    peft_model: torch.nn.Module,
    skill_adapter: str,
    lam: float = 1.0,
    target_adapter: str | None = None,
    adapter_name: str = "past",
) -> torch.nn.Module:
    """Add `skill_adapter` (the RL stage's LoRA) at scale `lam` on top of `target_adapter` (the target SFT LoRA, or
    none when the target is the base itself) as one new active adapter `adapter_name`, through peft's
    `add_weighted_adapter(..., combination_type="cat")`: W + dW_target + lam * dW_skill exactly."""
    adapters, weights = [skill_adapter], [float(lam)]
    if target_adapter is not None:
        adapters, weights = [target_adapter, skill_adapter], [1.0, float(lam)]
    peft_model.add_weighted_adapter(adapters, weights, adapter_name, combination_type="cat")
    peft_model.set_adapter(adapter_name)
    return peft_model
