"""OTRTrainer: SFTTrainer (on trl_ext's fused-head base) whose token loss is One-Token Rollout's token-level
policy gradient."""

from __future__ import annotations

import hashlib

import torch

from trl_ext.training.normalization import SequenceCountMixin, sequence_normalizer, sequence_token_weights
from trl_ext.training.sft import FusedSFTTrainer

from .config import OTRConfig
from .loss import otr_loss


def rollout_seed(seed: int, global_step: int, process_index: int, micro_step: int, mode: str) -> int:
    """The seed of one micro-batch's rollouts: a function of (seed, optimizer step, process, micro-batch within the
    step, train/eval) only, so a resumed run draws the same samples as an unbroken one without saving RNG state."""
    digest = hashlib.sha256(f"otr:{seed}:{global_step}:{process_index}:{micro_step}:{mode}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class OTRTrainer(SequenceCountMixin, FusedSFTTrainer):
    """One-Token Rollout (arXiv 2509.26313): each response token is a one-step RL episode whose K rollouts are drawn
    from the policy itself (no generation of whole sequences, no reward or reference model)."""

    config_class = OTRConfig
    _name = "OTR"
    _tag_names = ["trl", "sft", "otr", "trl-ext"]
    _paper = {
        "title": "One-Token Rollout: Guiding Supervised Fine-Tuning of LLMs with Policy Gradient",
        "id": "2509.26313",
        "citation": None,  # filled from the plugin's PAPER in __init__.py
    }

    def __init__(self, model, args: OTRConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        self._rollout_counter = {"train": (-1, 0), "eval": (-1, 0)}

    def rollout_generator(self, mode: str, device: torch.device) -> torch.Generator:
        """A generator for this micro-batch, seeded from (seed, global_step, process_index, micro-batch index)."""
        step, micro = self._rollout_counter[mode]
        micro = micro + 1 if step == self.state.global_step else 0
        self._rollout_counter[mode] = (self.state.global_step, micro)
        seed = rollout_seed(self.args.seed, self.state.global_step, self.accelerator.process_index, micro, mode)
        return torch.Generator(device=device).manual_seed(seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        args: OTRConfig = self.args
        scored = self.scored_batch(model, inputs)  # response positions only: prompt and padding are never sampled
        token_weights = None
        if args.otr_normalization == "sequence":
            # mean_b [ sum_t l_t / n_b ] over the sequences of the global batch
            token_weights = sequence_token_weights(scored.mask)
            normalizer, multiplier = sequence_normalizer(self, scored.mask, num_items_in_batch)
        else:
            normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        generator = self.rollout_generator(mode, scored.hidden.device) if args.otr_estimator == "mc" else None
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
        self.log_token_means(mode, scored.mask, **metrics)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)
