"""CurioSFTTrainer: SFTTrainer plus self-distillation toward an EMA copy of the policy softened by an
entropy-guided per-token temperature."""

from __future__ import annotations

import torch

from trl_ext.compat.models import backbone
from trl_ext.losses.gold_token import gold_token_loss
from trl_ext.losses.token_loss import LMHead, fused_token_loss
from trl_ext.training.reference import EMATeacher, reference_model, resolve_checkpoint
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, CurioSFTConfig
from .temperature import TemperatureRule, tempered_reference, tempered_teacher_targets


def curio_token_loss(kd_coef: float):
    """The official `custom_loss` (algo_type "curio_sft") per token, with its derivative in lp_t:
    l_t = -lp_t + (kd_coef / 2) (lp_t - q_t)^2,  dl_t / dlp_t = -1 + kd_coef (lp_t - q_t)."""

    def token_loss(lp: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gap = lp - log_q
        return -lp + 0.5 * kd_coef * gap.square(), -1.0 + kd_coef * gap

    return token_loss


class CurioSFTTrainer(FusedSFTTrainer):
    """CurioSFT (arXiv 2602.02244): NLL plus a pull of the gold token's log-prob toward an EMA self-teacher softened
    by an entropy-guided temperature in [1.1, 1.5].

    The teacher is a frozen copy of the initial policy, updated as teacher <- (1 - alpha) teacher + alpha policy every
    `ref_model_sync_steps` steps; it is saved in every checkpoint (`trl_ext_ema_teacher.safetensors`) and restored by
    `train(resume_from_checkpoint=...)`.
    """

    config_class = CurioSFTConfig
    _name = "CurioSFT"
    _tag_names = ["trl", "sft", "curiosft", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: CurioSFTConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self.teacher = None
        self.ema = None
        if args.uses_teacher:
            if args.curio_kd_form == "full_kl" and LMHead.of(self._policy).softcap is not None:
                raise ValueError("curio_kd_form='full_kl' does not support soft-capped LM heads; use 'gt_token_sq'.")
            # Under PEFT the copy holds the adapters too, so the EMA runs over the same parameter list.
            self.teacher, _ = reference_model(self._policy, device=self.accelerator.device)
            self.ema = EMATeacher(self.teacher, self._policy, args.ref_model_sync_steps, args.ref_model_mixup_alpha)
            self.add_callback(self.ema)
        self._rule = TemperatureRule.from_config(args)

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: CurioSFTConfig = self.args
        scored = self.scored_batch(model, inputs)
        h, targets, mask = scored.hidden, scored.targets, scored.mask
        head = self.policy_head
        normalizer, multiplier = self.token_normalizer(mask, num_items_in_batch)

        teacher = kd = None
        if not args.uses_teacher:
            loss, stats = fused_token_loss(h, head, targets, normalizer=normalizer)
        else:
            with torch.no_grad():
                teacher_hidden = backbone(self.teacher)(**scored.forward_inputs).last_hidden_state[:, :-1][mask]
            teacher_head = LMHead.of(self.teacher)
            teacher = tempered_teacher_targets(
                teacher_hidden, teacher_head, targets, self._rule, args.curio_teacher_chunk_rows
            )
            if args.curio_kd_form == "gt_token_sq":
                # l_t = -lp_t + (alpha_kd / 2) (lp_t - q_t)^2 (official custom_loss), token sum / num_items_in_batch
                loss, stats, _ = gold_token_loss(
                    h,
                    head,
                    targets,
                    token_loss=curio_token_loss(args.curio_kd_coef),
                    aux=teacher.log_q,
                    normalizer=normalizer,
                )
                kd = 0.5 * args.curio_kd_coef * (stats.log_probs - teacher.log_q).square()
            else:
                # l_t = -lp_t + alpha_kd KL(softmax(z_t / tau_t) || pi_theta) (the paper's wording)
                ref_hidden, ref_head = tempered_reference(teacher_hidden, teacher_head, teacher.tau)
                loss, stats = fused_token_loss(
                    h,
                    head,
                    targets,
                    normalizer=normalizer,
                    ref_hidden=ref_hidden,
                    ref_head=ref_head,
                    kl_coef=args.curio_kd_coef,
                )
                kd = args.curio_kd_coef * stats.kl
        metrics = {"entropy": stats.entropy, "mean_token_accuracy": stats.is_top1, "curio/sft_nll": -stats.log_probs}
        if teacher is not None:
            metrics.update(
                {
                    "curio/kd": kd,
                    "curio/tau_mean": teacher.tau,
                    "curio/frac_tau_min": teacher.tau == self._rule.tau_min,
                    "curio/teacher_entropy": teacher.entropy,
                }
            )
        self.log_token_means(mask, **metrics)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    # --- resume ------------------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        checkpoint = resolve_checkpoint(resume_from_checkpoint, self.args.output_dir)
        if checkpoint is not None and self.ema is not None:
            self.ema.load(checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)
