"""What every SFT-loss method on the fused chunked head shares, written once: the backbone's hidden states at the
scored positions, the token normaliser under gradient accumulation and several processes, metrics recorded into the
current train/eval mode (token means gathered over processes), a detached LM head for reference logits, the collated
mask columns the loss reads, the model card's paper from the method's `Paper` record, the `loss_type` rule
(`FusedSFTConfig`) and the `return_outputs` path. A plugin's `compute_loss` is then only its paper's loss.

Sharded engines (DeepSpeed ZeRO-3, FSDP2) hold a parameter whole only inside its module's forward, while these losses
read the LM head directly. So every subclass's `compute_loss` runs inside the model's forward (through the DDP /
DeepSpeed / FSDP wrapper, TRL's forward redirection) with the head gathered: the engines' hooks keep the parameters
whole while the loss reads them and see the gradients it returns, on every engine alike."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from trl import SFTConfig, SFTTrainer

from trl_ext.compat.models import add_backbone_forward, backbone
from trl_ext.compat.sharding import gathered_lm_head, run_inside_forward
from trl_ext.compat.trainer import count_train_tokens, record_metric
from trl_ext.losses.token_loss import LMHead, shifted_positions
from trl_ext.training.rng import MicroStepCounter, step_generator
from trl_ext.training.sharding import is_sharded
from trl_ext.training.token_masks import SpansFn, attach_completion_masks, masks_for_trainer

if TYPE_CHECKING:
    from trl_ext.plugin.records import Paper

logger = logging.getLogger(__name__)


@dataclass
class FusedSFTConfig(SFTConfig):
    """SFTConfig of a method that computes its own loss: SFTTrainer's `loss_type` must stay 'nll', and a config
    that sets it otherwise is refused with the method's reason (`own_loss`)."""

    # What replaces SFTTrainer's loss, as the refusal says it: "loss_type='dft' conflicts with {own_loss}".
    own_loss: ClassVar[str] = "this method's own loss"

    def __post_init__(self) -> None:
        if self.loss_type != "nll":
            raise ValueError(f"loss_type={self.loss_type!r} conflicts with {self.own_loss}; leave loss_type='nll'.")
        super().__post_init__()


@dataclass
class ScoredBatch:
    """A micro-batch seen through the backbone: position t of `hidden` predicts `targets[t]`."""

    hidden: torch.Tensor  # [N, H] backbone states at the scored positions
    targets: torch.Tensor  # [N] next-token labels
    mask: torch.Tensor  # [B, T-1] which positions are scored
    full_hidden: torch.Tensor  # [B, T, H]
    forward_inputs: dict[str, Any]  # the model inputs without labels (for a reference/teacher pass)


