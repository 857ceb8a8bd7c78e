"""SoFTTrainer: SFTTrainer whose loss is the mean of the SFT losses of nested sub-models (first n layers + the shared
final norm and LM head), all from one forward pass."""

from __future__ import annotations

import dataclasses

import torch

from trl_ext.compat.models import backbone
from trl_ext.losses.token_loss import TokenStats, fused_token_loss, head_share, shifted_positions
from trl_ext.training.sft import FusedSFTTrainer

from .config import PAPER, SoFTConfig
from .submodels import decoder_layers, final_norm


class SoFTTrainer(FusedSFTTrainer):
    """Sorted Fine-Tuning (arXiv 2309.08968): L_SoFT = sum_n w_n L_n over the depths n in B (uniform w: the paper's
    mean, Eq. 1), where L_n is the SFT loss of the first n layers read through the model's own final norm and head.

    The depths are recorded in the saved model's config (`soft_layers`) for inference tooling; the sub-models are
    prefixes of the model, so nothing else is saved.
    """

    config_class = SoFTConfig
    _name = "SoFT"
    _tag_names = ["trl", "sft", "soft", "trl-ext"]
    paper = PAPER

    def __init__(self, model, args: SoFTConfig | None = None, *posargs, **kwargs):
        super().__init__(model, args, *posargs, **kwargs)
        args = self.args
        self.num_layers = len(decoder_layers(self._policy))
        self.depths, self.depth_weights = args.depths_for(self.num_layers)
        self._final_norm = final_norm(self._policy)
        self._policy.config.soft_layers = list(self.depths)
        self._checked_last_hidden = False

    # --- loss --------------------------------------------------------------------------------------------------------
    def _depth_states(self, model, inputs) -> tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor]:
        """g_n = FinalNorm(h_n) at the scored positions for each n in B, from one forward; and the mask and targets."""
        if "shift_labels" in inputs:
            raise NotImplementedError("SoFTTrainer does not support context/sequence parallelism (shift_labels).")
        # The decoder alone: the model's head is never called (the depths are projected in chunks)
        outputs = backbone(self._policy)(**self.forward_inputs(inputs), output_hidden_states=True)
        hidden_states = outputs.hidden_states  # L + 1 tensors: embeddings, layer 1 .. L (the last one post-norm)
        if not self._checked_last_hidden:
            self._check_last_hidden(hidden_states[self.num_layers], outputs.last_hidden_state)
        mask, targets = shifted_positions(inputs["labels"])
        states = {}
        for n in self.depths:
            # hidden_states[L] is already normalised: never normalise twice
            g = hidden_states[n] if n == self.num_layers else self._final_norm(hidden_states[n])
            states[n] = g[:, :-1][mask]
        return states, mask, targets

    def sorted_loss(self, model, inputs, num_items_in_batch=None) -> tuple[torch.Tensor, dict[int, TokenStats]]:
        """L_SoFT = sum_n w_n L_n (paper Eq. 1; the mean over B when uniform) and each depth's token statistics.

        One fused pass over the scored tokens of every depth, weighted w_n: the head's weight gradient is built once,
        not once per depth."""
        states, mask, targets = self._depth_states(model, inputs)
        normalizer, _ = self.token_normalizer(mask, num_items_in_batch)
        count = targets.shape[0]
        weights = torch.tensor(self.depth_weights, device=targets.device).repeat_interleave(count)
        loss, stats = fused_token_loss(
            torch.cat([states[n] for n in self.depths]),
            self.policy_head,
            targets.repeat(len(self.depths)),
            normalizer=normalizer,
            token_weights=weights,
        )
        return loss, {n: _rows(stats, i * count, (i + 1) * count) for i, n in enumerate(self.depths)}

    def depth_losses(self, model, inputs, num_items_in_batch=None) -> dict[int, tuple[torch.Tensor, TokenStats]]:
        """Each L_n on its own, with its statistics (analysis and tests; training uses `sorted_loss`)."""
        states, mask, targets = self._depth_states(model, inputs)
        normalizer, _ = self.token_normalizer(mask, num_items_in_batch)
        return {n: fused_token_loss(states[n], self.policy_head, targets, normalizer=normalizer) for n in self.depths}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, stats = self.sorted_loss(model, inputs, num_items_in_batch)
        mask, _ = shifted_positions(inputs["labels"])
        _, multiplier = self.token_normalizer(mask, num_items_in_batch)
        self._log_depths(mask, stats)
        if return_outputs:  # only for compute_metrics; the full logits cost an extra forward, as in SFTTrainer
            with torch.no_grad():
                return loss * multiplier, model(**self.forward_inputs(inputs))
        return loss * multiplier

    def _check_last_hidden(self, last: torch.Tensor, head_input: torch.Tensor) -> None:
        # hidden_states[L] must be what the head reads (the final-normed state): else the architecture returns a
        # pre-norm last hidden state and the full-depth loss would skip the final norm.
        with torch.no_grad():
            tolerance = 1e-4 * head_input.abs().max().clamp(min=1.0)
            if last.shape != head_input.shape or (last - head_input).abs().max() > tolerance:
                raise ValueError(
                    f"{type(self._policy).__name__}'s last hidden state is not the final-normed one its "
                    "head reads; SoFTTrainer supports Llama-family decoders."
                )
        self._checked_last_hidden = True

    def _log_depths(self, mask, stats: dict[int, TokenStats]) -> None:
        per_depth = {}
        for n in self.depths:
            per_depth[f"soft/loss_L{n}"] = -stats[n].log_probs
            per_depth[f"soft/acc_L{n}"] = stats[n].is_top1
        per_depth["soft/loss_mean"] = sum(
            w * per_depth[f"soft/loss_L{n}"] for n, w in zip(self.depths, self.depth_weights, strict=True)
        )
        full = stats[self.num_layers]
        self.log_token_means(mask, entropy=full.entropy, mean_token_accuracy=full.is_top1, **per_depth)


def _rows(stats: TokenStats, start: int, stop: int) -> TokenStats:
    values = (getattr(stats, f.name) for f in dataclasses.fields(stats))
    return TokenStats(*(None if v is None else v[start:stop] for v in values))


def extra_head_forwards(config: SoFTConfig, model: torch.nn.Module) -> float:
    """SoFT's cost over SFT in units of one no-grad forward: |B| - 1 extra head projections, each a forward and a
    backward (about 3 head matmuls)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    num_depths = len(config.depths_for(len(decoder_layers(base)))[0])
    return (num_depths - 1) * 3 * head_share(model)
