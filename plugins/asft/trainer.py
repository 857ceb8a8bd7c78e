"""ASFTTrainer: SFTTrainer with DFT's probability-weighted NLL and a KL anchor to the initial model."""

from __future__ import annotations

import json
import logging
import os

import torch
from transformers import TrainerCallback

from trl_ext.compat.models import backbone
from trl_ext.losses.token_loss import LMHead, dft_weight, fused_token_loss
from trl_ext.training.reference import reference_model
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, ASFTConfig

logger = logging.getLogger(__name__)
STATE_FILE = "trl_ext_asft.json"


class ASFTTrainer(FusedSFTTrainer):
    """Anchored Supervised Fine-Tuning (arXiv 2509.23753); modes sft / dft / sft_kl / asft.

    Args beyond SFTTrainer's: `ref_model`, a model or path to anchor to (default: a frozen copy of the initial
    policy, or the adapter-disabled base under PEFT).
    """

    config_class = ASFTConfig
    _name = "ASFT"
    _tag_names = ["trl", "sft", "asft", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: ASFTConfig | None = None, *posargs, ref_model=None, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self.ref_model = None
        self._reference_source = None
        if args.uses_kl:
            self.ref_model, self._reference_source = reference_model(
                self._policy,
                ref_model if ref_model is not None else args.ref_model_name_or_path,
                device=self.accelerator.device,
                adapter_base=hasattr(self.model, "disable_adapter"),  # PEFT: the frozen base is the initial model
            )
        self.add_callback(_ReferenceStateCallback(self))

    # --- reference ---------------------------------------------------------------------------------------------------
    def _reference_hidden(self, unwrapped, inputs):
        with torch.no_grad():
            if self.ref_model is not None:
                hidden = backbone(self.ref_model)(**inputs).last_hidden_state
                return hidden, LMHead.of(self.ref_model)
            was_training = unwrapped.training
            unwrapped.eval()  # dropout off for the reference pass
            try:
                with unwrapped.disable_adapter():
                    hidden = backbone(self._policy)(**inputs).last_hidden_state
                    head = self.detached_head(unwrapped)
            finally:
                unwrapped.train(was_training)
            return hidden, head

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: ASFTConfig = self.args
        scored = self.scored_batch(model, inputs)
        ref_hidden = ref_head = None
        if args.uses_kl:
            ref_full, ref_head = self._reference_hidden(self.accelerator.unwrap_model(model), scored.forward_inputs)
            ref_hidden = ref_full[:, :-1][scored.mask]
        normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        loss, stats = fused_token_loss(
            scored.hidden,
            self.policy_head,
            scored.targets,
            normalizer=normalizer,
            nll_weight=dft_weight if args.asft_loss in ("dft", "asft") else None,  # DFT: sg(p_t)
            ref_hidden=ref_hidden,  # KL(pi_0 || pi_theta), reference first
            ref_head=ref_head,
            kl_coef=args.kl_weight if args.uses_kl else 0.0,
            chunk_size=args.kl_chunk_size,
        )
        p = stats.log_probs.exp()
        metrics = {
            "entropy": stats.entropy,
            "mean_token_accuracy": stats.is_top1,
            "asft/mean_p": p,
            "asft/dft_loss": -p * stats.log_probs,
        }
        if stats.kl is not None:
            metrics["asft/kl"] = stats.kl
        self.log_token_means(scored.mask, **metrics)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    # --- resume ------------------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        path = resume_from_checkpoint
        if isinstance(path, str) and os.path.isfile(os.path.join(path, STATE_FILE)):
            with open(os.path.join(path, STATE_FILE)) as f:
                saved = json.load(f)
            if saved.get("reference") != self._reference_source:
                logger.warning(
                    "Resuming an ASFT run whose reference was %r with reference %r: the KL anchor differs.",
                    saved.get("reference"),
                    self._reference_source,
                )
        return super().train(resume_from_checkpoint, *args, **kwargs)


class _ReferenceStateCallback(TrainerCallback):
    """Saves which model the KL anchor is, next to each checkpoint, so a resume can check it is the same."""

    def __init__(self, trainer: ASFTTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            t = self.trainer
            with open(os.path.join(folder, STATE_FILE), "w") as f:
                json.dump(
                    {"reference": t._reference_source, "asft_loss": t.args.asft_loss, "kl_weight": t.args.kl_weight}, f
                )
