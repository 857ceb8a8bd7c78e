"""IFTTrainer: SFTTrainer (on trl_ext's fused-head base) whose inputs carry the model's own greedy guesses and
whose token losses are re-weighted by relation propagation."""

from __future__ import annotations

import torch

from trl_ext.losses.distribution import greedy_tokens
from trl_ext.losses.token_loss import fused_token_loss, shifted_positions
from trl_ext.training.normalization import SequenceCountMixin
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, IFTConfig
from .loss import mix_embeddings, propagation_weights, temporal_residual_ids


class IFTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """Intuitive Fine-Tuning (arXiv 2405.11870), as in the official code: a no-grad forward gives the policy's greedy
    guess y_hat for every response token; the trained forward sees (1 - λ) E[gold] + λ E[guess] at response positions
    and its token NLLs are weighted by γ-discounted sums of the answer's token losses; the loss is a per-sequence
    mean, averaged over the sequences of the global batch."""

    config_class = IFTConfig
    _name = "IFT"
    _tag_names = ["trl", "sft", "ift", "trl-ext"]
    paper = PAPER

    def current_lambda(self) -> float:
        """λ at the current optimizer step: static, or linear from ift_min_lambda to ift_lambda over the warmup steps
        (official `update_lambda` with `linear_warmup`), clamped to [0, 1]. A function of global_step only, so a
        resumed run continues the schedule."""
        args: IFTConfig = self.args
        lam = args.ift_lambda
        if args.ift_lambda_schedule == "linear":
            warmup = args.get_warmup_steps(self.state.max_steps) if self.state.max_steps else 0
            progress = 1.0 if warmup <= 0 else min(1.0, self.state.global_step / warmup)
            lam = args.ift_min_lambda + (args.ift_lambda - args.ift_min_lambda) * progress
        return min(max(lam, 0.0), 1.0)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        # Official: a copy of embed_tokens, re-synced to the policy's table after every optimizer step, so the inputs
        # equal the current table's rows but send it no gradient. The module is called (not its weight indexed) so
        # embedding scales and PEFT wrappers apply.
        frozen = self.args.ift_frozen_embedding_copy
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return self._policy.get_input_embeddings()(ids)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: IFTConfig = self.args
        if "shift_labels" in inputs:
            raise NotImplementedError("IFTTrainer does not support context/sequence parallelism (shift_labels).")
        if "input_ids" not in inputs:
            raise ValueError("IFTTrainer needs token ids (input_ids) to build the mixed input embeddings.")
        labels, input_ids = inputs["labels"], inputs["input_ids"]
        gold = {k: v for k, v in inputs.items() if k != "input_ids"}  # the model inputs and labels, without the ids
        mask, targets = shifted_positions(labels)

        # Step 1 (no grad): the policy's greedy guess for each response token, chunk-wise through the head
        embeds = self._embed(input_ids)
        lam = self.current_lambda()
        greedy = sft_logps = None
        if lam > 0:
            with torch.no_grad():
                scored = self.scored_batch(self.accelerator.unwrap_model(model), {**gold, "inputs_embeds": embeds})
                greedy, sft_logps = greedy_tokens(
                    scored.hidden, self.policy_head, targets, chunk_size=args.ift_argmax_chunk_rows
                )
                del scored
            # Steps 2-3: x~ and e~ = (1 - λ) E[x] + λ E[x~] at the replaced response positions
            intuition_ids = temporal_residual_ids(input_ids, labels, mask, greedy)
            mixed = mix_embeddings(embeds, self._embed(intuition_ids), intuition_ids != input_ids, lam)
        else:
            mixed = embeds  # λ = 0: the mixed input is the gold input, no guess needed
        if torch.is_grad_enabled() and not mixed.requires_grad and self._reentrant_checkpointing():
            mixed = mixed.detach().requires_grad_(True)  # reentrant checkpointing needs an input that requires grad

        # Step 4: the backbone on the mixed input; per-token log-probs from its hidden states in row chunks through
        # the head (trl_ext.losses), so no (B, T, V) logits exist
        scored = self.scored_batch(model, {**gold, "inputs_embeds": mixed})
        head = self.policy_head
        with torch.no_grad():
            _, stats = fused_token_loss(scored.hidden, head, scored.targets, normalizer=1)
        logps = torch.zeros(mask.shape, device=mask.device, dtype=stats.log_probs.dtype)
        logps[mask] = stats.log_probs
        logps.requires_grad_(torch.is_grad_enabled())  # [B, T-1], zero off the response
        # Step 5: relation propagation, w_t = sum_{k>=t} γ^(k-t) c_k normalised to mean 1 per answer
        weights = propagation_weights(
            logps.detach() if args.ift_detach_weights else logps,
            mask,
            args.ift_gamma,
            args.ift_propagation_type,
            args.ift_propagation_norm,
            args.ift_propagation_side,
        )
        # Step 6: mean_b [ sum_t -lp_t w_t / n_b ], over the sequences of the global batch
        lengths = mask.sum(1).clamp(min=1)
        per_sequence = (-logps * weights * mask).sum(1) / lengths
        normalizer, multiplier = self.sequence_normalizer(mask, num_items_in_batch)
        loss = per_sequence.sum() / normalizer * multiplier
        if logps.requires_grad:
            # The loss depends on the parameters only through the log-probs, but non-locally (w_t reads the whole
            # answer), so its gradient is d loss / d lp_t (autograd on the [B, T-1] log-probs) times d lp_t: a second
            # chunked pass with -d loss / d lp_t as the stop-gradient token weight of -lp_t has exactly that gradient.
            (d_logps,) = torch.autograd.grad(loss, logps)
            surrogate, _ = fused_token_loss(
                scored.hidden, head, scored.targets, normalizer=1, token_weights=-d_logps[mask]
            )
            loss = surrogate - surrogate.detach() + loss.detach()

        self._log_metrics(mask, targets, lam, logps, weights, stats, greedy, sft_logps)
        return self.loss_output(model, scored, loss, return_outputs)

    def _reentrant_checkpointing(self) -> bool:
        kwargs = self.args.gradient_checkpointing_kwargs or {}
        return bool(self.args.gradient_checkpointing and kwargs.get("use_reentrant", False))

    def _log_metrics(self, mask, targets, lam, logps, weights, stats, greedy, sft_logps) -> None:
        gather = self.accelerator.gather_for_metrics
        has_tokens = mask.any(1)
        sequences = gather(has_tokens.sum().reshape(1)).sum().clamp(min=1)
        lengths = mask.sum(1).clamp(min=1)

        def sequence_mean(per_token: torch.Tensor) -> float:  # per_token: [B, T-1] zero off the response
            per_sequence = per_token.detach().float().sum(1) / lengths
            return (gather(per_sequence[has_tokens].sum().reshape(1)).sum() / sequences).item()

        further = -logps.detach() * mask
        if sft_logps is None:  # λ = 0: the mixed input is the gold input
            sft, match = further, stats.is_top1
        else:
            sft = torch.zeros_like(further)
            sft[mask] = -sft_logps
            match = greedy == targets
        self.log_token_means(
            mask,
            **{
                "entropy": stats.entropy,
                "mean_token_accuracy": stats.is_top1,
                "ift/intuition_match": match,
            },
        )
        self.log_metric("ift/loss_sft", sequence_mean(sft))
        self.log_metric("ift/loss_further", sequence_mean(further))
        self.log_metric("ift/lambda", lam)
        self.log_metric("ift/weight_max", gather(weights.detach().float().max().reshape(1)).max().item())
