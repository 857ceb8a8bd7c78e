"""LfUTrainer: SFTTrainer plus Learning-from-the-Undesirable's consistency regulariser (arXiv 2511.13052).

Each training micro-batch B (card steps 1-6; equation numbers are the paper's):
1. clean pass on B at phi: L_SFT(phi; B) (Eq. 1, SFTTrainer's normalisation) and the hidden states h_l, l = 0..K;
2. g = grad_phi L_SFT(phi; B') on an independent batch B' (`torch.autograd.grad`: `.grad` and DDP untouched);
3. phi' = phi + alpha * g / ||g||_2 (Eq. 2) on the trainable parameters (the LoRA weights under PEFT);
4. perturbed pass on B at phi' = phi + sg(c) (`torch.func.functional_call`: the gradient reaches phi): h'_l;
5. L_cons = (1/|S|) sum_{l in S} mean_{i, d} (h'_{l,i,d} - sg(h_{l,i,d}))^2 over response positions i (Eq. 5);
6. loss = L_SFT + lambda * L_cons (Eq. 6).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset, DatasetDict

from trl_ext.compat.models import backbone
from trl_ext.compat.sft_dataset import collator_columns, prepare_sft_dataset
from trl_ext.data import load_dataset
from trl_ext.losses.token_loss import LMHead, fused_token_loss, shifted_positions
from trl_ext.training.perturbation import (
    PerturbationRef,
    ascent_perturbation,
    backward_reads_perturbed,
    perturbed_forward,
    perturbed_parameters,
    trainable_parameters,
)
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, LfUConfig

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def record_hidden_states(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the `hidden_states` a decoder stack returns (called with `output_hidden_states=True`) while the context
    is open, whichever wrapper (DDP, PEFT, `functional_call`) the call went through."""
    states: list[torch.Tensor] = []

    def hook(_module, _args, output):
        hidden_states = getattr(output, "hidden_states", None)
        if hidden_states is not None:
            states[:] = list(hidden_states)

    handle = module.register_forward_hook(hook)
    try:
        yield states
    finally:
        handle.remove()


def response_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B, T] mask of the positions i >= 1 whose label is scored: the response tokens as inputs (card step 5).

    Position 0 never counts, so the number of positions over a batch is exactly SFTTrainer's `num_items_in_batch`."""
    positions = labels != -100
    positions[:, 0] = False
    return positions


def hidden_squared_error(
    clean: Sequence[torch.Tensor], perturbed: Sequence[torch.Tensor], positions: torch.Tensor
) -> torch.Tensor:
    """sum_{l, i in positions, d} (h'_{l,i,d} - sg(h_{l,i,d}))^2 over the selected layers' [B, T, D] hidden states."""
    if len(clean) != len(perturbed) or not clean:
        raise ValueError(
            f"Need the same non-zero number of clean and perturbed layers, got {len(clean)} and {len(perturbed)}."
        )
    return sum(
        (_wide(h_p[positions]) - _wide(h[positions].detach())).pow(2).sum()
        for h, h_p in zip(clean, perturbed, strict=True)
    )


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


