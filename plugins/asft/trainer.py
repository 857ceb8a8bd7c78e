"""ASFTTrainer: SFTTrainer with DFT's probability-weighted NLL and a KL anchor to the initial model."""

from __future__ import annotations

import copy
import json
import logging
import os

import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from trl_ext.compat import add_backbone_forward, backbone, drop_instance_forward, record_metric
from trl_ext.losses import LMHead, dft_weight, fused_token_loss, shifted_positions
from trl_ext.models import load_model

from .config import ASFTConfig

logger = logging.getLogger(__name__)
STATE_FILE = "trl_ext_asft.json"


class ASFTTrainer(SFTTrainer):
    """Anchored Supervised Fine-Tuning (arXiv 2509.23753); modes sft / dft / sft_kl / asft.

    Args beyond SFTTrainer's: `ref_model`, a model or path to anchor to (default: a frozen copy of the initial
    policy, or the adapter-disabled base under PEFT).
    """

    _name = "ASFT"
    _tag_names = ["trl", "sft", "asft", "trl-ext"]
    _paper = {
        "title": "Anchored Supervised Fine-Tuning",
        "id": "2509.23753",
        "citation": None,  # filled from the plugin's PAPER in __init__.py
    }

    def __init__(self, model, args: ASFTConfig | None = None, *posargs, ref_model=None, **kwargs):
        if args is None:
            args = ASFTConfig(output_dir="asft-output")
        if not isinstance(args, ASFTConfig):
            raise TypeError(f"ASFTTrainer needs an ASFTConfig, got {type(args).__name__}")
        super().__init__(model, args, *posargs, **kwargs)
        self._policy = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        add_backbone_forward(self._policy)
        self.ref_model = None
        self._reference_source = None
        if args.uses_kl:
            self.ref_model, self._reference_source = self._build_reference(ref_model)
        self.add_callback(_ReferenceStateCallback(self))

    # --- reference ---------------------------------------------------------------------------------------------------
    def _build_reference(self, ref_model):
        source = ref_model if isinstance(ref_model, str) else self.args.ref_model_name_or_path
        if isinstance(ref_model, torch.nn.Module):
            ref, source = ref_model, getattr(ref_model.config, "_name_or_path", "given")
        elif source is not None:
            ref = load_model(source, dtype=self._policy.dtype)
        elif hasattr(self.model, "disable_adapter"):
            return None, "adapter-disabled base"  # PEFT: the frozen base under the adapter is the initial model
        else:
            # A true deep copy (tied embeddings stay tied inside the copy, never shared with the policy)
            forward = drop_instance_forward(self._policy)
            try:
                ref = copy.deepcopy(self._policy)
            finally:
                if forward is not None:
                    self._policy.forward = forward
            source = f"initial copy of {getattr(self._policy.config, '_name_or_path', '') or 'the policy'}"
        if ref.get_output_embeddings().weight.shape[0] != self._policy.get_output_embeddings().weight.shape[0]:
            raise ValueError(f"The reference model {source!r} has a different vocabulary size than the policy.")
        ref.eval().requires_grad_(False)
        return ref.to(self.accelerator.device), source

    def _reference_hidden(self, unwrapped, inputs):
        with torch.no_grad():
            if self.ref_model is not None:
                hidden = backbone(self.ref_model)(**inputs).last_hidden_state
                return hidden, LMHead.of(self.ref_model)
            was_training = unwrapped.training
            unwrapped.eval()  # dropout off for the reference pass
            try:
                with unwrapped.disable_adapter():
                    hidden = unwrapped(**inputs, return_backbone_hidden=True)
                    head = LMHead.of(unwrapped)
            finally:
                unwrapped.train(was_training)
            return hidden, LMHead(head.weight.detach(), None if head.bias is None else head.bias.detach(),
                                  head.logit_scale, head.softcap)

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        args: ASFTConfig = self.args
        if "shift_labels" in inputs:
            raise NotImplementedError("ASFTTrainer does not support context/sequence parallelism (shift_labels).")
        labels = inputs["labels"]
        forward_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        forward_inputs["use_cache"] = False

        hidden = model(**forward_inputs, return_backbone_hidden=True)
        mask, targets = shifted_positions(labels)
        h = hidden[:, :-1][mask]

        ref_hidden = ref_head = None
        if args.uses_kl:
            unwrapped = self.accelerator.unwrap_model(model)
            ref_full, ref_head = self._reference_hidden(unwrapped, forward_inputs)
            ref_hidden = ref_full[:, :-1][mask]

        normalizer = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss, stats = fused_token_loss(
            h,
            LMHead.of(self._policy),
            targets,
            normalizer=normalizer,
            nll_weight=dft_weight if args.asft_loss in ("dft", "asft") else None,  # eq. (DFT): sg(p_t)
            ref_hidden=ref_hidden,
            ref_head=ref_head,
            kl_coef=args.kl_weight if args.uses_kl else 0.0,
            chunk_size=args.kl_chunk_size,
        )
        # As SFTTrainer: `num_items_in_batch` counts every rank's tokens and DDP averages gradients across ranks
        if args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._log_token_means(mode, mask, stats)

        if return_outputs:  # only for compute_metrics; the full logits cost an extra forward, as in SFTTrainer
            with torch.no_grad():
                outputs = model(**forward_inputs)
            return loss, outputs
        return loss

    def _log_token_means(self, mode, mask, stats) -> None:
        gather = self.accelerator.gather_for_metrics
        count = gather(mask.sum().reshape(1)).sum().clamp(min=1)

        def token_mean(values: torch.Tensor) -> float:
            return (gather(values.detach().float().sum().reshape(1)).sum() / count).item()

        p = stats.log_probs.exp()
        record_metric(self, mode, "entropy", token_mean(stats.entropy))
        record_metric(self, mode, "mean_token_accuracy", token_mean(stats.is_top1.float()))
        record_metric(self, mode, "asft/mean_p", token_mean(p))
        record_metric(self, mode, "asft/dft_loss", token_mean(-p * stats.log_probs))
        if stats.kl is not None:
            record_metric(self, mode, "asft/kl", token_mean(stats.kl))

    # --- resume ------------------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        path = resume_from_checkpoint
        if isinstance(path, str) and os.path.isfile(os.path.join(path, STATE_FILE)):
            with open(os.path.join(path, STATE_FILE)) as f:
                saved = json.load(f)
            if saved.get("reference") != self._reference_source:
                logger.warning(
                    "Resuming an ASFT run whose reference was %r with reference %r: the KL anchor differs.",
                    saved.get("reference"), self._reference_source,
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
                json.dump({"reference": t._reference_source, "asft_loss": t.args.asft_loss,
                           "kl_weight": t.args.kl_weight}, f)
