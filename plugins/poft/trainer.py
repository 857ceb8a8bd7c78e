"""PoFTTrainer: SFTTrainer with the Bradley-Terry preference of the target model over aligned LLMs (arXiv 2412.12865).

    r_theta(x, y) = (1/T_0) sum_t log p_theta(y_t | x, y_<t)       target reward (under Eq. 6), label tokens
    r_bar(x, y)   = (1/M) sum_j r_j(x, y)                           aligned models, precomputed (Eq. 5)
    loss          = mean over sequences of -log sigmoid(beta * (r_theta - r_bar))                           (Eq. 6)
    gradient      = -tau * grad r_theta,  tau = sigmoid(beta * (r_bar - r_theta))  (Eq. 7-8, times beta)

The loss runs on trl_ext's fused chunked head (no (batch, seq, vocab) logits) in two passes over the scored tokens: a
no-grad pass for log p_t, hence r_theta and tau per sequence; then a token loss with the stop-gradient weights
beta * tau_b / T_b, whose gradient is PoFT's (Eq. 7-8), with PoFT's value put back on it. The mean over sequences
counts every sequence of the optimizer step, over the accumulation window and the processes (`trl_ext.training.normalization`),
so the gradient does not depend on the layout.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from trl_ext.losses.token_loss import TokenStats, fused_token_loss, head_share
from trl_ext.training.normalization import SequenceCountMixin
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, PoFTConfig


class ScoreCollator:
    """Wraps SFTTrainer's collator: takes the aligned-score column out of each row and adds it to the batch as a
    float32 tensor, [B] for one score per row or [B, M] for a list of M scores."""

    def __init__(self, collator, column: str):
        self.collator = collator
        self.column = column

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if any(self.column not in ex for ex in examples):
            raise KeyError(
                f"PoFT needs the aligned-model score column {self.column!r} in every row; got columns "
                f"{sorted(examples[0])}. Score the dataset first, e.g. `--transforms poft_score:models=NAME`."
            )
        scores = [ex[self.column] for ex in examples]
        lengths = {len(s) if isinstance(s, (list, tuple)) else None for s in scores}
        if len(lengths) > 1:
            raise ValueError(
                f"Rows carry different numbers of aligned scores in {self.column!r}: {sorted(map(str, lengths))}."
            )
        tensor = torch.tensor(scores, dtype=torch.float32)
        if tensor.dim() == 2 and tensor.shape[1] == 0:
            raise ValueError(f"The aligned score lists in {self.column!r} are empty.")
        if torch.isnan(tensor).any():
            raise ValueError(f"NaN aligned score in {self.column!r}: {scores}.")
        batch = self.collator([{k: v for k, v in ex.items() if k != self.column} for ex in examples])
        batch[self.column] = tensor
        return batch


def reduce_reference(scores: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """r_bar per row from [B] or [B, M] aligned scores (Eq. 5: the mean over the M aligned models)."""
    if scores.dim() == 1:
        return scores
    if how == "mean":
        return scores.mean(-1)
    return scores.amin(-1) if how == "min" else scores.amax(-1)


def poft_sequence_loss(r_theta: torch.Tensor, r_bar: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Per-sequence PoFT loss -log sigmoid(beta * (r_theta - r_bar)) (Eq. 6); r_bar = -inf gives 0 (tau = 0)."""
    return -F.logsigmoid(beta * (r_theta - r_bar.to(r_theta.dtype)))


def extra_forwards(config: PoFTConfig, model: torch.nn.Module) -> float:
    """PoFT's cost over SFT: the aligned scores are precomputed; the policy's head is projected once more, without
    grad, for tau."""
    return head_share(model)


class PoFTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """Preference-Oriented Supervised Fine-Tuning (arXiv 2412.12865).

    The dataset needs the aligned models' scores in `args.poft_score_column` (see the `poft_score` transform);
    only the policy is in memory during training.
    """

    config_class = PoFTConfig
    _name = "PoFT"
    _tag_names = ["trl", "sft", "poft", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: PoFTConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self.data_collator = ScoreCollator(self.data_collator, args.poft_score_column)
        self.loss_only_keys = (args.poft_score_column,)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: PoFTConfig = self.args
        column = args.poft_score_column
        if column not in inputs:
            raise KeyError(f"The batch has no aligned-score column {column!r}; PoFTTrainer's collator adds it.")
        scored = self.scored_batch(model, inputs)
        mask, head = scored.mask, self.policy_head
        with torch.no_grad():  # pass 1: log p_t of the label tokens
            _, stats = fused_token_loss(scored.hidden, head, scored.targets, normalizer=1)
        counts = mask.sum(-1)
        valid = counts > 0
        rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand(mask.shape)[mask]  # row of each token
        sums = torch.zeros(mask.shape[0], device=mask.device).index_add_(0, rows, stats.log_probs)
        r_theta = sums / counts.clamp(min=1)  # the reward under Eq. 6: normalised by this sequence's own T_0
        r_bar = reduce_reference(inputs[column].to(r_theta.device), args.poft_reduce)  # Eq. 5
        per_sequence = torch.where(valid, poft_sequence_loss(r_theta, r_bar, args.poft_beta), 0.0)  # Eq. 6
        divisor, scale = self.sequence_normalizer(mask, num_items_in_batch)
        # pass 2: d loss_b / d log p_t = -beta * tau_b / T_b (Eq. 7-8), as the stop-gradient weight of -log p_t
        tau = torch.sigmoid(args.poft_beta * (r_bar.to(r_theta.dtype) - r_theta))
        weights = (args.poft_beta * tau / counts.clamp(min=1))[rows]
        surrogate, _ = fused_token_loss(scored.hidden, head, scored.targets, normalizer=divisor, token_weights=weights)
        value = per_sequence.sum() / divisor.clamp(min=1)
        loss = (surrogate - surrogate.detach() + value) * scale
        self._log_metrics(mask, stats, r_theta, r_bar, valid)
        return self.loss_output(model, scored, loss, return_outputs)

    def _log_metrics(
        self, mask: torch.Tensor, stats: TokenStats, r_theta: torch.Tensor, r_bar: torch.Tensor, valid
    ) -> None:
        gather = self.accelerator.gather_for_metrics
        beta = self.args.poft_beta
        margin = r_theta - r_bar
        finite = valid & torch.isfinite(r_bar)
        tau = torch.sigmoid(beta * (r_bar - r_theta))
        per_seq = torch.stack(
            [
                torch.where(valid, r_theta, 0.0).sum(),
                torch.where(finite, r_bar, 0.0).sum(),
                torch.where(finite, margin, 0.0).sum(),
                torch.where(valid, tau, 0.0).sum(),
                (valid & (r_theta > r_bar)).float().sum(),
                valid.float().sum(),
                finite.float().sum(),
            ]
        ).float()
        totals = gather(per_seq.reshape(1, -1)).sum(0)
        n_valid, n_finite = totals[5].clamp(min=1), totals[6].clamp(min=1)
        self.log_metric("poft/r_theta", (totals[0] / n_valid).item())
        self.log_metric("poft/r_ref", (totals[1] / n_finite).item() if totals[6] > 0 else -math.inf)
        self.log_metric("poft/margin", (totals[2] / n_finite).item() if totals[6] > 0 else math.inf)
        self.log_metric("poft/coef", (totals[3] / n_valid).item())
        self.log_metric("poft/acc", (totals[4] / n_valid).item())
        self.log_token_means(mask, entropy=stats.entropy, mean_token_accuracy=stats.is_top1)
