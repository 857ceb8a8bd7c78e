"""Weight perturbations for SAM-like regularisers (LfU's "undesirable" update, SAM's ascent step).

Three pieces, each written so that autograd, DDP and gradient accumulation keep seeing the real parameters:

- `ascent_perturbation`: the normalised gradient step `c = alpha * g / ||g||_2` on the trainable parameters, with
  `torch.autograd.grad`, so gradients already accumulated in `.grad` (earlier micro-batches) are untouched and DDP's
  reducer hooks, which fire on gradient accumulation, do not run.
- `perturbed_forward`: a forward at `phi + sg(c)` through `torch.func.functional_call`: the perturbed values are
  `param + c` built in the graph, so the gradient reaches `param` (evaluated at the perturbed point) and no
  `param.data` is ever modified in place.
- `backward_reads_perturbed`: an emulation, for faithfulness to official code that moves `param.data` in place
  between a forward and its backward, of what that does: the backward of a graph recorded inside the context reads
  `param + c` wherever autograd saved (a view of) the parameter itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters that require grad, by name (tied parameters once): LoRA weights under PEFT, else all."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def ascent_perturbation(
    loss: torch.Tensor, params: dict[str, torch.Tensor], alpha: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """`c = alpha * g / ||g||_2` with `g = d loss / d params` and the global L2 norm over all tensors.

    Returns the detached perturbation per parameter name and `||g||_2`; a zero gradient gives a zero perturbation (no
    division by zero). A parameter the loss does not reach is an error, not a zero: it is what a sharded engine's
    parameter looks like when the forward ran on another copy of it (FSDP2's unsharded views), and a zero there
    would silently turn the perturbation off."""
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    missing = [n for n, g in zip(names, grads, strict=True) if g is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(
            f"The perturbation's loss does not reach {shown}: pass only the parameters it depends on (a sharded "
            "engine's parameters are read whole only inside their module's forward)."
        )
    grads = [g.detach() for g in grads]
    norm = torch.sqrt(sum((g.float().pow(2).sum() for g in grads), torch.zeros((), device=loss.device)))
    scale = alpha / norm if norm > 0 else torch.zeros_like(norm)
    return {n: (g.float() * scale).to(g.dtype) for n, g in zip(names, grads, strict=True)}, norm


def perturbed_parameters(
    params: dict[str, torch.Tensor], perturbation: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`{name: param + sg(c)}`: differentiable in `param`, so a loss at the perturbed point trains `param`."""
    return {n: p + perturbation[n].detach() for n, p in params.items() if n in perturbation}


def perturbed_forward(
    module: torch.nn.Module,
    params: dict[str, torch.Tensor],
    perturbation: dict[str, torch.Tensor],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """`module(*args, **kwargs)` with each named parameter replaced by `param + sg(perturbation)`.

    `params` are named relative to `module`. Parameters not named keep their values; tied weights follow their tie."""
    return torch.func.functional_call(module, perturbed_parameters(params, perturbation), args, kwargs)


class PerturbationRef:
    """A slot for a perturbation that is known only after the forward it applies to (set `.value` before backward)."""

    value: dict[str, torch.Tensor] | None = None


@contextlib.contextmanager
def backward_reads_perturbed(
    params: dict[str, torch.Tensor], perturbation: PerturbationRef | Callable[[], dict[str, torch.Tensor] | None]
) -> Iterator[None]:
    """Inside the context, record the forward normally; when its backward runs, every tensor autograd saved that is a
    parameter in `params` (or a view of one, e.g. the transposed weight of a linear layer) reads as the same view of
    `param + c`, with `c` the perturbation current at backward time (None: unchanged).

    This reproduces, without in-place writes, the gradient of official code that computes a loss at `phi`, then moves
    the weights to `phi + c` in place and calls backward: the saved activations stay those of `phi`, the saved weights
    are read at `phi + c`. Tensors autograd saved that are copies of a weight (a dtype cast under autocast) keep `phi`,
    as they do in that code. Regions recomputed by gradient checkpointing recompute at `phi`.
    """
    get = perturbation if callable(perturbation) else (lambda: perturbation.value)
    # Keyed by storage and offset: DeepSpeed ZeRO-1/2 views every parameter into one flat buffer (one shared storage)
    by_storage: dict[tuple[int, int], str] = {}
    for name, p in params.items():
        if p.is_contiguous() and p.layout == torch.strided:
            by_storage[(p.untyped_storage().data_ptr(), p.storage_offset())] = name
    moved: dict[str, torch.Tensor] = {}

    def pack(t: torch.Tensor):
        try:
            key = (t.untyped_storage().data_ptr(), t.storage_offset())
            name = by_storage.get(key) if t.layout == torch.strided else None
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. some wrapper subclasses)
            name = None
        if name is None or t.dtype != params[name].dtype:
            return t
        return (name, t)

    def unpack(packed):
        if not isinstance(packed, tuple):
            return packed
        name, t = packed
        c = get()
        if c is None or name not in c:
            return t
        if name not in moved:
            moved[name] = params[name].detach() + c[name].to(params[name].dtype)
        p = params[name]
        return torch.as_strided(moved[name], t.size(), t.stride(), t.storage_offset() - p.storage_offset())

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


__all__ = [
    "PerturbationRef",
    "ascent_perturbation",
    "backward_reads_perturbed",
    "perturbed_forward",
    "perturbed_parameters",
    "trainable_parameters",
]
