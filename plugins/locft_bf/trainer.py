"""LocFTTrainer: SFTTrainer (on trl_ext's fused-head base) that trains one localized weight tensor on edit requests,
breadth-first, with LocFT-BF's per-request loss, skip rule and epoch early stop."""

from __future__ import annotations

import difflib
import json
import logging
import os

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from trl_ext.losses import fused_token_loss
from trl_ext.training.normalization import SequenceCountMixin, sequence_token_weights
from trl_ext.training.sft import FusedSFTTrainer
from trl_ext.training.sharding import engine_name

from .config import LocFTConfig
from .evaluation import EditMetrics
from .paper import PAPER
from .transforms import edit_requests_to_prompt_completion, is_edit_requests

logger = logging.getLogger(__name__)
STATE_FILE = "locft_state.json"


def default_edit_layer(model: torch.nn.Module) -> int:
    """round(0.2 * depth): the card's rule for a new model, as Qwen2.5-7B's official layer 6 of 28."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return round(0.2 * config.num_hidden_layers)


def localized_names(model: torch.nn.Module, rewrite_module: str, layer: int) -> list[str]:
    """The parameters LocFT trains: the one named `rewrite_module.format(layer)`, or every parameter under that module.
    Matched on exact names (the official code matches substrings, so 'model.layers.1' there also picks layers 10-19)."""
    target = rewrite_module.format(layer)
    names = [name for name, _ in model.named_parameters()]
    if target in names:
        return [target]
    under = [name for name in names if name.startswith(target + ".")]
    if not under:
        close = difflib.get_close_matches(target, names, n=3, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(
            f"locft: no parameter or module named {target!r} (rewrite_module={rewrite_module!r}, edit_layer={layer}) "
            f"in {type(model).__name__}.{hint}"
        )
    return under


def localize(model: torch.nn.Module, rewrite_module: str, layer: int) -> dict[str, torch.nn.Parameter]:
    """Freeze everything but the localized tensor(s); returns them by name."""
    keep = set(localized_names(model, rewrite_module, layer))
    params = {}
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)
        if name in keep:
            params[name] = param
    return params


def request_losses(nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """l_i = (1/|t_i|) sum_j nll_ij for each row of the [B, T-1] scored-position `mask` with a target token; `nll` is
    [N] in mask order."""
    rows = mask.nonzero(as_tuple=True)[0]
    sums = torch.zeros(mask.shape[0], dtype=nll.dtype, device=nll.device).index_add_(0, rows, nll)
    counts = mask.sum(1)
    return sums[counts > 0] / counts[counts > 0].to(nll.dtype)


class LocFTTrainer(SequenceCountMixin, FusedSFTTrainer):
    """LocFT-BF (arXiv 2509.22072): all edit requests trained together for several epochs of shuffled mini-batches,
    updating only one weight tensor (an MLP down-projection of one layer)."""

    config_class = LocFTConfig
    _name = "LocFT-BF"
    _tag_names = ["trl", "sft", "locft-bf", "model-editing", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: LocFTConfig | None = None, train_dataset=None, eval_dataset=None,
                 processing_class=None, callbacks=None, peft_config=None, **kwargs):  # fmt: skip
        args = self._method_args(args)
        if peft_config is not None:
            raise ValueError(
                "LocFT-BF trains one tensor of the model itself, not an adapter: drop --use_peft / peft_config."
            )
        eos = getattr(processing_class, "eos_token", None)
        if is_edit_requests(train_dataset):
            train_dataset = edit_requests_to_prompt_completion(train_dataset, eos)
        if is_edit_requests(eval_dataset):
            eval_dataset = edit_requests_to_prompt_completion(eval_dataset, eos)
        self.locft_rules = LocFTRules(self)
        callbacks = [*(callbacks or []), self.locft_rules]
        if args.eval_edits and train_dataset is not None and "target_new" in train_dataset.column_names:
            rows = train_dataset.to_list()[: args.edit_eval_limit]
            callbacks.append(EditMetrics(rows, args.edit_eval_max_new_tokens))
        super().__init__(model, args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, callbacks=callbacks, **kwargs)  # fmt: skip
        self.edit_layer = args.edit_layer if args.edit_layer is not None else default_edit_layer(self._policy)
        self.localized_parameters = localize(self._policy, args.rewrite_module, self.edit_layer)
        trained = sum(p.numel() for p in self.localized_parameters.values())
        total = sum(p.numel() for p in self._policy.parameters())
        logger.info("LocFT-BF trains %s: %d of %d parameters (%.4f%%)", ", ".join(self.localized_parameters),
                    trained, total, 100 * trained / total)  # fmt: skip

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: LocFTConfig = self.args
        scored = self.scored_batch(model, inputs)
        token_weights = None
        if args.per_sequence_mean:
            # L = (1/B) sum_i (1/|t_i|) sum_j -log p(t_ij | p_i, t_i,<j), B the requests of the global batch
            token_weights = sequence_token_weights(scored.mask)
            normalizer, multiplier = self.sequence_normalizer(scored.mask, num_items_in_batch)
        else:
            normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        loss, stats = fused_token_loss(
            scored.hidden, self.policy_head, scored.targets, normalizer=normalizer, token_weights=token_weights
        )
        if model.training:
            self.locft_rules.add_requests(request_losses(-stats.log_probs, scored.mask))
        self.log_token_means(scored.mask, entropy=stats.entropy, mean_token_accuracy=stats.is_top1)
        return self.loss_output(model, scored, loss * multiplier, return_outputs)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        engine = engine_name(self)
        if self.args.skip_loss_below > 0 and engine:
            raise ValueError(
                f"LocFT-BF's skip rule (skip_loss_below={self.args.skip_loss_below}) withholds the optimizer step of a "
                f"fitted batch, which {engine} takes inside backward or on sharded gradients where the rule cannot "
                "reach it. Train under DDP or one process (LocFT trains one tensor), or set skip_loss_below=0."
            )
        folder = (
            get_last_checkpoint(self.args.output_dir) if resume_from_checkpoint is True else resume_from_checkpoint
        )
        if isinstance(folder, str):
            self.locft_rules.load(folder)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            logs = {**logs, "locft/skipped_batches": float(self.locft_rules.skipped)}
        super().log(logs, *args, **kwargs)


class LocFTRules(TrainerCallback):
    """The official loop's two rules on the global batch (summed over micro-batches and processes, so every rank
    decides alike): a step whose batch loss is below `skip_loss_below` leaves the localized tensor and its Adam state
    untouched (its gradient is dropped before the optimizer step: torch Adam skips a parameter without one); an epoch
    whose mean request loss (the batch losses weighted by their sizes) is below `early_stop_epoch_loss` ends
    training. The counters go into every checkpoint (`locft_state.json`) and come back on resume."""

    def __init__(self, trainer: LocFTTrainer) -> None:
        self.trainer = trainer
        self.step_sum, self.step_count = 0.0, 0
        self.epoch_sum, self.epoch_count = 0.0, 0
        self.skipped = 0
        self.epoch_losses: list[float] = []
        self.step_losses: list[float] = []

    def add_requests(self, losses: torch.Tensor) -> None:
        """Add a micro-batch's per-request losses (a collective: every process calls it)."""
        local = torch.stack([losses.detach().double().sum(), torch.tensor(float(losses.numel()), dtype=torch.float64)])
        total = self.trainer.accelerator.reduce(local.to(self.trainer.accelerator.device), reduction="sum")
        self.step_sum += float(total[0])
        self.step_count += int(round(float(total[1])))

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        loss = self.step_sum / max(self.step_count, 1)
        self.step_losses.append(loss)
        self.epoch_sum += self.step_sum
        self.epoch_count += self.step_count
        self.step_sum, self.step_count = 0.0, 0
        if loss < args.skip_loss_below:
            for param in self.trainer.localized_parameters.values():
                param.grad = None
            self.skipped += 1

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.epoch_count == 0:
            return
        mean = self.epoch_sum / self.epoch_count
        self.epoch_losses.append(mean)
        self.epoch_sum, self.epoch_count = 0.0, 0
        self.trainer.log({"locft/epoch_mean_loss": mean})
        if mean < args.early_stop_epoch_loss:
            logger.info("LocFT-BF: epoch mean loss %.4g < %g, stopping.", mean, args.early_stop_epoch_loss)
            control.should_training_stop = True

    def state_dict(self) -> dict:
        keys = ("epoch_sum", "epoch_count", "skipped", "epoch_losses", "step_losses")
        return {key: getattr(self, key) for key in keys}

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
            with open(os.path.join(folder, STATE_FILE), "w") as f:
                json.dump(self.state_dict(), f)

    def load(self, folder: str) -> None:
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            logger.warning("LocFT-BF: %s has no %s; skip counter and epoch loss start from zero.", folder, STATE_FILE)
            return
        with open(path) as f:
            for key, value in json.load(f).items():
                setattr(self, key, value)