def hidden_consistency(
    clean: Sequence[torch.Tensor],
    perturbed: Sequence[torch.Tensor],
    positions: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Eq. 5 in the official per-layer-mean form: (1/|S|) sum_l mean_{i in positions, d} (h'_{l,i,d} - sg(h_{l,i,d}))^2.

    `clean` and `perturbed` hold the selected layers' [B, T, D] hidden states. `normalizer` replaces the number of
    positions in the mean (the step's global count under gradient accumulation / several processes)."""
    count = positions.sum() if normalizer is None else torch.as_tensor(normalizer, device=positions.device)
    per_position = len(clean) * clean[0].shape[-1] if clean else 1
    return hidden_squared_error(clean, perturbed, positions) / (per_position * count.clamp(min=1))


def _no_nll(log_probs: torch.Tensor, positions: slice) -> torch.Tensor:
    return torch.zeros_like(log_probs)


class LfUTrainer(FusedSFTTrainer):
    """Learning-from-the-Undesirable (arXiv 2511.13052): SFT plus consistency of the hidden states under a normalised
    gradient-ascent step on the trainable parameters.

    Args beyond SFTTrainer's: `aux_dataset`, the dataset the undesirable batches B' are drawn from (default: the
    training set, or `args.lfu_aux_dataset`).
    """

    config_class = LfUConfig
    unsharded_only = (
        "its perturbed forward at phi + c and its ascent gradient read every trainable parameter whole, outside the "
        "forward of the module that owns it"
    )
    _name = "LfU"
    _tag_names = ["trl", "sft", "lfu", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: LfUConfig | None = None, *posargs, aux_dataset: Dataset | None = None, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        if not self._params:
            raise ValueError("LfU perturbs the trainable parameters, and the model has none.")
        text_config = self._policy.config.get_text_config()
        num_states = text_config.num_hidden_layers + 1  # hidden_states: the embedding output, then each layer's
        start, end = args.lfu_layers if args.lfu_layers is not None else (0, num_states - 1)
        self.lfu_layers = list(range(start, min(end, num_states - 1) + 1))
        if not self.lfu_layers:
            raise ValueError(
                f"lfu_layers={args.lfu_layers} selects no hidden state: this model has indices 0..{num_states - 1}."
            )
        self._aux_dataset = self._build_aux_dataset(aux_dataset) if args.regularizes else None
        if args.gradient_checkpointing and args.lfu_gradient == "official" and args.regularizes:
            logger.warning(
                "lfu_gradient='official' with gradient checkpointing (TRL's default): the checkpointed "
                "layers are recomputed at phi in backward, so only the tensors saved outside them read phi' "
                "as in the official code; pass --gradient_checkpointing false for its exact gradient."
            )

    @property
    def _params(self) -> dict[str, torch.nn.Parameter]:
        # Read at each use: an engine that shards the model in `accelerator.prepare` (FSDP2) replaces the parameters
        return trainable_parameters(self._policy)

    # --- the undesirable batch B' ----------------------------------------------------------------------------------
    def _build_aux_dataset(self, aux_dataset: Dataset | None) -> Dataset:
        if aux_dataset is None and self.args.lfu_aux_dataset is not None:
            loaded = load_dataset(self.args.lfu_aux_dataset, form="sft")
            aux_dataset = loaded["train"] if isinstance(loaded, DatasetDict) else loaded
        if aux_dataset is None:
            if not isinstance(self.train_dataset, Dataset):
                raise ValueError(
                    "LfU draws its undesirable batches at random and needs a map-style training set (not "
                    "streaming); pass `aux_dataset=` or --lfu_aux_dataset."
                )
            return collator_columns(self.train_dataset)  # already prepared by SFTTrainer
        if not isinstance(aux_dataset, Dataset):
            raise TypeError(f"aux_dataset must be a datasets.Dataset, got {type(aux_dataset).__name__}.")
        return prepare_sft_dataset(self, aux_dataset, "lfu_aux")

    def undesirable_batch(self) -> dict[str, torch.Tensor]:
        """An independent random batch B' of the aux dataset: drawn afresh for every micro-batch, seeded by (seed,
        optimizer step, micro-batch, process), so each process draws its own and a resumed run draws the same."""
        size = min(self.args.lfu_aux_batch_size or self.args.per_device_train_batch_size, len(self._aux_dataset))
        order = torch.randperm(len(self._aux_dataset), generator=self.micro_step_generator("lfu_aux"))
        rows = sorted(order[:size].tolist())
        batch = self.data_collator([self._aux_dataset[i] for i in rows])
        device = self.accelerator.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def ascent_perturbation(self, aux_inputs: dict[str, torch.Tensor]):
        """Steps 2-3: `(c, ||g||_2, L_SFT(phi; B'))` with `c = alpha * g / ||g||_2` per trainable parameter (Eq. 2).

        The gradient comes from `torch.autograd.grad` on the unwrapped model: no `.grad` is written and DDP's hooks
        do not fire (the perturbation is local to each process, as in the official code)."""
        hidden = backbone(self._policy)(**self.forward_inputs(aux_inputs)).last_hidden_state
        mask, targets = shifted_positions(aux_inputs["labels"])
        aux_loss, _ = fused_token_loss(hidden[:, :-1][mask], self.policy_head, targets, normalizer=mask.sum())
        perturbation, grad_norm = ascent_perturbation(aux_loss, self._params, self.args.lfu_alpha)
        return perturbation, grad_norm, aux_loss.detach()

    # --- loss --------------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: LfUConfig = self.args
        # The regulariser shapes training; evaluation reports the SFT loss.
        regularize = args.regularizes and model.training and torch.is_grad_enabled()

        # Step 1: clean pass on B. "official": its backward will read phi' where autograd saved a trainable weight.
        perturbation = PerturbationRef()
        official = regularize and args.lfu_gradient == "official"
        reads_perturbed = (
            backward_reads_perturbed(self._params, perturbation) if official else contextlib.nullcontext()
        )
        with reads_perturbed, record_hidden_states(backbone(self._policy)) as clean_states:
            scored = self.scored_batch(model, inputs, output_hidden_states=regularize)
        normalizer, multiplier = self.token_normalizer(scored.mask, num_items_in_batch)
        sft_loss, stats = fused_token_loss(scored.hidden, self.policy_head, scored.targets, normalizer=normalizer)
        loss = sft_loss * multiplier  # Eq. 1
        self.log_token_means(
            scored.mask,
            **{"lfu/sft_loss": -stats.log_probs, "entropy": stats.entropy, "mean_token_accuracy": stats.is_top1},
        )

        if regularize:
            cons = self._consistency(
                scored.forward_inputs,
                inputs["labels"],
                scored.full_hidden,
                clean_states,
                num_items_in_batch,
                perturbation,
            )
            loss = loss + args.lfu_lambda * cons  # Eq. 6
        return self.loss_output(model, scored, loss, return_outputs)

    def _consistency(
        self,
        forward_inputs,
        labels,
        clean_hidden,
        clean_states,
        num_items_in_batch,
        perturbation: PerturbationRef,
    ) -> torch.Tensor:
        args: LfUConfig = self.args
        # Steps 2-3: the undesirable update from B'
        c, grad_norm, aux_loss = self.ascent_perturbation(self.undesirable_batch())
        perturbation.value = c
        # Step 4: perturbed pass on B at phi' = phi + sg(c), through the unwrapped model
        hidden_mse = args.lfu_consistency == "hidden_mse"
        with record_hidden_states(backbone(self._policy)) as perturbed_states:
            perturbed_hidden = perturbed_forward(
                self._policy,
                self._params,
                c,
                **forward_inputs,
                return_backbone_hidden=True,
                output_hidden_states=hidden_mse,
            )
        # "global": a mean over the response tokens of the whole optimizer step, like the SFT term (ours);
        # "micro_batch": the official per-micro-batch mean, divided by the accumulation steps.
        in_window = num_items_in_batch is not None
        global_mean = args.lfu_cons_normalization == "global" and in_window
        if hidden_mse:  # Step 5, Eq. 5
            positions = response_positions(labels)
            local_count = positions.sum()
            clean = [clean_states[i] for i in self.lfu_layers]
            perturbed = [perturbed_states[i] for i in self.lfu_layers]
            per_token = len(clean) * clean[0].shape[-1]
            squared_error = hidden_squared_error(clean, perturbed, positions)
            count = torch.as_tensor(num_items_in_batch if global_mean else local_count)
            cons = squared_error / (per_token * count.clamp(min=1))
            local_sum = squared_error.detach()
        else:  # Eq. 7: KL(softmax(sg(z)) || softmax(z')) per response token, in chunks of tokens
            mask, targets = shifted_positions(labels)
            local_count = mask.sum()
            head = self.policy_head
            weight_name = next((n for n, p in self._params.items() if p is head.weight), None)
            bias_name = next((n for n, p in self._params.items() if head.bias is not None and p is head.bias), None)
            moved = perturbed_parameters(self._params, c)
            perturbed_head = LMHead(
                moved[weight_name] if weight_name else head.weight,
                moved[bias_name] if bias_name else head.bias,
                head.logit_scale,
                head.softcap,
            )
            clean_head = self.detached_head()
            cons, kl_stats = fused_token_loss(
                perturbed_hidden[:, :-1][mask],
                perturbed_head,
                targets,
                normalizer=num_items_in_batch if global_mean else local_count,
                nll_weight=_no_nll,
                ref_hidden=clean_hidden[:, :-1][mask].detach(),
                ref_head=clean_head,
                kl_coef=1.0,
            )
            local_sum = kl_stats.kl.sum()
            per_token = 1
        if global_mean and args.average_tokens_across_devices:
            cons = cons * self.accelerator.num_processes  # DDP averages gradients across ranks
        elif not global_mean and in_window:
            cons = cons / args.gradient_accumulation_steps  # transformers leaves accumulation to the loss

        gather = self.accelerator.gather_for_metrics
        totals = gather(
            torch.stack([local_sum.float(), local_count.float(), grad_norm.float(), aux_loss.float()]).reshape(1, -1)
        )
        count = totals[:, 1].sum().clamp(min=1)
        self.log_metric("lfu/cons_loss", (args.lfu_lambda * totals[:, 0].sum() / (per_token * count)).item())
        self.log_metric("lfu/ascent_grad_norm", totals[:, 2].mean().item())
        self.log_metric("lfu/aux_sft_loss", totals[:, 3].mean().item())
        return cons
