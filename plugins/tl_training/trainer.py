"""PKTTrainer: SFTTrainer with TL-Training's prioritized-key-token loss (arXiv 2412.15495, official
`code/pkt/utils.py`)."""

from __future__ import annotations

import logging

import torch

from trl_ext.compat.trainer import record_metric
from trl_ext.losses.token_loss import fused_token_loss, shifted_positions
from trl_ext.training.normalization import SequenceCountMixin, sequence_normalizer
from trl_ext.training.sft import FusedSFTTrainer
from trl_ext.training.token_masks import attach_completion_masks, masks_for_trainer

from .config import PKTConfig
from .pkt import PARA_MASK, PRE_MASK, PKTSpans, pkt_weights

logger = logging.getLogger(__name__)
MASK_KEYS = (PRE_MASK, PARA_MASK)


class PKTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """TL-Training's PKT: cross-entropy over the target (the last assistant turn) with the key tool-name tokens
    weighted up to `pkt_max_weight` times, normalised by the weighted token count. Rows need `prompt`, `completion`
    and, for the divergence tokens, the available tools (`pkt_tools_column`)."""

    loss_only_keys = MASK_KEYS
    config_class = PKTConfig
    _name = "PKT"
    _tag_names = ["trl", "sft", "tl-training", "pkt", "trl-ext"]
    _paper = {
        "title": "TL-Training: A Task-Feature-Based Framework for Training Large Language Models in Tool Use",
        "id": "2412.15495",
        "citation": None,  # filled from the plugin's PAPER in __init__.py
    }

    def __init__(self, model, args: PKTConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self._spans = PKTSpans(args.pkt_call_regex, tuple(args.pkt_terminators), args.pkt_tools_column)
        attach_completion_masks(self, self._spans, MASK_KEYS)
        self._warned_no_masks = False

    # --- data --------------------------------------------------------------------------------------------------------
    def get_eval_dataloader(self, eval_dataset=None):
        # a dataset given to `evaluate()` is prepared by SFTTrainer there, without the masks
        return super().get_eval_dataloader(masks_for_trainer(self, eval_dataset, self._spans, MASK_KEYS))

    # --- normalisation -----------------------------------------------------------------------------------------------
    def _weights(self, batch, mask):
        if any(key not in batch for key in MASK_KEYS):
            # Direct calls with SFTTrainer's batches (`trl-ext bench`): no key tokens, i.e. the plain token mean
            if not self._warned_no_masks:
                logger.warning("PKT batch without %s: every token gets weight 1.", " / ".join(MASK_KEYS))
                self._warned_no_masks = True
            zeros = torch.zeros_like(mask, dtype=torch.float32)
            return pkt_weights(zeros, zeros, mask, self.args.pkt_max_weight)
        # the masks are aligned with input_ids; shift them exactly like the labels
        pre = batch[PRE_MASK][:, 1:].to(mask.device)
        para = batch[PARA_MASK][:, 1:].to(mask.device)
        return pkt_weights(pre, para, mask, self.args.pkt_max_weight)

    def window_totals(self, batch) -> dict[str, torch.Tensor]:
        """Per micro-batch, the weighted token count Σ d, summed over the optimizer step and the processes: the global
        denominator (next to the sequence count `SequenceCountMixin` adds for `per_sample`)."""
        mask, _ = shifted_positions(batch["labels"])
        _, d, _ = self._weights(batch, mask)
        return {**super().window_totals(batch), "den": d.sum()}

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        args: PKTConfig = self.args
        scored = self.scored_batch(model, inputs)
        mask = scored.mask
        c, d, w_pre = self._weights(inputs, mask)

        if args.pkt_normalization == "global":
            # Σ_b num_b / Σ_b den_b: the step's global denominator while training (as `num_items_in_batch` for SFT)
            totals = self.take_window_totals() if (mode == "train" and num_items_in_batch is not None) else None
            token_weights = c[mask]
            normalizer = totals["den"] if totals is not None else d.sum()
            multiplier = self.accelerator.num_processes if totals is not None and self.window_is_global() else 1
        else:  # per_sample: mean_b (num_b / den_b) over the step's sequences
            token_weights = (c / d.sum(dim=1, keepdim=True).clamp(min=1e-12))[mask]
            normalizer, multiplier = sequence_normalizer(self, mask, num_items_in_batch)
        loss, stats = fused_token_loss(
            scored.hidden, self.policy_head, scored.targets, normalizer=normalizer.float(), token_weights=token_weights
        )
        self._log(mode, mask, inputs, w_pre, stats)
        # DDP averages gradients across ranks; a global normaliser already divides by every rank's total
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    def _log(self, mode, mask, inputs, w_pre, stats) -> None:
        gather = self.accelerator.gather_for_metrics

        def total(values: torch.Tensor) -> torch.Tensor:
            return gather(values.detach().float().sum().reshape(1)).sum()

        count = total(mask).clamp(min=1)
        record_metric(self, mode, "entropy", (total(stats.entropy) / count).item())
        record_metric(self, mode, "mean_token_accuracy", (total(stats.is_top1) / count).item())
        if PRE_MASK not in inputs:
            return
        nll = -stats.log_probs
        pre = inputs[PRE_MASK][:, 1:].to(mask.device)[mask].float()
        para = inputs[PARA_MASK][:, 1:].to(mask.device)[mask].float()
        has_pre = (inputs[PRE_MASK][:, 1:].to(mask.device) * mask).sum(dim=1) > 0
        n_pre, n_para, n_seq = total(pre), total(para), total(has_pre)
        record_metric(self, mode, "pkt/frac_pre", (n_pre / count).item())
        if n_seq > 0:
            record_metric(self, mode, "pkt/w_pre", (total(w_pre[has_pre]) / n_seq).item())
        if n_pre > 0:
            record_metric(self, mode, "pkt/ce_pre", (total(nll * pre) / n_pre).item())
        if n_para > 0:
            record_metric(self, mode, "pkt/ce_para", (total(nll * para) / n_para).item())
