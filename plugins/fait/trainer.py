"""FAITTrainer: SFTTrainer whose per-token loss is weighted up on error-sensitive tokens (FAIT, arXiv 2503.16913)."""

from __future__ import annotations

import torch

from trl_ext.losses.token_loss import fused_token_loss
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, FAITConfig, import_weight_fn
from .masks import FAITSpans

# The masks aligned with `input_ids` that the collator carries (the dataset's `fault_*_mask` columns, when given,
# are over the completion's own tokens and are re-aligned into these).
LINE_MASK, TOKEN_MASK = "fait_line_mask", "fait_token_mask"
MASK_KEYS = (LINE_MASK, TOKEN_MASK)


def fait_weights(
    line_mask: torch.Tensor,
    token_mask: torch.Tensor,
    label_mask: torch.Tensor,
    line_weight: float,
    token_weight: float,
    dynamic: str,
) -> torch.Tensor:
    """Card loss: w_j = 1 + a * line_j + b * tok_j; with `dynamic="renorm"` each sequence's weights are rescaled by
    n_b / sum_j w_j over its scored tokens, so they average 1. Returns [B, T'] weights, 0 where `label_mask` is 0."""
    m = label_mask.to(torch.float32)
    w = (1.0 + line_weight * line_mask.float() + token_weight * token_mask.float()) * m
    if dynamic == "renorm":
        n_b = m.sum(dim=1, keepdim=True)
        w = w * (n_b / w.sum(dim=1, keepdim=True).clamp(min=1e-12))
    return w


class FAITTrainer(FusedSFTTrainer):
    """Fault-Aware Fine-Tuning: token-weighted cross-entropy, heavier on the tokens where the correct solution
    differs from similar incorrect variants. Training rows need `prompt`, `completion` and either
    `incorrect_completions` (default) or precomputed `fault_line_mask` / `fault_token_mask` columns."""

    loss_only_keys = MASK_KEYS
    config_class = FAITConfig
    _name = "FAIT"
    _tag_names = ["trl", "sft", "fait", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: FAITConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self._weight_fn = import_weight_fn(args.fait_weight_fn) if args.fait_weight_fn else None
        self._spans = FAITSpans(
            args.fait_masks_from, getattr(self.processing_class, "tokenizer", self.processing_class)
        )
        self.attach_masks(self._spans)

    # --- loss --------------------------------------------------------------------------------------------------------
    def token_weights(
        self, line_mask: torch.Tensor, token_mask: torch.Tensor, label_mask: torch.Tensor
    ) -> torch.Tensor:
        """[B, T-1] weights of the scored positions: the card's rule, or `fait_weight_fn`."""
        args: FAITConfig = self.args
        if self._weight_fn is not None:
            return self._weight_fn(line_mask, token_mask, label_mask, args).to(torch.float32) * label_mask
        return fait_weights(
            line_mask, token_mask, label_mask, args.fait_line_weight, args.fait_token_weight, args.fait_dynamic
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scored = self.scored_batch(model, inputs)
        mask = scored.mask
        masks = self.shifted_masks(inputs, mask)  # None: SFTTrainer's batches, no sensitive tokens (plain SFT)
        line = masks[LINE_MASK] * mask if masks else torch.zeros_like(mask, dtype=torch.int8)
        tok = masks[TOKEN_MASK] * mask if masks else torch.zeros_like(mask, dtype=torch.int8)
        weights = self.token_weights(line, tok, mask)

        normalizer, multiplier = self.token_normalizer(mask, num_items_in_batch)
        loss, stats = fused_token_loss(
            scored.hidden, self.policy_head, scored.targets, normalizer=normalizer, token_weights=weights[mask]
        )
        self._log(mask, line[mask], tok[mask], weights[mask], stats)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    def _log(self, mask, line, tok, weights, stats) -> None:
        total = self.global_sum
        nll = -stats.log_probs
        sensitive = ((line + tok) > 0).float()
        count, n_sensitive = total(mask), total(sensitive)
        n_other = count - n_sensitive
        count = count.clamp(min=1)
        self.log_metric("entropy", (total(stats.entropy) / count).item())
        self.log_metric("mean_token_accuracy", (total(stats.is_top1) / count).item())
        self.log_metric("fait/frac_line_tokens", (total(line) / count).item())
        self.log_metric("fait/frac_token_tokens", (total(tok) / count).item())
        self.log_metric("fait/mean_weight_sensitive", (total(weights * sensitive) / n_sensitive.clamp(min=1)).item())
        if n_sensitive > 0:  # a batch without sensitive tokens says nothing about their NLL
            self.log_metric("fait/nll_sensitive", (total(nll * sensitive) / n_sensitive).item())
        if n_other > 0:
            self.log_metric("fait/nll_other", (total(nll * (1 - sensitive)) / n_other).item())
