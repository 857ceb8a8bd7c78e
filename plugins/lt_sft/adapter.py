"""`--adapter sparse_diff:path=...`: add saved sparse diffs (LT-SFT's phi) to a model before training or evaluation,
e.g. a language diff under a task diff, or phi_lang_tgt + phi_task at inference."""

from __future__ import annotations

from collections.abc import Callable

import torch

from trl_ext.adapters.sparse import SparseDiff, compose


def load_diffs(paths: str) -> SparseDiff:
    """The sum of the diffs at `paths` (comma- or plus-separated files or folders holding sparse_diff.safetensors)."""
    parts = [p.strip() for p in paths.replace("+", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("sparse_diff: give path=DIR_OR_FILE (several: path=a+b)")
    return compose(*(SparseDiff.load(p) for p in parts))


def make_sparse_diff_adapter(path: str = "", scale: float | str = 1.0) -> Callable[[torch.nn.Module], torch.nn.Module]:
    diff = load_diffs(path)
    scale = float(scale)

    def apply(model: torch.nn.Module) -> torch.nn.Module:
        diff.apply(model, scale=scale)
        print(
            f"sparse_diff: added {len(diff):,} entries over {len(diff.entries)} tensors (scale {scale:g})", flush=True
        )
        return model

    return apply
