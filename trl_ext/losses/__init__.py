"""Token-level losses on label positions, in chunks of tokens, so no (batch, seq, vocab) float32 logits tensor is
ever built: the fused token loss (NLL/DFT weights plus a KL to a reference), losses against a target distribution and
a gold token, and the LM head they project with. `from trl_ext.losses import ...` is the public import."""

from trl_ext.losses.token_loss import (
    HeadGradients,
    LMHead,
    TokenStats,
    dft_weight,
    fused_token_loss,
    head_share,
    shifted_positions,
)

__all__ = [
    "HeadGradients",
    "LMHead",
    "TokenStats",
    "dft_weight",
    "fused_token_loss",
    "head_share",
    "shifted_positions",
]
