"""SoFT's sub-models at inference: the first n layers + the model's own final norm and LM head.

`truncate_to_submodel` builds sub-model n as a model object that shares every weight with the full model (no copy,
no new parameters), so it generates with its own KV cache and can serve as the draft model of HF assisted
decoding (self-speculative decoding). `early_exit_generate` runs fixed-depth early exit, or the paper's
instance-aware dynamic inference (each token stops at the first depth whose top probability reaches its threshold).
`depth_nll` scores held-out completions at every depth from one forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trl_ext.compat.models import backbone, shallow_module_copy
from trl_ext.inference.scoring import tokenize_pair
from trl_ext.losses.token_loss import LMHead, fused_token_loss

# The paper's thresholds for LLaMA-2-13B (40 layers); tokens not confident by depth 36 use the full model.
PAPER_THRESHOLDS = {12: 0.95, 16: 0.95, 20: 0.9, 24: 0.9, 28: 0.8, 32: 0.8, 36: 0.7}

_LAYER_NAMES = ("layers", "h", "blocks")
_NORM_NAMES = ("norm", "final_layernorm", "ln_f", "norm_f")


def _child_name(parent: torch.nn.Module, names: Sequence[str], what: str) -> str:
    for name in names:
        if isinstance(dict(parent.named_children()).get(name), torch.nn.Module):
            return name
    raise ValueError(
        f"{type(parent).__name__} has no {what} under any of {', '.join(names)}: SoFT needs a decoder "
        "with one list of layers and one final norm (Llama, Mistral, Qwen, SmolLM families)."
    )


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of a causal LM, in order."""
    decoder = backbone(model)
    return decoder.get_submodule(_child_name(decoder, _LAYER_NAMES, "decoder layers"))


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm applied after the last decoder layer, shared by every sub-model."""
    decoder = backbone(model)
    return decoder.get_submodule(_child_name(decoder, _NORM_NAMES, "final norm"))


def truncate_to_submodel(model: torch.nn.Module, n: int) -> torch.nn.Module:
    """Sub-model n: the first `n` decoder layers, then the model's own final norm and LM head.

    Every weight is shared with `model` (training one trains the other); `model` itself is unchanged. The copy's
    config says `num_hidden_layers = n`, so `generate` sizes its KV cache for n layers. Pass a plain
    `PreTrainedModel` (merge PEFT adapters first).
    """
    layers = decoder_layers(model)
    if not 1 <= n <= len(layers):
        raise ValueError(f"n={n} must be between 1 and the model's {len(layers)} layers.")
    decoder = backbone(model)
    decoder_name = next(name for name, child in model.named_children() if child is decoder)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = n
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types)[:n]
    inner = shallow_module_copy(decoder)
    setattr(inner, _child_name(decoder, _LAYER_NAMES, "decoder layers"), torch.nn.ModuleList(list(layers)[:n]))
    inner.config = config
    outer = shallow_module_copy(model)
    setattr(outer, decoder_name, inner)
    outer.config = config
    if getattr(model, "generation_config", None) is not None:
        outer.generation_config = copy.deepcopy(model.generation_config)
    return outer


@dataclass
class EarlyExitOutput:
    """`sequences` [B, T + new] (prompt then generated ids, padded after EOS) and `exit_depths` [B, new]: the depth
    each generated token came from (0 after a row's EOS)."""

    sequences: torch.Tensor
    exit_depths: torch.Tensor

    @property
    def mean_depth(self) -> float:
        used = self.exit_depths[self.exit_depths > 0]
        return float(used.float().mean()) if used.numel() else 0.0


@torch.no_grad()
def early_exit_generate(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    exit: int | Mapping[int, float],
    *,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 32,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> EarlyExitOutput:
    """Greedy generation from sub-models of a SoFT model (prompts left-padded).

    `exit=n`: every token from sub-model n (`truncate_to_submodel(model, n).generate`, with its KV cache).
    `exit={depth: threshold}`: instance-aware dynamic inference. For each token the sub-models are read in increasing
    depth and the first whose largest softmax probability is >= its threshold emits the token; otherwise the full
    model does. This path recomputes the whole prefix at every step (no KV cache), so it gives the tokens and exit
    depths of dynamic inference exactly, but no speed-up: a fast version needs per-depth KV-cache handling.
    """
    was_training = model.training
    model.eval()
    try:
        num_layers = len(decoder_layers(model))
        config = model.config
        eos = config.eos_token_id if eos_token_id is None else eos_token_id
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        pad = (
            pad_token_id
            if pad_token_id is not None
            else (config.pad_token_id if config.pad_token_id is not None else eos)
        )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if isinstance(exit, int):
            sub = model if exit == num_layers else truncate_to_submodel(model, exit)
            sequences = sub.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=pad,
            )
            new = sequences[:, input_ids.shape[1] :]
            after_eos = (new == eos).long().cumsum(-1) - (new == eos).long() > 0
            depths = torch.full_like(new, exit).masked_fill(after_eos, 0)
            return EarlyExitOutput(sequences, depths)
        return _dynamic_exit(model, input_ids, attention_mask, dict(exit), num_layers, max_new_tokens, eos, pad)
    finally:
        model.train(was_training)


def _dynamic_exit(model, input_ids, attention_mask, thresholds, num_layers, max_new_tokens, eos, pad):
    head, norm = LMHead.of(model), final_norm(model)
    depths = sorted(d for d in thresholds if 1 <= d < num_layers)
    ids, mask = input_ids, attention_mask
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    exit_depths = []
    for _ in range(max_new_tokens):
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding, as generate() derives them
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            output_hidden_states=True,
            logits_to_keep=1,
            use_cache=False,
        )
        token = out.logits[:, -1].argmax(-1)
        depth = torch.full_like(token, num_layers)
        decided = torch.zeros_like(finished)
        for d in depths:
            z, _ = head.capped(head.logits(norm(out.hidden_states[d][:, -1])))
            confidence, choice = torch.softmax(z, dim=-1).max(-1)
            take = ~decided & (confidence >= thresholds[d])
            token = torch.where(take, choice, token)
            depth = torch.where(take, torch.full_like(depth, d), depth)
            decided |= take
        token = token.masked_fill(finished, pad)
        exit_depths.append(depth.masked_fill(finished, 0))
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, (~finished).long()[:, None].to(mask.dtype)], dim=1)
        finished |= token == eos
        if bool(finished.all()):
            break
    return EarlyExitOutput(ids, torch.stack(exit_depths, dim=1))


