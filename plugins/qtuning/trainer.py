"""QTuningTrainer: SFTTrainer whose loss keeps only Q2/Q4 samples and prunes tokens of Q2 samples (arXiv 2509.23873).

Per micro-batch, inside `compute_loss` (card steps 1-6, `selection.select`):
- one training forward of the backbone; the fused LM head (`trl_ext.losses.fused_token_loss`) run without gradient
  over the label positions gives each token's log-prob and entropy (in `qt_entropy_positions="all"` also the
  prompt positions' entropy, from the same hidden states: no second backbone forward), never (B, T, V) logits;
- the selection on those detached statistics (quadrants by bisection, top-up, smoothed token scores, token budget);
- the fused head again, with gradient, over the kept tokens only: loss = sum of their NLL / D, where D is the
  official denominator (attended positions of the kept samples minus the pruned tokens) or the kept label tokens;
- that per-micro-batch mean is divided by `current_gradient_accumulation_steps` in training, and the Trainer is told
  the loss is already scaled (`loss_is_scaled_for_ga`), so it neither divides again nor uses `num_items_in_batch`
  (which counts the tokens before pruning).
Selection is per micro-batch and per process (as the official code): under DDP, DeepSpeed ZeRO-1/2/3 and FSDP2 each
process selects within its own micro-batch, and DDP's gradient mean over processes gives exactly the 1-process run
with gradient accumulation over the same micro-batches (tests/test_distributed_qtuning.py).
"""

from __future__ import annotations

import torch

from trl_ext.losses.token_loss import fused_token_loss, head_share
from trl_ext.training.sft import FusedSFTTrainer, ScoredBatch

from .config import QTuningConfig
from .paper import PAPER
from .selection import Selection, select


