"""PKTTrainer: SFTTrainer with TL-Training's prioritized-key-token loss (arXiv 2412.15495, official
`code/pkt/utils.py`)."""

from __future__ import annotations

import torch

from trl_ext.losses.token_loss import fused_token_loss, shifted_positions
from trl_ext.training.normalization import SequenceCountMixin
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, PKTConfig
from .pkt import PARA_MASK, PRE_MASK, PKTSpans, pkt_weights

MASK_KEYS = (PRE_MASK, PARA_MASK)


class PKTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """TL-Training's PKT: cross-entropy over the target (the last assistant turn) with the key tool-name tokens
    weighted up to `pkt_max_weight` times, normalised by the weighted token count. Rows need `prompt`, `completion`
    and, for the divergence tokens, the available tools (`pkt_tools_column`)."""

    loss_only_keys = MASK_KEYS
    config_class = PKTConfig
    _name = "PKT"
    _tag_names = ["trl", "sft", "tl-training", "pkt", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: PKTConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self._spans = PKTSpans(args.pkt_call_regex, tuple(args.pkt_terminators), args.pkt_tools_column)
        self.attach_masks(self._spans)

    # --- normalisation -----------------------------------------------------------------------------------------------
    def _weights(self, batch, mask):
        masks = self.shifted_masks(batch, mask)
        if masks is None:  # SFTTrainer's batches (`trl-ext bench`): no key tokens, i.e. the plain token mean
            zeros = torch.zeros_like(mask, dtype=torch.float32)
            return pkt_weights(zeros, zeros, mask, self.args.pkt_max_weight)
        return pkt_weights(masks[PRE_MASK], masks[PARA_MASK], mask, self.args.pkt_max_weight)

    def window_totals(self, batch) -> dict[str, torch.Tensor]:
        """Per micro-batch, the weighted token count Σ d, summed over the optimizer step and the processes: the global
        denominator (next to the sequence count `SequenceCountMixin` adds for `per_sample`)."""
        mask, _ = shifted_positions(batch["labels"])
        _, d, _ = self._weights(batch, mask)
        return {**super().window_totals(batch), "den": d.sum()}

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: PKTConfig = self.args
        scored = self.scored_batch(model, inputs)
        mask = scored.mask
        c, d, w_pre = self._weights(inputs, mask)

        if args.pkt_normalization == "global":
            # Σ_b num_b / Σ_b den_b: the step's global denominator while training (as `num_items_in_batch` for SFT)
            totals = (
                self.take_window_totals() if (self.metric_mode == "train" and num_items_in_batch is not None) else None
            )
            token_weights = c[mask]
            normalizer = totals["den"] if totals is not None else d.sum()
            multiplier = self.accelerator.num_processes if totals is not None and self.window_is_global() else 1
        else:  # per_sample: mean_b (num_b / den_b) over the step's sequences
            token_weights = (c / d.sum(dim=1, keepdim=True).clamp(min=1e-12))[mask]
            normalizer, multiplier = self.sequence_normalizer(mask, num_items_in_batch)
        loss, stats = fused_token_loss(
            scored.hidden, self.policy_head, scored.targets, normalizer=normalizer.float(), token_weights=token_weights
        )
        self._log(mask, inputs, w_pre, stats)
        # DDP averages gradients across ranks; a global normaliser already divides by every rank's total
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    def _log(self, mask, inputs, w_pre, stats) -> None:
        total = self.global_sum
        count = total(mask).clamp(min=1)
        self.log_metric("entropy", (total(stats.entropy) / count).item())
        self.log_metric("mean_token_accuracy", (total(stats.is_top1) / count).item())
        if PRE_MASK not in inputs:
            return
        nll = -stats.log_probs
        pre = inputs[PRE_MASK][:, 1:].to(mask.device)[mask].float()
        para = inputs[PARA_MASK][:, 1:].to(mask.device)[mask].float()
        has_pre = (inputs[PRE_MASK][:, 1:].to(mask.device) * mask).sum(dim=1) > 0
        n_pre, n_para, n_seq = total(pre), total(para), total(has_pre)
        self.log_metric("pkt/frac_pre", (n_pre / count).item())
        if n_seq > 0:
            self.log_metric("pkt/w_pre", (total(w_pre[has_pre]) / n_seq).item())
        if n_pre > 0:
            self.log_metric("pkt/ce_pre", (total(nll * pre) / n_pre).item())
        if n_para > 0:
            self.log_metric("pkt/ce_para", (total(nll * para) / n_para).item())
