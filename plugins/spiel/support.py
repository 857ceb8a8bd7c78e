"""SpIEL's sparse support on peft's supertuning tuner: the official budget, the random initial support, and access to
each adapted layer's (indices, values).

peft's `SupertuningConfig` keeps, per targeted Linear, a flat int32 index buffer and a float32 value vector that its
forward scatter-adds onto the frozen weight: exactly SpIEL's state. We only (1) size it by SpIEL's budget (density x
all the model's parameters, spread over the targets in proportion to their size), (2) replace peft's magnitude-chosen
indices by a uniformly random subset (the official placeholder, fully replaced at the first selection), and (3) force
`save_precomputed_indices=True`, since peft otherwise recomputes magnitude indices on load, wrong after regrowth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from trl_ext.adapters.targets import matches_target

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Budget:
    """SpIEL's trainable budget for one model: `tunable` = T entries over `targets` = sum of the targeted linears'
    numel, `total` = every parameter of the model; `per_layer` = floor(T * n / sum_n) for each targeted linear."""

    total: int
    targets: int
    tunable: int
    sparsity: float
    per_layer: dict[str, int]

    @property
    def trainable(self) -> int:
        return sum(self.per_layer.values())


def target_linears(model: nn.Module, target_modules: str | Sequence[str]) -> dict[str, nn.Linear]:
    """The Linear layers SpIEL adapts, by module path (tied embeddings and the LM head are never targeted)."""
    names = target_modules if isinstance(target_modules, str) else list(target_modules)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and matches_target(names, name)
    }


def spiel_budget(
    model: nn.Module,
    density: float = 0.01,
    num_tunable: int | None = None,
    target_modules: str | Sequence[str] = tuple(DEFAULT_TARGETS),
) -> Budget:
    """T = num_tunable, else int(density x total parameters) (official: the density is of the whole model, so the
    targets' own density is T / sum_n, 1.267 x density on SmolLM2-135M), and the peft `sparsity` whose per-layer
    count int(n * (1 - sparsity)) is floor(T * n / sum_n) for every target."""
    linears = target_linears(model, target_modules)
    if not linears:
        raise ValueError(f"spiel: no Linear layer matches target_modules={target_modules!r}")
    total = sum(p.numel() for p in model.parameters())
    targets = sum(m.weight.numel() for m in linears.values())
    tunable = int(num_tunable) if num_tunable is not None else int(density * total)
    if tunable < 1:
        raise ValueError(f"spiel: a budget of {tunable} entries (density={density}, num_tunable={num_tunable})")
    tunable = min(tunable, targets)
    per_layer = {name: m.weight.numel() * tunable // targets for name, m in linears.items()}
    if min(per_layer.values()) < 1:
        small = min(per_layer, key=per_layer.get)
        raise ValueError(f"spiel: {tunable} entries leave none to {small}; raise the density or drop that target")
    sparsity = max(0.0, 1.0 - tunable / targets)
    # peft counts int(n * (1 - sparsity)) in floats: step the sparsity down by ulps until every count is the exact one
    for _ in range(64):
        if all(int(m.weight.numel() * (1 - sparsity)) == per_layer[n] for n, m in linears.items()):
            break
        sparsity = max(0.0, math.nextafter(sparsity, 0.0))
    else:
        raise RuntimeError("spiel: no peft sparsity reproduces floor(T * n / sum_n) for every target")
    return Budget(total=total, targets=targets, tunable=tunable, sparsity=sparsity, per_layer=per_layer)


def spiel_layers(model: nn.Module, adapter_name: str | None = None) -> dict[str, nn.Module]:
    """peft supertuning layers (by module path) carrying `adapter_name` (any adapter when None)."""
    from peft.tuners.supertuning.layer import SupertuningLayer

    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, SupertuningLayer)
        and (adapter_name is None and len(module.supertuning_values) or adapter_name in module.supertuning_values)
    }


def randomize_support(model: nn.Module, adapter_name: str = "default", seed: int | None = None) -> None:
    """Give every SpIEL layer a uniformly random support (k distinct flat indices, sorted) and zero deltas, in place.
    `seed` None draws from torch's global generator."""
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in spiel_layers(model, adapter_name).values():
            indices = layer.supertuning_indices[adapter_name]
            numel = layer.get_base_layer().weight.numel()
            chosen = torch.randperm(numel, generator=generator)[: indices.numel()].sort().values
            indices.copy_(chosen.to(indices.dtype))
            layer.supertuning_values[adapter_name].zero_()


def wrap_spiel(
    model: nn.Module,
    density: float = 0.01,
    num_tunable: int | None = None,
    target_modules: str | Sequence[str] = tuple(DEFAULT_TARGETS),
    seed: int | None = None,
    adapter_name: str = "default",
):
    """`get_peft_model` with a SpIEL-sized `SupertuningConfig` and a random initial support; returns the PeftModel.
    Prints the trainable count and checks it against the card's formula (sum over targets of floor(T n / sum_n))."""
    from peft import PeftModel, SupertuningConfig, get_peft_model

    from .sparse_linear import use_sparse_delta_linear

    if isinstance(model, PeftModel):
        raise ValueError("spiel: the model already carries a peft adapter; SpIEL wraps a plain model")
    budget = spiel_budget(model, density, num_tunable, target_modules)
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = SupertuningConfig(
        target_modules=targets,
        sparsity=budget.sparsity,
        save_precomputed_indices=True,
        init_weights=True,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config, adapter_name=adapter_name)
    use_sparse_delta_linear(model)
    randomize_support(model, adapter_name, seed)
    trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "supertuning_" in n)
    if trainable != budget.trainable:
        raise RuntimeError(f"spiel: {trainable} trainable deltas, the card's formula gives {budget.trainable}")
    print(
        f"spiel: {trainable:,} trainable deltas = sum over {len(budget.per_layer)} targeted linears of "
        f"floor(T * n / {budget.targets:,}), T = {budget.tunable:,} ({budget.tunable / budget.total:.4g} of "
        f"{budget.total:,} parameters); + {trainable:,} int32 indices",
        flush=True,
    )
    return model


__all__ = [
    "DEFAULT_TARGETS",
    "Budget",
    "randomize_support",
    "spiel_budget",
    "spiel_layers",
    "target_linears",
    "wrap_spiel",
]
