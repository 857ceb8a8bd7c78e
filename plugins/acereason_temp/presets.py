"""AceReason's documented presets on existing GRPOConfig fields (no new training code)."""

from __future__ import annotations

# The paper's math curriculum: max_completion_length per stage (then code stages).
STAGE_LENGTHS = (8192, 16384, 24576, 32768)
# Overlong filtering (masking truncated completions out of the loss) helped at <= 16K and hurt beyond.
OVERLONG_FILTER_MAX_LENGTH = 16384


def overlong_filter_preset(max_completion_length: int) -> dict[str, bool]:
    """GRPOConfig overrides for a stage with this length budget: `mask_truncated_completions` on up to 16K tokens,
    off beyond (the paper's finding at 8K/16K vs 24K/32K)."""
    if int(max_completion_length) < 1:
        raise ValueError(f"max_completion_length must be >= 1, got {max_completion_length}")
    return {"mask_truncated_completions": int(max_completion_length) <= OVERLONG_FILTER_MAX_LENGTH}
