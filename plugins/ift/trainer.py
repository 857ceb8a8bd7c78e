"""IFTTrainer: SFTTrainer (on trl_ext's fused-head base) whose inputs carry the model's own greedy guesses and
whose token losses are re-weighted by relation propagation."""

from __future__ import annotations

import torch

from trl_ext.compat.trainer import record_metric
from trl_ext.losses.distribution import greedy_tokens
from trl_ext.losses.token_loss import shifted_positions
from trl_ext.training.normalization import SequenceCountMixin, sequence_normalizer
from trl_ext.training.sft import FusedSFTTrainer

from .config import IFTConfig
from .loss import mix_embeddings, propagation_weights, temporal_residual_ids


class IFTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """Intuitive Fine-Tuning (arXiv 2405.11870), as in the official code: a no-grad forward gives the policy's greedy
    guess y_hat for every response token; the trained forward sees (1 - λ) E[gold] + λ E[guess] at response positions
    and its token NLLs are weighted by γ-discounted sums of the answer's token losses; the loss is a per-sequence
    mean, averaged over the sequences of the global batch."""

    config_class = IFTConfig
    _name = "IFT"
    _tag_names = ["trl", "sft", "ift", "trl-ext"]
    _paper = {
        "title": "Intuitive Fine-Tuning: Towards Simplifying Alignment into a Single Process",
        "id": "2405.11870",
        "citation": None,  # filled from the plugin's PAPER in __init__.py
    }

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
        mode = "train" if self.model.training else "eval"
        args: IFTConfig = self.args
        if "shift_labels" in inputs:
            raise NotImplementedError("IFTTrainer does not support context/sequence parallelism (shift_labels).")
        if "input_ids" not in inputs:
            raise ValueError("IFTTrainer needs token ids (input_ids) to build the mixed input embeddings.")
        labels, input_ids = inputs["labels"], inputs["input_ids"]
        forward_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "input_ids")}
        forward_inputs["use_cache"] = False
        mask, targets = shifted_positions(labels)

        # Step 1 (no grad): the policy's greedy guess for each response token, chunk-wise through the head
        embeds = self._embed(input_ids)
        lam = self.current_lambda()
        greedy = sft_logps = None
        if lam > 0:
            with torch.no_grad():
                gold = {k: v for k, v in inputs.items() if k != "input_ids"}
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

        # Step 4: per-token log-probs on the mixed input, through TRL's fused LM head (no full logits)
        outputs = model(inputs_embeds=mixed, labels=labels, fused_lm_head=True, **forward_inputs)
        logps = outputs.log_probs  # [B, T-1], zero off the response
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
        normalizer, multiplier = sequence_normalizer(self, mask, num_items_in_batch)
        loss = per_sequence.sum() / normalizer * multiplier

        self._log_metrics(mode, mask, targets, lam, logps, weights, outputs, greedy, sft_logps)
        if return_outputs:  # only for compute_metrics; the full logits cost an extra forward, as in SFTTrainer
            with torch.no_grad():
                outputs = model(inputs_embeds=mixed, **forward_inputs)
            return loss, outputs
        return loss

    def _reentrant_checkpointing(self) -> bool:
        kwargs = self.args.gradient_checkpointing_kwargs or {}
        return bool(self.args.gradient_checkpointing and kwargs.get("use_reentrant", False))

    def _log_metrics(self, mode, mask, targets, lam, logps, weights, outputs, greedy, sft_logps) -> None:
        gather = self.accelerator.gather_for_metrics
        has_tokens = mask.any(1)
        sequences = gather(has_tokens.sum().reshape(1)).sum().clamp(min=1)
        lengths = mask.sum(1).clamp(min=1)

        def sequence_mean(per_token: torch.Tensor) -> float:  # per_token: [B, T-1] zero off the response
            per_sequence = per_token.detach().float().sum(1) / lengths
            return (gather(per_sequence[has_tokens].sum().reshape(1)).sum() / sequences).item()

        further = -logps.detach() * mask
        if sft_logps is None:  # λ = 0: the mixed input is the gold input
            sft, match = further, outputs.is_top1[mask]
        else:
            sft = torch.zeros_like(further)
            sft[mask] = -sft_logps
            match = greedy == targets
        self.log_token_means(
            mode,
            mask,
            **{
                "entropy": outputs.entropy[mask],
                "mean_token_accuracy": outputs.is_top1[mask],
                "ift/intuition_match": match,
            },
        )
        record_metric(self, mode, "ift/loss_sft", sequence_mean(sft))
        record_metric(self, mode, "ift/loss_further", sequence_mean(further))
        record_metric(self, mode, "ift/lambda", lam)
        record_metric(self, mode, "ift/weight_max", gather(weights.detach().float().max().reshape(1)).max().item())
