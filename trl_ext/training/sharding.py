"""Full values of parameters that a sharded engine holds in pieces: DeepSpeed ZeRO-3 keeps an empty tensor outside
its module's forward (the shard lives in `ds_tensor`), torch FSDP2 keeps a sharded `DTensor`. A reference, a teacher
or an EMA update must read the whole parameter, which every process gathers together (a collective: call it on every
process, in the same order)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch


def is_zero3_partitioned(param: torch.Tensor) -> bool:
    return hasattr(param, "ds_id")


def is_dtensor(param: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(param, DTensor)


def full_shape(param: torch.Tensor) -> torch.Size:
    """The shape of the whole parameter, also while ZeRO-3 holds it empty outside its module's forward (`ds_shape`;
    an FSDP2 DTensor already reports its global shape)."""
    return param.ds_shape if is_zero3_partitioned(param) else param.shape


def engine_name(trainer) -> str | None:
    """ "DeepSpeed" or "FSDP" when `trainer` trains under that engine (which keeps its own flat or partitioned copies of
    parameters and gradients), else None (one process or DDP): what a method that needs whole tensors refuses."""
    if getattr(trainer, "is_deepspeed_enabled", False):
        return "DeepSpeed"
    return "FSDP" if getattr(trainer, "is_fsdp_enabled", False) else None


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether any parameter of `model` is held in shards (ZeRO-3 or FSDP2)."""
    return any(is_zero3_partitioned(p) or is_dtensor(p) for p in model.parameters())


@contextlib.contextmanager
def full_parameters(params: Iterable[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """The full, detached values of `params` while the context is open (ZeRO-3: gathered, and partitioned again on
    exit; FSDP2: all-gathered copies; plain tensors as they are)."""
    params = list(params)
    partitioned = [p for p in params if is_zero3_partitioned(p)]
    gather = contextlib.nullcontext()
    if partitioned:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(partitioned)
    with gather, torch.no_grad():
        yield [p.full_tensor() if is_dtensor(p) else p.detach() for p in params]


def unsharded_state(model: torch.nn.Module, only_trainable: bool = False) -> dict[str, torch.Tensor]:
    """A copy of every parameter's full value (or of those that require grad), by name."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad or not only_trainable}
    with full_parameters(named.values()) as values:
        return {name: value.clone() for name, value in zip(named, values, strict=True)}


def close_process_group() -> None:
    """Destroy the launcher's process group once a run is over: left to interpreter exit, gloo's worker threads can be
    torn down while still joinable, and a rank dies with SIGABRT ("terminate called without an active exception")
    after a successful run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def form_process_group(args) -> None:
    """Set up the launcher's process group before the model loads, as `trainer.train` would later: under DeepSpeed
    ZeRO-3 transformers partitions the weights while loading (`zero.Init`), sized by DeepSpeed's own view of the world
    size, which on CPU (where accelerate skips DeepSpeed's initialisation) would otherwise still be one process."""
    args.device  # noqa: B018 (TrainingArguments sets the process group up on first access)
    if getattr(args, "deepspeed", None) and torch.distributed.is_initialized():
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
