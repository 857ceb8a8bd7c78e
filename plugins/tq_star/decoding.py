"""Transfer Q* decoding (arXiv:2405.20495) as a `transformers` logits processor.

Per step t, inside the reference (SFT) model's own `generate` (card, Algorithm):
  1. Z = top-k tokens of pi_sft(.|s_t), l(z) = log pi_sft(z|s_t);
  2. tau_z = greedy continuation of [s_t, z] by the aligned baseline rho_BL for H tokens (stops at EOS);
  3. direct:   Qhat(s_t, z) = r(x, [y_<t, z, tau_z])
     indirect: Qhat(s_t, z) = exp((r - r_BL) / beta_w) * r   (the trajectory importance weight rho*/rho_BL);
  4. score(z) = l(z) + alpha * Qhat(s_t, z), -inf outside Z;
  5. `generate` picks y_t: greedy = argmax score, sampling = softmax(score / temperature) over Z (its temperature
     warper runs after user processors).
The k rollouts of every unfinished row are batched (`batch_candidates` sequences per baseline `generate`, each with its
KV cache). With rescoring disabled (alpha = 0 or no reward) the processor only masks to the top-k logits, unshifted,
so decoding is token for token `generate(top_k=k)`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor

from trl_ext.inference.generation import cut_at_stop, stop_token_ids

RewardFn = Callable[..., Sequence[float | None]]
TRANSFERS = ("direct", "indirect")
MODES = ("greedy", "sample")


def transfer_scores(logprobs: torch.Tensor, q: torch.Tensor, alpha: float) -> torch.Tensor:
    """Step 4: score(z) = l(z) + alpha * Qhat(s_t, z)."""
    return logprobs + alpha * q


def indirect_q(
    reward: torch.Tensor, baseline_reward: torch.Tensor, importance_beta: float = 2.0, exponent_clip: float = 20.0
) -> torch.Tensor:
    """Step 3, indirect transfer: exp((r - r_BL) / beta_w) * r in float64 with the exponent clipped to
    [-exponent_clip, exponent_clip] (card pitfall: the weight overflows otherwise). beta_w = 2 is the official
    exp(0.5 * delta)."""
    r = reward.double()
    exponent = ((r - baseline_reward.double()) / importance_beta).clamp(-exponent_clip, exponent_clip)
    return torch.exp(exponent) * r


@dataclass
class Step:
    """One decoding step of one row: the candidates Z, their l(z), Qhat and score (all in candidate order)."""

    candidates: list[int]
    logprobs: list[float]
    q: list[float]
    scores: list[float]

    def decoding_logprob(self, token: int, temperature: float = 1.0) -> float:
        """log of softmax(score / temperature) over Z at `token` (-inf outside Z)."""
        if token not in self.candidates:
            return -math.inf
        values = torch.tensor(self.scores, dtype=torch.float64) / temperature
        return float(values.log_softmax(-1)[self.candidates.index(token)])


@dataclass
class _Call:
    """State of one `generate` call: where its prompts end, their left padding, and the trace per row."""

    prompt_length: int
    prompt_mask: torch.Tensor  # (batch, prompt_length): 0 on the left padding
    steps: list[list[Step | None]] = field(default_factory=list)  # per row, per generated position
    last_length: int = 0
    prefix_mask: Any = None  # (batch, length of s_t): the attention mask the cache was built with
    cache: Any = None  # the baseline's KV cache over s_t for every row, advanced one token per step
    cached_length: int = 0


class TransferQStarProcessor(LogitsProcessor):
    """Transfer Q* rescoring of the top-k candidates of the model running `generate` (the SFT model, pi_sft).

    Args:
        baseline_model: rho_BL, the aligned model that continues each candidate (same tokenizer). It may be the
            model running `generate` itself (the official scripts' pi_sft = rho_BL).
        reward_fn: r, a reward with TRL's signature `(prompts, completions) -> floats`, given the decoded prompt and
            the decoded response so far + z + tau_z. None disables rescoring.
        tokenizer: the shared tokenizer (decodes text for the reward; its pad/EOS ids mark padding and the end).
        alpha, top_k, horizon: the decoding strength, k and H.
        transfer: "direct" or "indirect"; indirect needs `baseline_reward_fn` (r_BL) or `dpo_beta` with
            `sft_model` (r_BL = dpo_beta * log rho_BL(y|x) / pi_sft(y|x), on the chunked LM head).
        importance_beta, exponent_clip: beta_w and the clip of the indirect exponent.
        batch_candidates: rollouts per baseline `generate` call (the k candidates of several rows are batched).
        skip_special_tokens: decode rollouts without special tokens before the reward (the official code keeps them).
        prompt_attention_mask: the batch's attention mask over its prompts; inferred from the left padding (the
            leading run of pad ids) when not set. `generate()` of this module sets it.
        progress: a progress bar over the decoding steps of each `generate` call.
    """

    def __init__(
        self,
        baseline_model: Any,
        reward_fn: RewardFn | None,
        tokenizer: Any,
        alpha: float = 1.0,
        top_k: int = 10,
        horizon: int = 20,
        transfer: Literal["direct", "indirect"] = "direct",
        baseline_reward_fn: RewardFn | None = None,
        dpo_beta: float | None = None,
        sft_model: Any = None,
        importance_beta: float = 2.0,
        exponent_clip: float = 20.0,
        batch_candidates: int = 10,
        skip_special_tokens: bool = True,
        prompt_attention_mask: torch.Tensor | None = None,
        progress: bool = False,
    ):
        check_settings(alpha, top_k, horizon, transfer, batch_candidates, importance_beta)
        if transfer == "indirect" and baseline_reward_fn is None and (dpo_beta is None or sft_model is None):
            raise ValueError(
                "transfer='indirect' needs r_BL: a baseline_reward, or dpo_beta (the implicit DPO reward, computed "
                "with the SFT model)"
            )
        if dpo_beta is not None and dpo_beta <= 0:
            raise ValueError(f"dpo_beta must be > 0, got {dpo_beta}")
        self.baseline_model = baseline_model
        self.reward_fn = reward_fn
        self.tokenizer = tokenizer
        self.alpha = float(alpha)
        self.top_k = int(top_k)
        self.horizon = int(horizon)
        self.transfer = transfer
        self.baseline_reward_fn = baseline_reward_fn
        self.dpo_beta = dpo_beta
        self.sft_model = sft_model
        self.importance_beta = float(importance_beta)
        self.exponent_clip = float(exponent_clip)
        self.batch_candidates = int(batch_candidates)
        self.skip_special_tokens = skip_special_tokens
        self.prompt_attention_mask = prompt_attention_mask
        self.progress = progress
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = stop_token_ids(baseline_model, tokenizer)
        self.call: _Call | None = None
        self._bar: Any = None
        self.rollouts = 0  # baseline continuations run, for cost accounting

    @property
    def rescoring(self) -> bool:
        return self.reward_fn is not None and self.alpha != 0.0

    # --- the processor -------------------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        call = self._call_for(input_ids)
        k = min(self.top_k, scores.shape[-1])
        top_logits, candidates = scores.topk(k, dim=-1)
        logprobs = scores.float().log_softmax(-1).gather(-1, candidates)
        out = torch.full_like(scores, -math.inf)
        rows = self._unfinished_rows(input_ids, call)
        q = torch.zeros_like(logprobs, dtype=torch.float64)
        if not self.rescoring or not rows:
            # Unshifted logits on Z: decoding is then exactly generate(top_k=k), greedy or sampled.
            out.scatter_(-1, candidates, top_logits)
            step_scores = logprobs.double()
        else:
            call.prefix_mask = self._advance_prefix(input_ids, call)
            q[rows] = self.estimate_q(input_ids[rows], candidates[rows], call, rows).to(q.device)
            step_scores = transfer_scores(logprobs.double(), q, self.alpha)  # finished rows: q = 0, padded anyway
            out.scatter_(-1, candidates, step_scores.to(scores.dtype))
        position = input_ids.shape[1] - call.prompt_length
        for i, steps in enumerate(call.steps):
            steps.extend([None] * (position + 1 - len(steps)))
            if i in rows:
                steps[position] = Step(
                    candidates[i].tolist(), logprobs[i].tolist(), q[i].tolist(), step_scores[i].tolist()
                )
        call.last_length = input_ids.shape[1]
        if self._bar is not None:
            self._bar.update(1)
        return out

    def _call_for(self, input_ids: torch.Tensor) -> _Call:
        """The state of this `generate` call; a new one when the batch or length says a new call began."""
        call = self.call
        if (
            call is not None
            and input_ids.shape[0] == call.prompt_mask.shape[0]
            and input_ids.shape[1] == (call.last_length + 1)
        ):
            return call
        length = input_ids.shape[1]
        mask = self.prompt_attention_mask
        if mask is None or tuple(mask.shape) != (input_ids.shape[0], length):
            mask = _left_padding_mask(input_ids, self.pad_id)
        self.call = _Call(length, mask.to("cpu").long(), [[] for _ in range(input_ids.shape[0])], length - 1)
        if self._bar is not None:
            self._bar.close()
        self._bar = tqdm(desc="tq_star steps", unit="tok", leave=False) if self.progress else None
        return self.call

    def _unfinished_rows(self, input_ids: torch.Tensor, call: _Call) -> list[int]:
        generated = input_ids[:, call.prompt_length :].tolist()
        return [i for i, ids in enumerate(generated) if not any(t in self.stop_ids for t in ids)]

    # --- Q estimation --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def estimate_q(self, input_ids: torch.Tensor, candidates: torch.Tensor, call: _Call, rows: list[int]):
        """Qhat(s_t, z) for each row's candidates, (rows, k) in float64: steps 2 and 3 of the card."""
        n_rows, k = candidates.shape
        sequences = torch.cat([input_ids.repeat_interleave(k, 0), candidates.reshape(-1, 1)], dim=1).cpu()
        prompt_mask = call.prompt_mask[rows].repeat_interleave(k, 0)
        taus = self._rollouts(call, torch.tensor(rows).repeat_interleave(k), candidates.reshape(-1).cpu())
        generated = sequences[:, call.prompt_length :].tolist()
        responses = [cut_at_stop(y + tau, self.stop_ids) for y, tau in zip(generated, taus, strict=True)]
        prompt_texts = [
            self.tokenizer.decode(ids[m.bool()].tolist(), skip_special_tokens=False)
            for ids, m in zip(sequences[:, : call.prompt_length], prompt_mask, strict=True)
        ]
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=self.skip_special_tokens)
        reward = _as_tensor(self.reward_fn(prompts=prompt_texts, completions=texts), "reward")
        if self.transfer == "direct":
            q = reward
        else:
            if self.baseline_reward_fn is not None:
                baseline = _as_tensor(self.baseline_reward_fn(prompts=prompt_texts, completions=texts), "r_BL")
            else:
                baseline = self._implicit_reward(sequences, prompt_mask, responses, call.prompt_length)
            q = indirect_q(reward, baseline, self.importance_beta, self.exponent_clip)
        return q.reshape(n_rows, k)

    def _advance_prefix(self, input_ids: torch.Tensor, call: _Call) -> torch.Tensor:
        """Bring the baseline's KV cache over s_t up to date (the tokens since the last step, for every row) and
        return the attention mask of s_t."""
        from trl_ext.compat.models import backbone, backbone_forward_with_cache

        length = input_ids.shape[1]
        mask = torch.cat(
            [call.prompt_mask, call.prompt_mask.new_ones(input_ids.shape[0], length - call.prompt_length)], 1
        )
        if call.cached_length < length:
            device = self.baseline_model.device
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            _, call.cache = backbone_forward_with_cache(
                backbone(self.baseline_model),
                call.cache,
                input_ids=input_ids[:, call.cached_length :].to(device),
                attention_mask=mask.to(device),
                position_ids=positions[:, call.cached_length :].to(device),
            )
            call.cached_length = length
        return mask

    def _rollouts(self, call: _Call, row_of: torch.Tensor, z: torch.Tensor) -> list[list[int]]:
        """tau_z for each (row, z): the baseline's greedy continuation of [s_t, z], `horizon` tokens at most, cut
        after its first stop token (empty when z itself ends the text). The cached s_t is shared by the row's k
        candidates; chunks of `batch_candidates` continuations decode together, one token per forward."""
        from trl_ext.compat.models import backbone, backbone_forward_with_cache

        if self.horizon == 0:
            return [[] for _ in range(len(z))]
        model, device = self.baseline_model, self.baseline_model.device
        head = model.get_output_embeddings()
        prefix_mask = call.prefix_mask
        taus: list[list[int]] = []
        for start in range(0, len(z), self.batch_candidates):
            index = row_of[start : start + self.batch_candidates]
            tokens = z[start : start + self.batch_candidates, None].to(device)
            cache = copy.deepcopy(call.cache)
            cache.batch_select_indices(index.to(device))
            mask = prefix_mask[index].to(device)
            done = torch.tensor([t in self.stop_ids for t in tokens[:, 0].tolist()], device=device)
            chunk: list[list[int]] = [[] for _ in range(len(index))]
            for _ in range(self.horizon):
                if bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones(len(index), 1)], dim=1)
                hidden, cache = backbone_forward_with_cache(
                    backbone(model), cache, input_ids=tokens, attention_mask=mask, position_ids=mask.sum(-1, True) - 1
                )
                tokens = head(hidden[:, -1:]).argmax(-1)
                for i, (token, finished) in enumerate(zip(tokens[:, 0].tolist(), done.tolist(), strict=True)):
                    if not finished:
                        chunk[i].append(token)
                done |= torch.tensor([t in self.stop_ids for t in tokens[:, 0].tolist()], device=device)
            taus.extend(chunk)
            self.rollouts += len(index)
        return taus

    def _implicit_reward(
        self, sequences: torch.Tensor, prompt_mask: torch.Tensor, responses: list[list[int]], prompt_length: int
    ) -> torch.Tensor:
        """r_BL = dpo_beta * (log rho_BL(y|x) - log pi_sft(y|x)) on the response tokens, chunked LM head."""
        from trl_ext.inference.scoring import token_logprobs

        full, targets = [], []
        for ids, m, response in zip(
            sequences[:, :prompt_length].tolist(), prompt_mask.tolist(), responses, strict=True
        ):
            prompt = [t for t, keep in zip(ids, m, strict=True) if keep]
            full.append(prompt + response)
            targets.append([0] * len(prompt) + [1] * len(response))
        sums = []
        for model in (self.baseline_model, self.sft_model):
            per_token = token_logprobs(model, full, targets, pad_id=self.pad_id, batch_size=self.batch_candidates)
            sums.append(torch.tensor([float(sum(v)) for v in per_token], dtype=torch.float64))
        return self.dpo_beta * (sums[0] - sums[1])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def check_settings(
    alpha: float, top_k: int, horizon: int, transfer: str, batch_candidates: int, importance_beta: float
) -> None:
    """Refuse a setting outside the card's ranges, naming it."""
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
    if batch_candidates < 1:
        raise ValueError(f"batch_candidates must be >= 1, got {batch_candidates}")
    if not importance_beta > 0:
        raise ValueError(f"importance_beta must be > 0, got {importance_beta}")


def _as_tensor(values: Sequence[float | None], what: str) -> torch.Tensor:
    if any(v is None for v in values):
        raise ValueError(f"the {what} returned None for a rollout; tq_star needs a score for every candidate")
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def _left_padding_mask(input_ids: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """0 on each row's leading run of pad ids (left padding), 1 after."""
    if pad_id is None:
        return torch.ones_like(input_ids)
    return (input_ids != pad_id).long().cummax(dim=1).values
