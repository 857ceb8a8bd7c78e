"""Sparse parameter differences and top-k supports, shared by the sparse fine-tuning methods (lt-sft, spiel).

A `SparseDiff` holds, per parameter tensor, the flat int64 positions and the values of its non-zero entries, so its
memory is proportional to the number of entries kept, never to the model. It adds onto a model in place (`apply`),
subtracts back out (`revert`), composes with other diffs by addition (`compose`, `+`) and saves to one safetensors
file (`save` / `load`: per tensor `NAME::indices`, `NAME::values`, `NAME::shape`).

`global_top_k` and `per_tensor_top_k` pick the entries of largest score over a set of tensors (e.g. the absolute
change of each weight after a dense phase), skipping entries already chosen: the global one by a threshold found from
each tensor's own top-k merged (no Python list, no concatenation of whole tensors), so ties at the threshold are all
kept (Lottery-Ticket sparse fine-tuning's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

DIFF_FILE = "sparse_diff.safetensors"
# Entries that moved by less than this are not part of a diff (composable-sft's threshold).
DIFF_EPSILON = 1e-7


@dataclass
class SparseEntries:
    """The kept entries of one tensor: flat positions (int64, ascending, unique), their values, the tensor's shape."""

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]

    def dense(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=dtype or self.values.dtype, device=device or self.values.device).reshape(
            -1
        )
        out[self.indices.to(out.device)] = self.values.to(out.dtype).to(out.device)
        return out.reshape(self.shape)


@dataclass
class SparseDiff:
    """theta - theta_base kept at a sparse support, by parameter name (as `model.named_parameters()` names it; a
    tied weight appears once)."""

    entries: dict[str, SparseEntries] = field(default_factory=dict)

    # --- building ----------------------------------------------------------------------------------------------------
    @classmethod
    def from_tensors(
        cls,
        tuned: Mapping[str, torch.Tensor],
        base: Mapping[str, torch.Tensor],
        epsilon: float = DIFF_EPSILON,
        names: Iterable[str] | None = None,
    ) -> SparseDiff:
        """The entries of `tuned - base` whose magnitude exceeds `epsilon`, for `names` (default: every name of
        `base`). Values are kept in float32 whatever the weights' dtype."""
        entries = {}
        for name in names if names is not None else base:
            delta = (tuned[name].detach().float().cpu() - base[name].detach().float().cpu()).reshape(-1)
            indices = torch.nonzero(delta.abs() > epsilon).reshape(-1)
            if indices.numel():
                entries[name] = SparseEntries(indices, delta[indices].clone(), tuple(tuned[name].shape))
        return cls(entries)

    @classmethod
    def from_models(
        cls, tuned: torch.nn.Module, base: torch.nn.Module, epsilon: float = DIFF_EPSILON, names=None
    ) -> SparseDiff:
        """The diff between two models of one architecture (parameters only)."""
        return cls.from_tensors(dict(tuned.named_parameters()), dict(base.named_parameters()), epsilon, names)

    # --- reading -----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of stored entries (over every tensor)."""
        return sum(e.indices.numel() for e in self.entries.values())

    @property
    def num_entries(self) -> int:
        return len(self)

    def dense(self, name: str) -> torch.Tensor:
        return self.entries[name].dense()

    # --- using -------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self, model: torch.nn.Module, scale: float = 1.0) -> torch.nn.Module:
        """Add `scale` x the diff to `model`'s parameters in place (every named tensor must exist with its shape)."""
        params = dict(model.named_parameters())
        missing = [n for n in self.entries if n not in params]
        if missing:
            raise KeyError(f"SparseDiff: the model has no parameter {missing[0]!r} ({len(missing)} missing)")
        for name, e in self.entries.items():
            p = params[name]
            if tuple(p.shape) != e.shape:
                raise ValueError(f"SparseDiff: {name} has shape {tuple(p.shape)}, the diff was taken at {e.shape}")
            flat = p.data.view(-1)
            idx = e.indices.to(flat.device)
            # Summed in float32 and cast once, so apply/revert of a low-precision weight rounds only once each way.
            flat[idx] = (flat[idx].float() + scale * e.values.to(flat.device)).to(flat.dtype)
        return model

    def revert(self, model: torch.nn.Module) -> torch.nn.Module:
        """Subtract the diff from `model` in place (undo `apply`)."""
        return self.apply(model, scale=-1.0)

    def scaled(self, scale: float) -> SparseDiff:
        return SparseDiff({n: SparseEntries(e.indices, e.values * scale, e.shape) for n, e in self.entries.items()})

    def __add__(self, other: SparseDiff) -> SparseDiff:
        return compose(self, other)

    # --- files -------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the diff to `path` (a folder gets `sparse_diff.safetensors` inside it)."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path.mkdir(parents=True, exist_ok=True)
            path = path / DIFF_FILE
        tensors = {}
        for name, e in self.entries.items():
            tensors[f"{name}::indices"] = e.indices.to(torch.int64).contiguous()
            tensors[f"{name}::values"] = e.values.contiguous()
            tensors[f"{name}::shape"] = torch.tensor(e.shape, dtype=torch.int64)
        save_file(tensors, str(path), metadata={"format": "trl_ext.sparse_diff", "entries": str(len(self))})
        return path

    @classmethod
    def load(cls, path: str | Path) -> SparseDiff:
        """Read a diff written by `save` (a file, or a folder holding `sparse_diff.safetensors`)."""
        from safetensors.torch import load_file

        path = Path(path)
        if path.is_dir():
            path = path / DIFF_FILE
        if not path.exists():
            raise FileNotFoundError(f"SparseDiff: no {DIFF_FILE} at {path}")
        tensors = load_file(str(path))
        names = sorted({key.rpartition("::")[0] for key in tensors})
        return cls(
            {
                n: SparseEntries(
                    tensors[f"{n}::indices"], tensors[f"{n}::values"], tuple(tensors[f"{n}::shape"].tolist())
                )
                for n in names
            }
        )


