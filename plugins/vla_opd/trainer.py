"""VlaOpdTrainer: on-policy distillation from a frozen teacher (VLA-OPD, arXiv 2603.26666) on TRL's
DistillationTrainer.

TRL's trainer already does the loop of the card: the student samples one completion per prompt row (at
`temperature`), the teacher runs on the same prompt + completion ids, and the loss is reduced over the global number
of completion tokens (`num_items_in_batch`, divided by the process count so DDP's gradient mean gives the global
token mean). Only the per-token objective changes here, through the divergence seam of `_compute_loss`
(`trl_ext.compat.distillation.divergence_override`), so generation, hidden states, sharded engines and normalisation
stay TRL's:

- reverse_kl / forward_kl, estimator "full": TRL's chunked kernel with beta 1 / 0 (card eq. L_RKL and its ablation);
- hard_ce: -log p(argmax q) (`trl_ext.losses.divergence.hard_ce_loss`);
- reverse_kl, estimator "sampled": -a_t log p(y_t), a_t = log q(y_t) - log p(y_t) detached
  (`trl_ext.losses.divergence.sampled_reverse_kl_loss`).
No (B, T, V) logits are built: every path projects the heads in row chunks. G completions per prompt are G repeated
rows (`num_generations`). The method has no state that changes in training besides the model and the optimizer (the
teacher is frozen and reloaded from its path), so a checkpoint resumes it as it resumes DistillationTrainer.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from trl import DistillationTrainer

from trl_ext.compat.distillation import divergence_override, trl_divergence_loss
from trl_ext.compat.sharding import gathered_lm_head
from trl_ext.compat.trainer import record_metric
from trl_ext.losses.divergence import divergence_stats, hard_ce_loss, sampled_reverse_kl_loss, tempered
from trl_ext.losses.token_loss import LMHead, head_share
from trl_ext.training.teacher import TeacherError, load_teacher

from .config import VlaOpdConfig
from .paper import PAPER

METRICS = ("reverse_kl", "forward_kl", "student_entropy", "teacher_entropy", "teacher_top1_agreement")


def extra_head_forwards(config: VlaOpdConfig, model) -> float:
    """Intrinsic cost over DistillationTrainer, in forwards (for `trl-ext bench`): the `opd/*` metrics project both
    LM heads once more without gradient; hard CE and the sampled estimator project fewer heads than TRL's kernel."""
    return 2 * head_share(model) if config.log_opd_metrics else 0.0


def repeat_rows(dataset, times: int):
    """Each row of `dataset` `times` times in a row (G samples per prompt for a one-completion-per-row trainer)."""
    if times == 1 or dataset is None:
        return dataset
    if not hasattr(dataset, "select"):
        raise ValueError(f"num_generations={times} repeats dataset rows, which needs a map-style dataset.")
    return dataset.select([i for i in range(len(dataset)) for _ in range(times)])


