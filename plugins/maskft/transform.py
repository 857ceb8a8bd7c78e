"""The offline transform: each row -> `n_copies` masked-copy -> original pairs, one frozen mask per copy (the
collator path of `trl-ext train maskft` re-samples them every epoch instead)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .config import MaskFTConfig
from .masking import build_pair, row_rng


def mask_ft_transform(ds, cfg: MaskFTConfig | None = None, n_copies: int = 1, tokenizer=None):
    """`ds` (a Dataset or DatasetDict) -> prompt/completion rows plus `maskft_t` and `maskft_masked_frac` (the
    copy's ratio and masked share of units; -1 for a plain pair). Row i, copy k uses `row_rng(seed, 0, i, k)`;
    the other columns are kept."""
    from datasets import Dataset, DatasetDict

    cfg = cfg or MaskFTConfig()
    if isinstance(ds, DatasetDict):
        return DatasetDict({k: mask_ft_transform(v, cfg, n_copies, tokenizer) for k, v in ds.items()})
    if int(n_copies) < 1:
        raise ValueError(f"n_copies={n_copies} must be >= 1")
    missing = [c for c in cfg.columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"maskft ({cfg.mode} mode) needs the columns {missing}; the dataset has {ds.column_names}")
    rows = []
    for i, row in enumerate(ds):
        for k in range(int(n_copies)):
            pair, masked = build_pair(row, cfg, row_rng(cfg.seed, 0, i, k), tokenizer)
            extra = {c: v for c, v in row.items() if c not in pair}
            rows.append({**extra, **pair, **_stats(masked)})
    return Dataset.from_list(rows)


def _stats(masked) -> dict[str, float]:
    if masked is None:
        return {"maskft_t": -1.0, "maskft_masked_frac": -1.0}
    return {"maskft_t": masked.t, "maskft_masked_frac": masked.masked / max(masked.units, 1)}


_FIELDS = {f.name for f in fields(MaskFTConfig)}


def make_maskft_transform(n_copies: int = 1, tokenizer=None, model=None, **options: Any):
    """The registry's factory: MaskFTConfig fields as options, plus `n_copies`."""
    unknown = set(options) - _FIELDS
    if unknown:
        raise ValueError(f"maskft: unknown options {sorted(unknown)}; allowed: n_copies, {', '.join(sorted(_FIELDS))}")
    cfg = MaskFTConfig(**options)
    return lambda ds: mask_ft_transform(ds, cfg, int(n_copies), tokenizer)
