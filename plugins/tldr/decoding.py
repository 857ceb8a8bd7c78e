"""TLDR's inference-time intervention (arXiv:2505.07961), as `transformers` logits processors.

- `ThinkStopTemperatureProcessor`: during the thinking phase only (before the end-of-think marker e is emitted),
  rescale the logit of e with a temperature τ_stop (card, ours):
      logits'_e = logits_e / τ_stop  if logits_e >= 0  else  logits_e · τ_stop
  a monotone boost of e for τ_stop < 1 and a suppression for τ_stop > 1; other logits unchanged; a row whose marker
  has been emitted is left alone. Mode "global" divides all logits of a thinking row by τ_stop instead (standard
  temperature, for comparison).
- `BudgetForcingProcessor`: the s1 baseline: once a row has generated B thinking tokens, force e.

The marker may be several tokens (SmolLM2 spells "</think>" as "</", "think", ">"): temperature scaling acts on the
marker token that comes next (the first one, or the one continuing a marker the row has started, so that a boosted
"</" goes on to "think"), budget forcing forces all of them in turn, and a row leaves the thinking phase once the whole marker has
been generated. Thinking is counted from the first generated token, so prompts should open the thinking block (or
let the model open it). State is per row and per `generate` call: build one processor per call (`trl-ext generate`
does); a processor also resets itself when it sees a new call (another batch size or sequence length).

These cannot go through `GRPOConfig.generation_kwargs`: GRPOTrainer builds a `transformers.GenerationConfig` from
those, and GenerationConfig refuses a `logits_processor` argument (it must be passed to `generate()` itself). They are
for evaluation and `trl-ext generate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from transformers import LogitsProcessor

MODES = ("stop", "global")


def scale_stop_logit(logit: torch.Tensor, tau_stop: float) -> torch.Tensor:
    """The card's rescaling of the end-of-think logit: divide by τ when >= 0, multiply by τ when < 0."""
    return torch.where(logit >= 0, logit / tau_stop, logit * tau_stop)


def _marker(end_think_token_id: int | Sequence[int]) -> list[int]:
    ids = [end_think_token_id] if isinstance(end_think_token_id, int) else list(end_think_token_id)
    if not ids or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
        raise ValueError(f"end_think_token_id={end_think_token_id!r} must be a token id or a non-empty list of them")
    return ids


class _ThinkingRows(LogitsProcessor):
    """Per-row thinking state across the steps of one `generate` call."""

    def __init__(self, end_think_token_id: int | Sequence[int]):
        self.marker = _marker(end_think_token_id)
        self.reset()

    def reset(self) -> None:
        self.prompt_length: int | None = None
        self.last_length: int | None = None
        self.done: torch.Tensor | None = None

    def _update(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Rows still thinking (a bool per row), after taking in the token generated last."""
        batch, length = input_ids.shape
        if self.done is None or self.done.shape[0] != batch or length != (self.last_length or 0) + 1:
            self.prompt_length, self.done = length, torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        self.last_length = length
        k = len(self.marker)
        if length - self.prompt_length >= k:
            marker = torch.tensor(self.marker, device=input_ids.device)
            self.done |= (input_ids[:, -k:] == marker).all(dim=1)
        return ~self.done

    def next_marker_token(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per row, the marker token that would continue the marker: `marker[j]` for the longest j < len(marker) such
        that the row's last j generated tokens are `marker[:j]` (the first token when none match)."""
        target = torch.full((input_ids.shape[0],), self.marker[0], dtype=torch.long, device=input_ids.device)
        matched = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for j in range(len(self.marker) - 1, 0, -1):
            if self.generated(input_ids) < j:
                continue
            prefix = torch.tensor(self.marker[:j], device=input_ids.device)
            hit = (input_ids[:, -j:] == prefix).all(dim=1) & ~matched
            target[hit] = self.marker[j]
            matched |= hit
        return target

    def generated(self, input_ids: torch.Tensor) -> int:
        return input_ids.shape[1] - (self.prompt_length or input_ids.shape[1])


class ThinkStopTemperatureProcessor(_ThinkingRows):
    """Temperature scaling of the end-of-think decision while a row is thinking (see the module docstring)."""

    def __init__(
        self, end_think_token_id: int | Sequence[int], tau_stop: float = 1.0, mode: Literal["stop", "global"] = "stop"
    ):
        if not isinstance(tau_stop, (int, float)) or isinstance(tau_stop, bool) or not math.isfinite(tau_stop):
            raise ValueError(f"tau_stop={tau_stop!r} must be a finite number > 0")
        if tau_stop <= 0:
            raise ValueError(f"tau_stop={tau_stop!r} must be a finite number > 0")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(MODES)}")
        super().__init__(end_think_token_id)
        self.tau_stop, self.mode = float(tau_stop), mode

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        thinking = self._update(input_ids)
        if self.tau_stop == 1.0 or not thinking.any():
            return scores
        scores = scores.clone()
        if self.mode == "global":
            scores[thinking] = scores[thinking] / self.tau_stop
        else:
            rows = thinking.nonzero().squeeze(1)
            e = self.next_marker_token(input_ids)[rows]
            scores[rows, e] = scale_stop_logit(scores[rows, e], self.tau_stop)
        return scores


class BudgetForcingProcessor(_ThinkingRows):
    """s1's budget forcing: a row that has generated `budget` thinking tokens gets the end-of-think marker forced."""

    def __init__(self, budget: int, end_think_token_id: int | Sequence[int]):
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise ValueError(f"budget={budget!r} must be an integer >= 0")
        super().__init__(end_think_token_id)
        self.budget = budget

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        thinking = self._update(input_ids)
        forced = self.generated(input_ids) - self.budget  # marker tokens forced so far
        if forced < 0 or forced >= len(self.marker) or not thinking.any():
            return scores
        scores = scores.clone()
        token = self.marker[forced]
        scores[thinking] = -math.inf
        scores[thinking, token] = 0.0
        return scores


# --- factories registered as logits processors (trl-ext generate --logits_processors NAME:key=value) ---------------
def end_think_ids(tokenizer: Any = None, end_think: str = "</think>", end_think_token_id: Any = None) -> list[int]:
    """The marker's token ids: `end_think_token_id` when given, else `end_think` encoded by the tokenizer."""
    if end_think_token_id is not None:
        return _marker(end_think_token_id)
    if tokenizer is None:
        raise ValueError("give end_think_token_id, or a tokenizer to encode end_think with")
    ids = tokenizer.encode(end_think, add_special_tokens=False)
    if not ids:
        raise ValueError(f"end_think={end_think!r} encodes to no tokens")
    return list(ids)


def think_stop_temperature(
    tokenizer: Any = None,
    tau_stop: float = 1.0,
    mode: Literal["stop", "global"] = "stop",
    end_think: str = "</think>",
    end_think_token_id: Any = None,
) -> ThinkStopTemperatureProcessor:
    return ThinkStopTemperatureProcessor(end_think_ids(tokenizer, end_think, end_think_token_id), tau_stop, mode)


def budget_forcing(
    tokenizer: Any = None, budget: int = 256, end_think: str = "</think>", end_think_token_id: Any = None
) -> BudgetForcingProcessor:
    return BudgetForcingProcessor(budget, end_think_ids(tokenizer, end_think, end_think_token_id))
