"""SpIELAdamW: AdamW whose step counter is per entry ("age"), so a regrown delta gets the bias correction of its own
history, seeded from the gradients accumulated while it was a candidate, not the run's global step."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SpIELAdamW(torch.optim.Optimizer):
    """m = b1 m + (1-b1) g; s = b2 s + (1-b2) g^2; age += 1;
    p -= lr * (m / (1 - b1^age)) / (sqrt(s / (1 - b2^age)) + eps), after the decoupled decay p -= lr * wd * p (on
    SpIEL's deltas: a decay towards the pretrained weight). With every age equal this is torch's AdamW."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"SpIELAdamW: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def _state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
            state["age"] = torch.zeros_like(p, dtype=torch.float32)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                state = self._state(p)
                if wd:
                    p.mul_(1.0 - lr * wd)
                state["age"] += 1.0
                state["exp_avg"].lerp_(grad, 1.0 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                bias1 = 1.0 - torch.pow(beta1, state["age"])
                bias2 = 1.0 - torch.pow(beta2, state["age"])
                denom = (state["exp_avg_sq"] / bias2).sqrt_().add_(eps)
                p.add_((state["exp_avg"] / bias1 / denom).to(p.dtype), alpha=-lr)
        return loss

    @torch.no_grad()
    def reseed(
        self,
        param: torch.Tensor,
        slots: torch.Tensor,
        grad_mean: torch.Tensor,
        grad_sq_mean: torch.Tensor,
        age: float,
    ) -> None:
        """State of regrown `slots` of `param` as if it had seen its candidate-phase gradients for `age` steps:
        exp_avg = mean g * (1 - b1^age), exp_avg_sq = mean g^2 * (1 - b2^age) (official SpIEL)."""
        group = next(g for g in self.param_groups if any(p is param for p in g["params"]))
        beta1, beta2 = group["betas"]
        state = self._state(param)
        state["exp_avg"][slots] = grad_mean.float() * (1.0 - beta1**age)
        state["exp_avg_sq"][slots] = grad_sq_mean.float() * (1.0 - beta2**age)
        state["age"][slots] = float(age)


__all__ = ["SpIELAdamW"]
