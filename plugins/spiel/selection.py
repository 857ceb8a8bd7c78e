"""SpIEL-AG's drop/regrow: the schedule, the rate, the per-layer drop-and-grow, and the selector that accumulates the
dense gradient of every adapted layer (reduced to its top-k candidates) during a selection phase.

The dense gradient of W' = W + scatter(idx, v) is G = g^T x (g: the layer's output gradient, x: its input), which the
selector computes in a tensor hook on each SpIEL layer's output: peft's supertuning Linear composes its weight and
calls F.linear itself, so hooks must sit on that wrapper, not on the base layer. G lives only inside the hook; what
stays between steps is k candidates, their gradient sums and squared sums per layer (O(k), like the deltas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Schedule:
    """When selection phases begin and end. `t` counts completed optimizer steps (checked after each step):
    a phase begins at construction (t=0) and whenever (t+1) % S == 0, and ends with a drop/regrow when t % S == A;
    nothing begins once the run is over, nothing ends after `total_steps`."""

    reselection_steps: int = 20  # S
    selection_accumulation_steps: int = 5  # A
    total_steps: int = 0  # T_total

    def begins(self, t: int) -> bool:
        return t == 0 or ((t + 1) % self.reselection_steps == 0 and t < self.total_steps)

    def ends(self, t: int) -> bool:
        return t % self.reselection_steps == self.selection_accumulation_steps and 0 < t <= self.total_steps

    def selection_steps(self) -> list[int]:
        """The steps that end with a drop/regrow, by running the rule over the whole run."""
        selecting, steps = self.begins(0), []
        for t in range(1, self.total_steps + 1):
            if selecting and self.ends(t):
                steps.append(t)
                selecting = False
            if not selecting and self.begins(t):
                selecting = True
        return steps


def reselection_rate(t: int, schedule: Schedule, initial_rate: float = 0.2, policy: str = "linear") -> float:
    """Fraction p of each layer's deltas replaced at step t. linear (official default): p = 1 at the first selection
    (t = A: the random initial support is only a placeholder), else zeta0 * (1 - t / T_total); cosine (official, no
    p = 1 first): zeta0 * (1 + cos(pi t / T_total)) / 2."""
    total = max(schedule.total_steps, 1)
    if policy == "cosine":
        return initial_rate * (1.0 + math.cos(math.pi * t / total)) / 2.0
    if policy != "linear":
        raise ValueError(f"reselection_rate_policy must be 'linear' or 'cosine', got {policy!r}")
    if t == schedule.selection_accumulation_steps:
        return 1.0
    return initial_rate * (1.0 - t / total)


@dataclass
class Regrowth:
    """What one layer's drop/regrow did: the slots now holding new indices, and for each the position of its index in
    the candidate list (to seed the optimizer from that candidate's accumulated gradient)."""

    slots: torch.Tensor
    candidate_positions: torch.Tensor


def drop_and_grow(
    indices: torch.Tensor, values: torch.Tensor, candidates: torch.Tensor, grad_sum: torch.Tensor, rate: float
) -> Regrowth:
    """In place: drop the m = floor(k * rate) slots of smallest |v| and regrow them with the candidates of largest
    |accumulated gradient| that are not still active; an index both dropped and regrown keeps its slot and value."""
    k = indices.numel()
    m = min(int(k * rate), k)
    empty = Regrowth(indices.new_zeros(0, dtype=torch.long), indices.new_zeros(0, dtype=torch.long))
    if m == 0:
        return empty
    # stable sort so that equal |v| drop in slot order; the order matters when the drop list is truncated below
    drop = torch.sort(values.detach().abs(), stable=True).indices[:m]
    keep = torch.ones(k, dtype=torch.bool, device=indices.device)
    keep[drop] = False
    still_active = indices[keep].long()
    candidates = candidates.long()
    free = ~torch.isin(candidates, still_active)
    free_positions = torch.nonzero(free).flatten()
    grow_count = min(m, free_positions.numel())
    if grow_count == 0:
        return empty
    order = torch.sort(grad_sum[free_positions].abs(), descending=True, stable=True).indices[:grow_count]
    grow_positions = free_positions[order]
    grown = candidates[grow_positions]
    dropped = indices[drop].long()
    both = torch.isin(dropped, grown)
    drop = drop[~both]
    grow_positions = grow_positions[~torch.isin(grown, dropped)]
    drop = drop[: grow_positions.numel()]
    with torch.no_grad():
        indices[drop] = candidates[grow_positions].to(indices.dtype)
        values[drop] = 0.0
    return Regrowth(drop, grow_positions)


@dataclass
class Accumulator:
    """One layer's selection-phase state: candidates fixed at the first backward, sums of their gradient and its
    square over the backward calls (micro-batches) since."""

    candidates: torch.Tensor
    grad_sum: torch.Tensor
    grad_sq_sum: torch.Tensor
    count: int = 1


class Selector:
    """Accumulates candidate gradients of SpIEL layers while a selection phase is open, and does the drop/regrow.

    Under several processes every layer's gradient is averaged over them inside the hook (the dense G once per phase,
    to pick the same candidates everywhere; then only the k candidates' entries), so all processes keep identical
    supports and equal one process on the same global batch. `group`: the process group of these collectives (a
    dedicated one keeps them apart from DDP's gradient buckets)."""

    def __init__(self, layers: dict[str, nn.Module], adapter_name: str = "default", group: Any = None):
        self.layers = layers
        self.adapter_name = adapter_name
        self.group = group
        self.accumulators: dict[str, Accumulator] = {}
        self.selecting = False
        self._handles: list[Any] = []

    # --- phase ---------------------------------------------------------------------------------------------------
    def begin(self) -> None:
        if self.selecting:
            return
        self.selecting = True
        self.accumulators = {}
        self._install()

    def _install(self) -> None:
        for name, layer in self.layers.items():
            self._handles.append(layer.register_forward_hook(self._forward_hook(name)))

    def _forward_hook(self, name: str):
        def hook(module, args, output):
            if torch.is_grad_enabled() and isinstance(output, torch.Tensor) and output.requires_grad:
                x = args[0].detach()

                def on_grad(g):
                    self._accumulate(name, x, g)

                output.register_hook(on_grad)

        return hook

    def _world(self) -> int:
        return dist.get_world_size(self.group) if self.group is not None else 1

    def _mean_over_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        world = self._world()
        if world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
            tensor /= world
        return tensor

    @torch.no_grad()
    def _accumulate(self, name: str, x: torch.Tensor, g: torch.Tensor) -> None:
        layer = self.layers[name]
        out_features, in_features = layer.get_base_layer().weight.shape
        acc = self.accumulators.get(name)
        g = g.reshape(-1, out_features).float()
        x = x.reshape(-1, in_features).float()
        if acc is None:
            dense = self._mean_over_processes((g.T @ x).flatten())
            k = layer.supertuning_values[self.adapter_name].numel()
            candidates = torch.topk(dense.abs(), k, sorted=True).indices
            picked = dense[candidates]
            self.accumulators[name] = Accumulator(candidates, picked.clone(), picked.square())
            return
        picked = self._mean_over_processes((g.T @ x).flatten()[acc.candidates])
        acc.grad_sum += picked
        acc.grad_sq_sum += picked.square()
        acc.count += 1

    def end(self) -> dict[str, Accumulator]:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.selecting = False
        accumulators, self.accumulators = self.accumulators, {}
        return accumulators

    # --- drop/regrow -----------------------------------------------------------------------------------------------
    def select(
        self, rate: float, accumulators: dict[str, Accumulator], optimizer: Any = None, grad_accum_steps: int = 1
    ) -> dict[str, float]:
        """Drop/regrow every layer at `rate`; reseed the optimizer state of the replaced slots (see
        `SpIELAdamW.reseed`). Returns the metrics: replaced fraction, rate, mean |delta|, active deltas."""
        replaced = active = 0
        for name, layer in self.layers.items():
            indices = layer.supertuning_indices[self.adapter_name]
            values = layer.supertuning_values[self.adapter_name]
            active += indices.numel()
            acc = accumulators.get(name)
            if acc is None:  # the layer saw no backward during the phase
                continue
            regrowth = drop_and_grow(indices, values.data, acc.candidates, acc.grad_sum, rate)
            replaced += regrowth.slots.numel()
            if optimizer is not None and hasattr(optimizer, "reseed") and regrowth.slots.numel():
                positions = regrowth.candidate_positions
                optimizer.reseed(
                    values,
                    regrowth.slots,
                    acc.grad_sum[positions] / acc.count,
                    acc.grad_sq_sum[positions] / acc.count,
                    acc.count / grad_accum_steps,
                )
        deltas = [layer.supertuning_values[self.adapter_name].detach() for layer in self.layers.values()]
        mean_abs = float(sum(d.abs().sum() for d in deltas) / max(active, 1))
        return {
            "spiel/replaced_frac": replaced / max(active, 1),
            "spiel/rate": float(rate),
            "spiel/mean_abs_delta": mean_abs,
            "spiel/num_active": float(active),
        }

    # --- checkpoint ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "selecting": self.selecting,
            "accumulators": {
                name: {
                    "candidates": a.candidates.cpu(),
                    "grad_sum": a.grad_sum.cpu(),
                    "grad_sq_sum": a.grad_sq_sum.cpu(),
                    "count": a.count,
                }
                for name, a in self.accumulators.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.end()
        devices = {name: layer.supertuning_values[self.adapter_name].device for name, layer in self.layers.items()}
        self.accumulators = {
            name: Accumulator(
                a["candidates"].to(devices[name]),
                a["grad_sum"].to(devices[name]),
                a["grad_sq_sum"].to(devices[name]),
                int(a["count"]),
            )
            for name, a in state["accumulators"].items()
        }
        if state["selecting"]:
            self.selecting = True
            self._install()


__all__ = ["Accumulator", "Regrowth", "Schedule", "Selector", "drop_and_grow", "reselection_rate"]