class VlaOpdTrainer(DistillationTrainer):
    """VLA-OPD (arXiv 2603.26666): token-level reverse KL to a frozen teacher on the student's own samples."""

    config_class = VlaOpdConfig
    _name = "VLA-OPD"
    _tag_names = ["trl", "distillation", "vla_opd", "trl-ext"]
    _paper = {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def __init__(self, model, teacher_model=None, args: VlaOpdConfig | None = None, train_dataset=None, **kwargs):
        if args is None:
            raise ValueError("VlaOpdTrainer needs args=VlaOpdConfig(...).")
        if not isinstance(args, VlaOpdConfig):
            raise TypeError(f"VlaOpdTrainer needs a VlaOpdConfig, got {type(args).__name__}.")
        if teacher_model is None:
            teacher_model = args.teacher_model_name_or_path
            if teacher_model is None:
                raise TeacherError(
                    "VLA-OPD distils from a teacher: pass teacher_model= or set teacher_model_name_or_path (a model "
                    "with the student's vocabulary)."
                )
        if isinstance(teacher_model, str) and isinstance(model, torch.nn.Module):
            teacher_model = load_teacher(
                teacher_model,
                model,
                kwargs.get("processing_class"),
                revision=args.teacher_model_revision,
                init_kwargs=args.teacher_model_init_kwargs,
                trust_remote_code=args.trust_remote_code,
                method="vla_opd",
            )
        super().__init__(model, teacher_model, args, repeat_rows(train_dataset, args.num_generations), **kwargs)
        self._opd_sums: dict[str, torch.Tensor] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._opd_sums = {}
        divergence = partial(self._divergence, inputs["completion_ids"])
        with divergence_override(divergence):
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._opd_sums:
            # Gathered after the redirected forward has returned (a collective inside it could hang), as TRL's entropy
            mode = "train" if self.model.training else "eval"
            sums = self.accelerator.gather_for_metrics(torch.stack(list(self._opd_sums.values()))[None])
            sums = sums.reshape(-1, len(self._opd_sums)).sum(0)
            count = sums[-1].clamp(min=1)
            for name, value in zip(self._opd_sums, sums[:-1], strict=False):
                record_metric(self, mode, f"opd/{name}", (value / count).item())
        return result

    def _divergence(
        self,
        completion_ids: torch.Tensor,
        student_hidden_states: torch.Tensor,
        teacher_hidden_states: torch.Tensor,
        student_lm_head_weight: torch.Tensor,
        teacher_lm_head_weight: torch.Tensor,
        completion_mask: torch.Tensor,
        beta: float,
        num_items_in_batch: Any = None,
        student_lm_head_bias: torch.Tensor | None = None,
        teacher_lm_head_bias: torch.Tensor | None = None,
        student_logit_scale: float = 1.0,
        teacher_logit_scale: float = 1.0,
        student_final_logit_softcapping: float | None = None,
        teacher_final_logit_softcapping: float | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-token objective over the valid completion positions (called by `_compute_loss` inside the
        student's redirected forward): (loss summed / num_items_in_batch, student entropy sum, valid count)."""
        args = self.args
        valid = completion_mask.reshape(-1) != 0
        n_valid = valid.sum()
        normalizer = n_valid.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        h_s = student_hidden_states.reshape(-1, student_hidden_states.size(-1))[valid]
        h_t = teacher_hidden_states.reshape(-1, teacher_hidden_states.size(-1))[valid]
        with (
            gathered_lm_head(student_lm_head_weight, student_lm_head_bias),
            gathered_lm_head(teacher_lm_head_weight, teacher_lm_head_bias),
        ):
            head_s = (
                tempered(
                    LMHead(
                        student_lm_head_weight,
                        student_lm_head_bias,
                        student_logit_scale,
                        student_final_logit_softcapping,
                    ),
                    temperature,
                )
                if args.divergence == "hard_ce" or args.estimator == "sampled" or args.log_opd_metrics
                else None
            )
            head_t = (
                tempered(
                    LMHead(
                        teacher_lm_head_weight,
                        teacher_lm_head_bias,
                        teacher_logit_scale,
                        teacher_final_logit_softcapping,
                    ),
                    temperature,
                )
                if head_s is not None
                else None
            )
            stats = divergence_stats(h_s, head_s, h_t, head_t) if args.log_opd_metrics else None
            if args.divergence == "hard_ce":
                loss, entropy = hard_ce_loss(h_s, head_s, h_t, head_t, normalizer=normalizer)
            elif args.estimator == "sampled":
                tokens = completion_ids.reshape(-1)[valid]
                loss, entropy = sampled_reverse_kl_loss(h_s, head_s, h_t, head_t, tokens, normalizer=normalizer)
            else:
                entropy = None
        if entropy is None:  # the card's dense divergences: TRL's own kernel (beta 1 = reverse KL, 0 = forward KL)
            loss, entropy_sum, _ = trl_divergence_loss(
                student_hidden_states,
                teacher_hidden_states,
                student_lm_head_weight,
                teacher_lm_head_weight,
                completion_mask,
                beta,
                num_items_in_batch=num_items_in_batch,
                student_lm_head_bias=student_lm_head_bias,
                teacher_lm_head_bias=teacher_lm_head_bias,
                student_logit_scale=student_logit_scale,
                teacher_logit_scale=teacher_logit_scale,
                student_final_logit_softcapping=student_final_logit_softcapping,
                teacher_final_logit_softcapping=teacher_final_logit_softcapping,
                temperature=temperature,
            )
        else:
            entropy_sum = entropy.sum()
        if stats is not None:
            self._opd_sums = {
                "reverse_kl": stats.reverse_kl.sum(),
                "forward_kl": stats.forward_kl.sum(),
                "student_entropy": stats.student_entropy.sum(),
                "teacher_entropy": stats.teacher_entropy.sum(),
                "teacher_top1_agreement": stats.top1_agreement.sum(),
                "count": n_valid.float(),
            }
        return loss, entropy_sum.detach(), n_valid