class QTuningTrainer(FusedSFTTrainer):
    """Q-Tuning (arXiv 2509.23873) on TRL's SFTTrainer: Error-Uncertainty sample pruning + Q2 token pruning."""

    config_class = QTuningConfig
    _name = "Q-Tuning"
    _tag_names = ["trl", "sft", "qtuning", "trl-ext"]
    paper = PAPER
    # compute_loss returns the micro-batch's kept-token mean already divided by the accumulation steps
    loss_is_scaled_for_ga = True

    def __init__(self, model, args: QTuningConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        # Set by the training loop; a direct call (tests, `trl-ext bench`) divides by the configured value
        if not hasattr(self, "current_gradient_accumulation_steps"):
            self.current_gradient_accumulation_steps = self.args.gradient_accumulation_steps
        self.last_selection: Selection | None = None

    # --- statistics and selection ------------------------------------------------------------------------------------
    def token_statistics(self, scored: ScoredBatch, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detached dense [B, T-1] (NLL, entropy, top-1 hit) from one no-grad fused head pass: over the label
        positions, or in `qt_entropy_positions="all"` over every attended position (targets: the labels, else the
        next input id; the NLL is kept at label positions only)."""
        mask = scored.mask
        attention = self.shifted_attention(inputs, mask)
        head = self.detached_head()
        nll = torch.zeros(mask.shape, device=mask.device)
        entropy = torch.zeros(mask.shape, device=mask.device)
        top1 = torch.zeros(mask.shape, device=mask.device, dtype=torch.bool)
        with torch.no_grad():
            if self.args.qt_entropy_positions == "all":
                labels = inputs["labels"][:, 1:]
                targets = torch.where(labels != -100, labels, inputs["input_ids"][:, 1:])
                hidden = scored.full_hidden[:, :-1][attention].detach()
                _, stats = fused_token_loss(hidden, head, targets[attention], normalizer=1)
                entropy[attention] = stats.entropy
                log_probs = torch.zeros(mask.shape, device=mask.device)
                log_probs[attention] = stats.log_probs
                nll = torch.where(mask, -log_probs, nll)
                top1[attention] = stats.is_top1
                top1 &= mask
            else:
                _, stats = fused_token_loss(scored.hidden.detach(), head, scored.targets, normalizer=1)
                nll[mask] = -stats.log_probs
                entropy[mask] = stats.entropy
                top1[mask] = stats.is_top1
        return nll, entropy, top1

    @staticmethod
    def shifted_attention(inputs: dict, mask: torch.Tensor) -> torch.Tensor:
        """[B, T-1] bool: attention_mask[:, 1:] (all ones without one), or-ed with the label positions."""
        attention = inputs.get("attention_mask")
        if attention is None:
            return torch.ones_like(mask)
        return attention[:, 1:].to(mask.device).bool() | mask

    def select_batch(self, scored: ScoredBatch, inputs: dict) -> tuple[Selection, torch.Tensor, torch.Tensor]:
        """(selection, dense NLL, top-1 hits) of a micro-batch seen through the backbone."""
        args: QTuningConfig = self.args
        nll, entropy, top1 = self.token_statistics(scored, inputs)
        selection = select(
            nll,
            entropy,
            scored.mask,
            self.shifted_attention(inputs, scored.mask),
            sample_ratio=args.qt_sample_ratio,
            token_ratio=args.qt_token_ratio,
            lam=args.qt_lambda,
            mode=args.qt_budget_mode,
            drop=args.qt_drop,
            entropy_positions=args.qt_entropy_positions,
            denominator=args.qt_denominator,
            iters=args.qt_bisect_iters,
            tol=args.qt_tol,
        )
        return selection, nll, top1

    @torch.no_grad()
    def inspect(self, inputs: dict) -> Selection:
        """The selection the loss would make on a collated micro-batch (no gradient, no metrics): for analysis."""
        scored = self.scored_batch(self._policy, inputs)
        return self.select_batch(scored, inputs)[0]

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scored = self.scored_batch(model, inputs)
        selection, nll, top1 = self.select_batch(scored, inputs)
        self.last_selection = selection
        kept = selection.keep_tokens[scored.mask]  # [N] over the scored (label) positions
        loss, _ = fused_token_loss(
            scored.hidden[kept], self.policy_head, scored.targets[kept], normalizer=selection.denominator
        )
        if self.model.training:
            # The kept-token mean of this micro-batch; the Trainer treats it as scaled (loss_is_scaled_for_ga)
            loss = loss / self.current_gradient_accumulation_steps
        self._log_selection(selection, scored.mask, nll, top1)
        return self.loss_output(model, scored, loss, return_outputs)

    def _log_selection(self, s: Selection, mask: torch.Tensor, nll: torch.Tensor, top1: torch.Tensor) -> None:
        """The card's metrics, summed over this micro-batch and every process (one gather), then as fractions/means."""
        n = float(len(s.ppl))
        label_tokens = mask.float().sum()
        parts = (
            s.q2.sum(),
            s.q4.sum(),
            s.topup.sum(),
            torch.tensor(n),
            torch.tensor(float(s.kept_label_tokens)),
            label_tokens,
            s.ppl.sum(),
            s.ent.sum(),
            torch.tensor(s.alpha),
            torch.tensor(1.0),
            (nll * mask).sum(),
            (top1 & mask).sum(),
        )
        values = torch.stack([t.detach().float().cpu().reshape(()) for t in parts]).to(self.accelerator.device)
        q2, q4, topup, samples, kept, labels, ppl, ent, alpha, procs, nll_sum, hits = (
            self.accelerator.gather(values.reshape(1, -1)).reshape(-1, values.numel()).sum(0).tolist()
        )
        self.log_metric("qt/q2_frac", q2 / samples)
        self.log_metric("qt/q4_frac", q4 / samples)
        self.log_metric("qt/topup_count", topup / procs)
        self.log_metric("qt/kept_sample_frac", (q2 + q4) / samples)
        self.log_metric("qt/kept_token_frac", kept / max(labels, 1.0))
        self.log_metric("qt/ppl_mean", ppl / samples)
        self.log_metric("qt/ent_mean", ent / samples)
        self.log_metric("qt/alpha", alpha / procs)
        self.log_metric("qt/nll", nll_sum / max(labels, 1.0))  # plain SFT's token-mean NLL, before pruning
        self.log_metric("mean_token_accuracy", hits / max(labels, 1.0))


def extra_head_forwards(config: QTuningConfig, model: torch.nn.Module) -> float:
    """Q-Tuning's cost over SFT in units of one no-grad forward: one no-grad LM-head projection for the statistics
    (the label positions; every attended position with qt_entropy_positions="all"): at most `head_share(model)`.
    The loss's own head pass (forward and backward) covers only the kept tokens, a fraction of SFT's; the backbone's
    forward and backward are SFT's (one forward per step, as the official code)."""
    return head_share(model)