def compose(*diffs: SparseDiff) -> SparseDiff:
    """The sum of several diffs (their supports united, values added where they overlap): applying it equals applying
    each in turn."""
    by_name: dict[str, list[SparseEntries]] = {}
    for diff in diffs:
        for name, e in diff.entries.items():
            by_name.setdefault(name, []).append(e)
    out = {}
    for name, parts in by_name.items():
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"compose: {name} has different shapes in the diffs: {sorted(shapes)}")
        indices = torch.cat([p.indices.to(torch.int64) for p in parts])
        values = torch.cat([p.values.float() for p in parts])
        unique, inverse = torch.unique(indices, sorted=True, return_inverse=True)
        out[name] = SparseEntries(unique, torch.zeros(unique.numel()).index_add_(0, inverse, values), parts[0].shape)
    return SparseDiff(out)


# --- top-k supports ----------------------------------------------------------------------------------------------------
@dataclass
class Selection:
    """Boolean masks of the newly chosen entries, by name, the score threshold (`None` for per-tensor budgets) and
    how many entries were chosen (ties may exceed the budget)."""

    masks: dict[str, torch.Tensor]
    threshold: float | None
    count: int


def _candidates(score: torch.Tensor, taken: torch.Tensor | None) -> torch.Tensor:
    flat = score.detach().reshape(-1)
    return flat if taken is None else flat[~taken.reshape(-1).to(flat.device)]


def kth_largest(scores: Mapping[str, torch.Tensor], k: int, taken: Mapping[str, torch.Tensor] | None = None) -> float:
    """The k-th largest value over every tensor's entries not in `taken`: each tensor's own top-min(k, n) merged, so
    no more than k values per tensor are ever held together. -inf when there are no candidates."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    tops = []
    for name, score in scores.items():
        cand = _candidates(score, None if taken is None else taken.get(name))
        if cand.numel():
            tops.append(torch.topk(cand.float().cpu(), min(k, cand.numel()), sorted=False).values)
    if not tops:
        return float("-inf")
    merged = torch.cat(tops)
    return torch.topk(merged, min(k, merged.numel()), sorted=False).values.min().item()


def global_top_k(
    scores: Mapping[str, torch.Tensor],
    k: int,
    taken: Mapping[str, torch.Tensor] | None = None,
    threshold: float | None = None,
) -> Selection:
    """Entries not in `taken` whose score is >= the k-th largest such score over all tensors (ties all kept, so the
    count may exceed k). `threshold` overrides the computed one (a value broadcast from another process)."""
    thr = kth_largest(scores, k, taken) if threshold is None else threshold
    masks, count = {}, 0
    for name, score in scores.items():
        chosen = score.detach() >= thr
        if taken is not None and name in taken:
            chosen &= ~taken[name].to(chosen.device)
        masks[name] = chosen
        count += int(chosen.sum())
    return Selection(masks, thr, count)


def per_tensor_top_k(
    scores: Mapping[str, torch.Tensor],
    density: float,
    taken: Mapping[str, torch.Tensor] | None = None,
) -> Selection:
    """In each tensor, exactly floor(density x numel) of the entries not in `taken` (largest scores first; ties broken
    by position, as `torch.topk`): per-module budgets, the shape peft's Supertuning tuner trains."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density={density} must be in (0, 1]")
    masks, count = {}, 0
    for name, score in scores.items():
        flat = score.detach().reshape(-1).float()
        free = torch.ones_like(flat, dtype=torch.bool)
        if taken is not None and name in taken:
            free = ~taken[name].reshape(-1).to(flat.device)
        k = min(int(score.numel() * density), int(free.sum()))
        chosen = torch.zeros_like(free)
        if k > 0:
            chosen[torch.topk(flat.masked_fill(~free, float("-inf")), k).indices] = True
        masks[name] = chosen.reshape(score.shape)
        count += k
    return Selection(masks, None, count)


__all__ = [
    "DIFF_EPSILON",
    "DIFF_FILE",
    "Selection",
    "SparseDiff",
    "SparseEntries",
    "compose",
    "global_top_k",
    "kth_largest",
    "per_tensor_top_k",
]
