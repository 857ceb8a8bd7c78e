"""ChordTrainer: GRPOTrainer plus CHORD's expert-SFT term (arXiv 2508.11408), on the public `compute_loss`.

Per training micro-batch: L = (1 - mu_t) L_GRPO + mu_t L_SFT.

- L_GRPO is GRPOTrainer's own loss on the rollouts (already divided by the accumulation steps), unchanged; the
  dual-clip option is `GRPOConfig.delta` (`ChordConfig.chord_dual_clip` sets it).
- L_SFT is computed on this process's slice of the next expert batch (`trl_ext.training.expert.ExpertStream`, its own
  generator: drawing it never moves the global RNG, so the rollouts are plain GRPO's). The forward passes `labels` to
  the policy's fused LM head, which GRPOTrainer installs at its sampling temperature: per-token log-probs without the
  (B, T, V) logits. Its normaliser is its own: the expert tokens (or sequences) of the micro-batch over all processes,
  and it is divided by `current_gradient_accumulation_steps` like GRPO's loss.
- mu_t is `mu_schedule(state.global_step, ...)`: it resumes with the step. At mu = 0 the expert forward is skipped
  and the loss is GRPO's, bit for bit; at mu = 1 the GRPO term runs without gradient (its metrics still logged).

Metrics: chord/mu, chord/sft_loss, chord/rl_loss, chord/expert_mean_p, chord/phi_mean, chord/expert_tokens.
"""

from __future__ import annotations

import logging

import torch
from trl import GRPOTrainer

from trl_ext.compat.trainer import record_metric
from trl_ext.training.expert import ExpertDatasetError, ExpertStateCallback, ExpertStream

from .config import ChordConfig
from .losses import expert_token_loss, mu_schedule
from .paper import PAPER

logger = logging.getLogger(__name__)


class ChordTrainer(GRPOTrainer):
    """CHORD (arXiv 2508.11408) on TRL's GRPOTrainer: an expert-SFT term mixed into the GRPO loss with weight mu_t."""

    _tag_names = ["trl", "grpo", "chord", "trl-ext"]
    _name = "CHORD"
    _paper = {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def __init__(self, model, reward_funcs=None, args: ChordConfig | None = None, *posargs, expert_dataset=None, **kw):
        if args is None:
            args = ChordConfig(output_dir="chord-output")
        if not isinstance(args, ChordConfig):
            raise TypeError(f"ChordTrainer needs args of type ChordConfig, got {type(args).__name__}.")
        if expert_dataset is None:
            raise ExpertDatasetError(
                "ChordTrainer needs expert_dataset= (demonstrations with prompt + completion, or messages); "
                "`trl-ext train chord` loads it from --expert_dataset_name."
            )
        super().__init__(model, reward_funcs, args, *posargs, **kw)
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        self.expert_stream = ExpertStream(
            expert_dataset,
            tokenizer,
            batch_size=args.expert_batch_size,
            seed=args.expert_seed,
            max_length=args.expert_max_length,
            process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
        )
        if not hasattr(self, "current_gradient_accumulation_steps"):  # set by the training loop
            self.current_gradient_accumulation_steps = args.gradient_accumulation_steps
        self.add_callback(ExpertStateCallback(self.expert_stream, self))

    # --- schedule -----------------------------------------------------------------------------------------------------
    def current_mu(self) -> float:
        args: ChordConfig = self.args
        return mu_schedule(
            self.state.global_step, args.mu_warmup_steps, args.mu_decay_steps, args.mu_peak, args.mu_valley
        )

    # --- loss ---------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.model.training:  # evaluation: GRPO's loss; the expert stream belongs to training
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mu = self.current_mu()
        accumulation = self.current_gradient_accumulation_steps
        if mu >= 1.0:  # no gradient through the GRPO term; its rollouts and metrics as usual
            with torch.no_grad():
                rl_loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        else:
            rl_loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        expert = self.expert_stream.next_batch()  # drawn every micro-batch, so the stream's position is the step's
        record_metric(self, "train", "chord/mu", mu)
        record_metric(self, "train", "chord/rl_loss", rl_loss.item() * accumulation)
        if mu == 0.0:
            return rl_loss
        sft_loss = self.expert_sft_loss(model, expert) / accumulation
        return (1.0 - mu) * rl_loss + mu * sft_loss

    def expert_sft_loss(self, model, expert: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_SFT of this micro-batch: the sum over this process's expert tokens (or per-sequence means) divided by
        their count over all processes, times the number of processes (DDP and DeepSpeed average gradients)."""
        args: ChordConfig = self.args
        device = self.accelerator.device
        expert = {k: v.to(device) for k, v in expert.items()}
        with self.accelerator.autocast():
            outputs = model(
                input_ids=expert["input_ids"],
                attention_mask=expert["attention_mask"],
                labels=expert["labels"],
                fused_lm_head=True,
            )
        log_probs = outputs.log_probs  # [B, T-1], aligned with labels[:, 1:]
        mask = (expert["labels"][:, 1:] != -100).to(log_probs.dtype)
        per_token = expert_token_loss(log_probs, args.sft_loss_variant, args.cutoff_prob) * mask
        if args.sft_token_level:
            local, count = per_token.sum(), mask.sum()
        else:
            local = (per_token.sum(1) / mask.sum(1).clamp(min=1)).sum()
            count = torch.tensor(float(mask.shape[0]), device=mask.device)
        world = self.accelerator.num_processes
        p = log_probs.detach().exp() * mask
        totals = torch.stack([local.detach(), count, p.sum(), (p * (1 - p)).sum(), mask.sum()]).float()
        totals = self.accelerator.reduce(totals, reduction="sum") if world > 1 else totals
        loss = local / totals[1].clamp(min=1) * world
        tokens = totals[4].clamp(min=1)
        record_metric(self, "train", "chord/sft_loss", (totals[0] / totals[1].clamp(min=1)).item())
        record_metric(self, "train", "chord/expert_mean_p", (totals[2] / tokens).item())
        record_metric(self, "train", "chord/phi_mean", (totals[3] / tokens).item())
        record_metric(self, "train", "chord/expert_tokens", totals[4].item())
        return loss

    # --- resume -------------------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        folder = resume_from_checkpoint
        if folder is True:
            from transformers.trainer_utils import get_last_checkpoint

            folder = get_last_checkpoint(self.args.output_dir)
        if isinstance(folder, str) and self.expert_stream.restore(folder):
            logger.info("CHORD: expert stream restored from %s (%s).", folder, self.expert_stream.sampler.state_dict())
        return super().train(resume_from_checkpoint, *args, **kwargs)
