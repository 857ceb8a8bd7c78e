"""LoRAMoETrainer: SFTTrainer's loss (fused LM head, unchanged) plus beta * the localized balancing loss of every
LoRAMoE layer, from router statistics the layers reduce to (B, E) inside their forward."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from trl import SFTTrainer

from trl_ext.compat.trainer import keep_columns, record_metric
from trl_ext.training.normalization import accumulation_divisor

from .adapter import wrap_loramoe
from .config import LoRAMoETrainerConfig
from .loss import localized_balance_loss
from .paper import PAPER
from .tuner import LoRAMoEConfig, RoutingRecord, loramoe_layers, routing_record

logger = logging.getLogger(__name__)


class TaskTypeCollator:
    """SFTTrainer's collator plus the rows' task type as a (B,) long tensor under `column` (when the rows have it)."""

    def __init__(self, base: Callable[[list[dict[str, Any]]], dict[str, Any]], column: str):
        self.base = base
        self.column = column

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base(examples)
        if all(self.column in example for example in examples):
            batch[self.column] = torch.tensor([int(example[self.column]) for example in examples], dtype=torch.long)
        return batch


class LoRAMoETrainer(SFTTrainer):
    """SFT of a LoRAMoE-wrapped model with the localized balancing constraint (training only)."""

    _name = "LoRAMoE"
    _tag_names = ["trl", "sft", "trl-ext", "loramoe"]
    config_class = LoRAMoETrainerConfig

    def __init__(self, model, args: LoRAMoETrainerConfig | None = None, *posargs, peft_config=None, **kwargs):
        if args is None:
            args = LoRAMoETrainerConfig(output_dir="loramoe-output")
        if not isinstance(args, LoRAMoETrainerConfig):
            raise TypeError(f"LoRAMoETrainer needs a LoRAMoETrainerConfig, got {type(args).__name__}")
        if peft_config is not None and not isinstance(peft_config, LoRAMoEConfig):
            raise ValueError(
                f"LoRAMoETrainer trains LoRAMoE experts, not a {type(peft_config).__name__}: drop --use_peft "
                "(the experts' shape is set with --adapter loramoe:num_experts=...:r=...)."
            )
        if not isinstance(model, str) and not loramoe_layers(model):
            model = wrap_loramoe(model, peft_config or LoRAMoEConfig(task_type="CAUSAL_LM"))
            peft_config = None
        elif isinstance(model, str) and peft_config is None:
            peft_config = LoRAMoEConfig(task_type="CAUSAL_LM")
        super().__init__(model, args, *posargs, peft_config=peft_config, **kwargs)
        self._layers = loramoe_layers(self.model)
        if not self._layers:
            raise ValueError("LoRAMoETrainer: the model has no LoRAMoE layers (check target_modules)")
        odd = sorted({e for layer in self._layers for e in layer.num_experts.values() if e % 2})
        if args.blc_weight > 0 and odd:
            raise ValueError(
                f"num_experts={odd[0]}: the balance loss splits the experts into two equal groups, so E must be even "
                "(or set blc_weight=0)."
            )
        column = args.task_type_column
        keep_columns(self, [column])  # through remove_unused_columns, to the collator
        self.data_collator = TaskTypeCollator(self.data_collator, column)
        columns = getattr(self.train_dataset, "column_names", None)
        self._warned_no_types = False
        if args.blc_weight > 0 and columns is not None and column not in columns:
            self._warn_no_types()
        self._routing: RoutingRecord | None = None

    @property
    def _paper(self) -> dict[str, str | None]:
        return {"title": PAPER.title, "id": PAPER.arxiv, "citation": PAPER.citation}

    def _warn_no_types(self) -> None:
        if not self._warned_no_types:
            logger.warning(
                "LoRAMoE: the training data has no %r column: the balance loss is skipped (plain MoE-LoRA SFT).",
                self.args.task_type_column,
            )
            self._warned_no_types = True

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Open over forward and backward: a gradient-checkpointing recompute records (overwrites) the same statistics
        with routing_record(model, inputs.get("attention_mask"), self.args.count_padding_tokens) as record:
            self._routing = record
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                self._routing = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task_types = inputs.pop(self.args.task_type_column, None)  # the model must not receive it
        if not model.training:  # the balance loss is training-only (the official code adds it in eval too)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._routing is None:  # called outside training_step (tests, bench)
            with routing_record(model, inputs.get("attention_mask"), self.args.count_padding_tokens) as record:
                self._routing = record
                try:
                    return self._loss_with_balance(model, inputs, task_types, return_outputs, num_items_in_batch)
                finally:
                    self._routing = None
        return self._loss_with_balance(model, inputs, task_types, return_outputs, num_items_in_batch)

    def _loss_with_balance(self, model, inputs, task_types, return_outputs, num_items_in_batch):
        self._routing.clear()
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = result if return_outputs else (result, None)
        stats = list(self._routing.stats.values())
        if not stats:
            raise RuntimeError("LoRAMoE: no layer recorded router statistics in the forward")
        blc = None
        if task_types is None:
            if self.args.blc_weight > 0:
                self._warn_no_types()
        else:
            task_types = task_types.to(stats[0].importance.device)
            # Card: beta * sum over every adapted linear of L_lbc (sum, not mean)
            blc = sum(localized_balance_loss(s.importance, task_types, self.args.blc_alpha) for s in stats)
            if self.args.blc_weight > 0:
                # once per optimizer step, as SFTTrainer's MoE aux loss
                loss = loss + self.args.blc_weight * blc / accumulation_divisor(self, num_items_in_batch)
        self._log_router_metrics(stats, task_types, blc)
        return (loss, outputs) if return_outputs else loss

    def _log_router_metrics(self, stats, task_types, blc) -> None:
        """loramoe/blc_loss (mean over processes), loramoe/group1_share_type{1,0} (router mass on experts 0..E/2-1
        over real tokens of samples of that type, all layers and processes), loramoe/router_entropy (per-token mean)."""
        device = stats[0].importance.device
        values = torch.zeros(7, device=device)
        values[0] = 0.0 if blc is None else blc.detach()
        values[1] = float(blc is not None)
        for s in stats:
            half = s.real_importance.shape[-1] // 2
            group1, total = s.real_importance[:, :half].sum(-1), s.real_importance.sum(-1)
            if task_types is not None:
                for offset, t in ((2, 1), (4, 0)):
                    rows = task_types == t
                    values[offset] += group1[rows].sum()
                    values[offset + 1] += total[rows].sum()
            values[6] += s.entropy.sum()
        tokens = sum(s.real_importance.sum() for s in stats)  # probabilities sum to 1: the layers' token count
        values = self.accelerator.gather_for_metrics(values.reshape(1, -1)).sum(0)
        tokens = self.accelerator.gather_for_metrics(tokens.reshape(1)).sum()
        if values[1] > 0:
            record_metric(self, "train", "loramoe/blc_loss", (values[0] / values[1]).item())
        for offset, t in ((2, 1), (4, 0)):
            if values[offset + 1] > 0:
                record_metric(
                    self, "train", f"loramoe/group1_share_type{t}", (values[offset] / values[offset + 1]).item()
                )
        if tokens > 0:
            record_metric(self, "train", "loramoe/router_entropy", (values[6] / tokens).item())