class FusedSFTTrainer(SFTTrainer):
    """SFTTrainer whose subclasses compute their loss from backbone hidden states with `trl_ext.losses`."""

    # Collated columns the loss reads but the model must not receive (e.g. token masks).
    loss_only_keys: tuple[str, ...] = ()
    # The method's config class: `args=None` gets its defaults, an args object of another type is refused.
    config_class: type | None = None
    # Why the method cannot train with parameters held in shards (DeepSpeed ZeRO-3, FSDP), or None when it can.
    unsharded_only: str | None = None
    # The paper the method implements: the model card's title, arXiv id and citation (`_paper`) come from it.
    paper: ClassVar[Paper | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "compute_loss" in cls.__dict__:
            cls.compute_loss = _inside_model_forward(cls.__dict__["compute_loss"])

    def __init__(self, model, args=None, *posargs, **kwargs):
        args = self._method_args(args)
        if args is not None:
            _no_unused_parameter_search(args)
        super().__init__(model, args, *posargs, **kwargs)
        self._policy = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        add_backbone_forward(self._policy)
        self._micro_steps = MicroStepCounter()
        self._mask_spans: SpansFn | None = None
        self._warned_no_masks = False

    @property
    def _paper(self) -> dict[str, str | None]:
        """What TRL's `create_model_card` reads (trl 1.16: `title`, `id`, `citation`), from `paper`."""
        if self.paper is None:
            return {}
        return {"title": self.paper.title, "id": self.paper.arxiv, "citation": self.paper.citation}

    def train(self, *args, **kwargs):
        self._refuse_sharded_parameters()
        return super().train(*args, **kwargs)

    def _refuse_sharded_parameters(self) -> None:
        """A method that reads parameters whole outside their module's forward says why (`unsharded_only`); it is
        refused before training under an engine that holds parameters in shards."""
        if self.unsharded_only is None:
            return
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        if zero3 or self.is_fsdp_enabled or is_sharded(self.model):
            engine = "DeepSpeed ZeRO-3" if zero3 else "FSDP"
            raise ValueError(
                f"{type(self).__name__} cannot train under {engine}: {self.unsharded_only}. Use DDP or DeepSpeed "
                "ZeRO-1/2, which keep every parameter whole on each process."
            )

    @classmethod
    def _method_args(cls, args):
        if cls.config_class is None:
            return args
        if args is None:
            return cls.config_class(output_dir=f"{cls._name.lower()}-output")
        if not isinstance(args, cls.config_class):
            raise TypeError(
                f"{cls.__name__} needs args of type {cls.config_class.__name__}, got {type(args).__name__}"
            )
        return args

    @property
    def policy_head(self) -> LMHead:
        return LMHead.of(self._policy)

    def detached_head(self, model: torch.nn.Module | None = None) -> LMHead:
        """The LM head of `model` (default: the policy) with its weight and bias detached: the head of a reference
        pass whose logits must send no gradient (read it inside any context that changes the head, e.g. PEFT's
        `disable_adapter`)."""
        head = LMHead.of(self._policy if model is None else model)
        bias = None if head.bias is None else head.bias.detach()
        return LMHead(head.weight.detach(), bias, head.logit_scale, head.softcap)

    def forward_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The model's inputs in a collated batch: without the labels and the `loss_only_keys` columns, no cache."""
        forward_inputs = {k: v for k, v in inputs.items() if k != "labels" and k not in self.loss_only_keys}
        forward_inputs["use_cache"] = False
        return forward_inputs

    def scored_batch(self, model, inputs: dict[str, Any], **forward_kwargs: Any) -> ScoredBatch:
        """Run the backbone on a micro-batch; `forward_kwargs` go to this forward only (e.g. `output_hidden_states`),
        not into `forward_inputs`."""
        if "shift_labels" in inputs:
            raise NotImplementedError(f"{type(self).__name__} does not support context/sequence parallelism.")
        forward_inputs = self.forward_inputs(inputs)
        # The decoder stack alone, never the whole model again: this runs inside the model's forward, where a nested
        # call of the root would end the engine's forward (ZeRO-3 releases every gathered parameter there).
        hidden = backbone(self._policy)(**forward_inputs, **forward_kwargs).last_hidden_state
        mask, targets = shifted_positions(inputs["labels"])
        return ScoredBatch(hidden[:, :-1][mask], targets, mask, hidden, forward_inputs)

    def token_normalizer(self, mask: torch.Tensor, num_items_in_batch) -> tuple[torch.Tensor | int, float]:
        """(divisor, multiplier) of a token-sum loss, as SFTTrainer: `num_items_in_batch` counts every rank's tokens
        and DDP averages gradients across ranks, so the loss is multiplied by the number of processes."""
        if num_items_in_batch is None:
            return mask.sum(), 1.0
        multiplier = float(self.accelerator.num_processes) if self.args.average_tokens_across_devices else 1.0
        return num_items_in_batch, multiplier

    # --- metrics -----------------------------------------------------------------------------------------------------
    @property
    def metric_mode(self) -> str:
        """ "train" or "eval": the metric lists SFTTrainer's `log` averages for the current pass."""
        return "train" if self.model.training else "eval"

    def log_metric(self, name: str, value: float) -> None:
        """Record `value` under `name` in the current mode's metrics (averaged over the logging interval)."""
        record_metric(self, self.metric_mode, name, value)

    def global_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of `values` over this micro-batch and every process (a collective: call it on every process)."""
        return self.accelerator.gather_for_metrics(values.detach().float().sum().reshape(1)).sum()

    def log_token_means(self, mask: torch.Tensor, **values: torch.Tensor) -> None:
        """Log each [N] per-token tensor as its mean over the scored tokens of all processes."""
        count = self.global_sum(mask).clamp(min=1)
        for name, value in values.items():
            self.log_metric(name, (self.global_sum(value) / count).item())

    # --- mask columns ------------------------------------------------------------------------------------------------
    def attach_masks(self, spans_fn: SpansFn) -> None:
        """Call at the end of `__init__`: adds the `loss_only_keys` mask columns (from `spans_fn`, see
        `trl_ext.training.token_masks`) to the train and eval datasets, and to a dataset given to `evaluate()`
        later; the collator carries them into the batches."""
        self._mask_spans = spans_fn
        attach_completion_masks(self, spans_fn, self.loss_only_keys)

    def get_eval_dataloader(self, eval_dataset=None):
        if self._mask_spans is not None:  # a dataset given to `evaluate()` is SFT-prepared there, without the masks
            eval_dataset = masks_for_trainer(self, eval_dataset, self._mask_spans, self.loss_only_keys)
        return super().get_eval_dataloader(eval_dataset)

    def shifted_masks(self, inputs: dict[str, Any], mask: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Each `loss_only_keys` mask column shifted like the labels ([B, T-1], aligned with `mask`), or None for a
        batch without them (a direct call with SFTTrainer's batches, e.g. `trl-ext bench`), said once in the log."""
        if all(key in inputs for key in self.loss_only_keys):
            return {key: inputs[key][:, 1:].to(mask.device) for key in self.loss_only_keys}
        if not self._warned_no_masks:
            logger.warning("%s batch without %s: every mask reads 0.", self._name, " / ".join(self.loss_only_keys))
            self._warned_no_masks = True
        return None

    # --- seeded draws ------------------------------------------------------------------------------------------------
    def micro_step_generator(self, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A generator for one draw of this micro-batch (`trl_ext.training.rng`): seeded from (seed, optimizer step,
        process, micro-batch within the step, mode, `stream`), so a resumed run draws the same."""
        mode, step = self.metric_mode, self.state.global_step
        micro = self._micro_steps.next(step, (stream, mode))
        return step_generator(self.args.seed, step, self.accelerator.process_index, micro, mode, device, stream)

    def loss_output(self, model, scored: ScoredBatch, loss: torch.Tensor, return_outputs: bool):
        if return_outputs:  # only for compute_metrics; the full logits cost an extra forward, as in SFTTrainer
            with torch.no_grad():
                return loss, model(**scored.forward_inputs)
        return loss


def _inside_model_forward(compute_loss):
    """`compute_loss` run as the model's forward, through its wrapper, with the policy's LM head gathered (ZeRO-3),
    and called with the unwrapped model (calling the wrapper again inside its own forward would nest it). A call made
    from inside (a subclass's `compute_loss` calling `super().compute_loss`) runs as it is."""

    @functools.wraps(compute_loss)
    def wrapped(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if getattr(self, "_loss_in_forward", False):
            return compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        unwrapped = self.accelerator.unwrap_model(model)

        def loss_in_forward():
            head = self._policy.get_output_embeddings()
            self._loss_in_forward = True
            try:
                with gathered_lm_head(head.weight, getattr(head, "bias", None)):
                    return compute_loss(self, unwrapped, inputs, return_outputs, num_items_in_batch)
            finally:
                self._loss_in_forward = False

        # Through `model.__call__` even when nothing wraps it: an FSDP2 root is its own wrapper, with forward hooks
        result = run_inside_forward(model, unwrapped, loss_in_forward)
        if model.training:  # SFTTrainer's num_tokens, which its compute_loss (not called here) would have counted
            count_train_tokens(self, inputs)
        return result

    return wrapped


def _no_unused_parameter_search(args) -> None:
    """The loss projects the LM head outside the model's forward, so DDP's unused-parameter search (transformers turns
    it on when gradient checkpointing is off) would mark the head unused after the forward, then fail when its
    gradient arrives in backward ("Expected to mark a variable ready only once"). Every parameter does get its
    gradient, so the search is not needed: turn it off unless the user asked for it, and refuse it then."""
    if args.ddp_find_unused_parameters:
        raise ValueError(
            "ddp_find_unused_parameters=True is not supported: this trainer projects the LM head outside the model's "
            "forward, which DDP's unused-parameter search cannot see. Leave it unset (every parameter gets a gradient)."
        )
    args.ddp_find_unused_parameters = False
