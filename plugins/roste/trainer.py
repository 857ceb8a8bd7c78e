"""RoSTETrainer: SFTTrainer on a model that RoSTE rotated and wrapped in fake quantisers before training (the
lower level of the paper's bilevel problem). The loss is SFTTrainer's own; the quantisers' STE carries the
gradients to the latent weights."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from trl import SFTTrainer

from trl_ext.compat.trainer import record_metric
from trl_ext.training.sharding import is_sharded

from .config import RoSTEConfig
from .paper import PAPER
from .transform import (
    apply_roste,
    export_quantized,
    load_rotation_config,
    refuse_quantized_base,
    rotation_counts,
    write_roste_files,
)

logger = logging.getLogger(__name__)
EXPORT_DIR = "roste-export"


class RoSTETrainer(SFTTrainer):
    """Full-parameter quantisation-aware SFT with RoSTE's rotations (searched once, before training)."""

    _name = "RoSTE"
    _tag_names = ["trl", "sft", "trl-ext", "roste", "quantization-aware-training"]
    config_class = RoSTEConfig

    def __init__(self, model, args: RoSTEConfig | None = None, *posargs, peft_config=None, **kwargs):
        if args is None:
            args = RoSTEConfig(output_dir="roste-output")
        if not isinstance(args, RoSTEConfig):
            raise TypeError(f"RoSTETrainer needs a RoSTEConfig, got {type(args).__name__}")
        if peft_config is not None:
            raise ValueError(
                "RoSTE is full-parameter quantisation-aware training (every weight is rotated, fake-quantised and "
                "updated): drop --use_peft / peft_config."
            )
        if not isinstance(model, str):
            refuse_quantized_base(model)
        super().__init__(model, args, *posargs, **kwargs)
        refuse_quantized_base(self.model)
        if hasattr(self.model, "peft_config"):
            raise ValueError("RoSTE trains every weight of the model: give it a model without a peft adapter.")
        self.rotation_config = self._rotate_and_wrap()
        self._counts = rotation_counts(self.rotation_config)
        logger.info("RoSTE rotations: %s", self._counts)

    @property
    def _paper(self) -> dict[str, str | None]:
        return {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    # --- the transform, once, before training -----------------------------------------------------------------------
    def calibration_batches(self) -> list[dict[str, torch.Tensor]]:
        """The first `calib_samples` training sequences, collated as training batches (the card's calibration)."""
        n, size = self.args.calib_samples, self.args.per_device_train_batch_size
        rows = []
        for row in self.train_dataset:
            rows.append(row)
            if len(rows) == n:
                break
        if not rows:
            raise ValueError("RoSTE's rotation search needs training rows; the training dataset is empty.")
        device = next(self.model.parameters()).device
        batches = []
        for start in range(0, len(rows), size):
            batch = self.data_collator(rows[start : start + size])
            keys = [k for k in ("input_ids", "attention_mask") if k in batch]
            batches.append({k: batch[k].to(device) for k in keys})
        return batches

    def _broadcast(self, config):
        if self.accelerator.num_processes == 1:
            return config
        from accelerate.utils import broadcast_object_list

        holder = [config]
        broadcast_object_list(holder, from_process=0)
        return holder[0]

    def _rotate_and_wrap(self):
        args = self.args
        given = load_rotation_config(args.rotation_config_path) if args.rotation_config_path else None
        search_here = given is None and self.accelerator.is_main_process
        gather = contextlib.nullcontext()
        if is_sharded(self.model):  # ZeRO-3 loading partitioned the weights: rotate them whole, re-shard on exit
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=0)
        with gather:
            calib = self.calibration_batches() if search_here else None
            return apply_roste(self.model, args, calib, given, broadcast=self._broadcast)

    def create_optimizer(self, *args, **kwargs):
        """ptq_only: every group at learning rate 0 before the scheduler reads it, so AdamW's step (and its decoupled
        weight decay, 1 - lr x wd) leaves each weight bit-identical."""
        optimizer = super().create_optimizer(*args, **kwargs)
        if self.args.ptq_only:
            for group in optimizer.param_groups:
                group["lr"] = 0.0
        return optimizer

    # --- metrics ------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            stats = self.accelerator.unwrap_model(model).roste_stats
            for name, value in {**stats.means(), **self._counts}.items():
                record_metric(self, "train", name, float(value))
            stats.reset()
        return result

    # --- saving -------------------------------------------------------------------------------------------------------
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """The weights as trained (latent, rotated) plus rotation_config.json and roste_state.json: load the folder
        with `load_roste_model` (a plain `from_pretrained` would lose R4's online half and the quantisers)."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            write_roste_files(self.accelerator.unwrap_model(self.model), output_dir or self.args.output_dir, False)

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        if self.args.export_quantized and self.args.should_save:
            if is_sharded(self.model):
                logger.warning(
                    "RoSTE: the weights are held in shards, so no %s is written; export the saved output with "
                    "load_roste_model + export_quantized.",
                    EXPORT_DIR,
                )
            else:
                folder = Path(self.args.output_dir) / EXPORT_DIR
                export_quantized(self.accelerator.unwrap_model(self.model), folder, self.processing_class)
        return result
