"""OTRTrainer: SFTTrainer (on trl_ext's fused-head base) whose token loss is One-Token Rollout's token-level
policy gradient."""

from __future__ import annotations

from trl_ext.training.normalization import SequenceCountMixin, sequence_token_weights
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, OTRConfig
from .loss import otr_loss


class OTRTrainer(SequenceCountMixin, FusedSFTTrainer):
    """One-Token Rollout (arXiv 2509.26313): each response token is a one-step RL episode whose K rollouts are drawn
    from the policy itself (no generation of whole sequences, no reward or reference model)."""

    config_class = OTRConfig
    _name = "OTR"
    _tag_names = ["trl", "sft", "otr", "trl-ext"]
    paper = PAPER

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: OTRConfig = self.args
        scored = self.scored_batch(model, inputs)  # response positions only: prompt and padding are never sampled
        token_weights = None
        if args.otr_normalization == "sequence":
            # mean_b [ sum_t l_t / n_b ] over the sequences of the global batch
            token_weights = sequence_token_weights(scored.mask)
            normalizer, multiplier = self.sequence_normalizer(scored.mask, num_items_in_batch)
        else:
            normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        # seeded by (seed, step, process, micro-batch, mode): a resumed run draws the same rollouts
        generator = self.micro_step_generator("otr", scored.hidden.device) if args.otr_estimator == "mc" else None
        loss, stats = otr_loss(
            scored.hidden,
            self.policy_head,
            scored.targets,
            normalizer=normalizer,
            num_samples=args.otr_num_samples,
            temperature=args.otr_temperature,
            beta=args.otr_beta,
            estimator=args.otr_estimator,
            dedupe=args.otr_dedupe,
            token_weights=token_weights,
            generator=generator,
            chunk_size=args.otr_sample_chunk_rows,
        )
        metrics = {
            "entropy": stats.entropy,
            "mean_token_accuracy": stats.is_top1,
            "otr/hit_rate": stats.hit_rate,
            "otr/mean_reward": stats.mean_reward,
            "otr/gt_logp": stats.gt_logp,
        }
        if stats.unique is not None:
            metrics["otr/unique_per_token"] = stats.unique
        self.log_token_means(scored.mask, **metrics)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)