@torch.no_grad()
def depth_nll(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    depths: Sequence[int],
    batch_size: int = 8,
) -> dict[int, float]:
    """Token-mean NLL of reference completions under each sub-model in `depths`, teacher-forced, from one forward
    pass per batch (the held-out loss of sub-model n; exp of it is its perplexity)."""
    num_layers = len(decoder_layers(model))
    head, norm = LMHead.of(model), final_norm(model)
    pairs = [tokenize_pair(tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)]
    totals, count = dict.fromkeys(depths, 0.0), 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            width = max(len(seq) for seq, _ in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
            attn = torch.zeros_like(ids)
            scored = torch.zeros_like(ids, dtype=torch.bool)
            for row, (seq, completion_mask) in enumerate(chunk):
                ids[row, : len(seq)], attn[row, : len(seq)] = torch.tensor(seq), 1
                scored[row, : len(seq)] = torch.tensor(completion_mask, dtype=torch.bool)
            ids, attn, scored = ids.to(model.device), attn.to(model.device), scored.to(model.device)
            positions = scored[:, 1:]
            hidden = backbone(model)(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states
            targets = ids[:, 1:][positions]
            for n in depths:
                g = hidden[num_layers] if n == num_layers else norm(hidden[n])  # the last one is already normed
                _, stats = fused_token_loss(g[:, :-1][positions], head, targets, normalizer=1)
                totals[n] += -stats.log_probs.sum().item()
            count += int(positions.sum())
    finally:
        model.train(was_training)
    return {n: total / max(count, 1) for n, total in totals.items()}
