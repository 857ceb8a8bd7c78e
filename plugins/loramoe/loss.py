"""LoRAMoE's localized balancing constraint (the official code's squared coefficient of variation)."""

from __future__ import annotations

import torch

EPS = 1e-10  # official: Var(Z) / (Mean(Z)^2 + 1e-10)


def group_coefficients(task_types: torch.Tensor, num_experts: int, delta: float) -> torch.Tensor:
    """C (B, E): 1 + delta on the experts of the sample's group, 1 - delta elsewhere. Type 1 (world knowledge) owns
    experts 0..E/2-1, type 0 the rest; any other type gets 1 - delta on every expert (as the official code)."""
    first_half = torch.arange(num_experts, device=task_types.device) < num_experts // 2
    up, down = torch.tensor(1.0 + delta), torch.tensor(1.0 - delta)
    knowledge = torch.where(first_half, up, down)
    other = torch.where(first_half, down, up)
    t = task_types.reshape(-1, 1).to(first_half.device)
    return torch.where(t == 1, knowledge, torch.where(t == 0, other, down))


def localized_balance_loss(importance: torch.Tensor, task_types: torch.Tensor, delta: float) -> torch.Tensor:
    """L_lbc = Var(Z) / (Mean(Z)^2 + 1e-10) over the B*E values of Z = C * Q (unbiased variance, as torch.var in the
    official code); 0 when B*E == 1. `importance` is Q (B, E): each sample's router mass per expert."""
    if importance.numel() <= 1:
        return importance.sum() * 0.0
    z = (group_coefficients(task_types, importance.shape[-1], delta).to(importance) * importance).flatten()
    return z.var() / (z.mean() ** 2 + EPS)
