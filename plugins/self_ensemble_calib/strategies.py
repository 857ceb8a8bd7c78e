"""The card's ensembling strategies: K per-variant label distributions -> one prediction and its confidence."""

from __future__ import annotations

from typing import Literal

import torch

Strategy = Literal["max", "mean", "vote"]
STRATEGIES: tuple[str, ...] = ("max", "mean", "vote")
VARIATIONS: tuple[str, ...] = ("ic", "prompt", "both")


def label_distributions(label_logprobs: torch.Tensor) -> torch.Tensor:
    """p_k(c) = softmax over the label set of l_k(c) (the verbalizers' summed log-probs), in float64: confidence is
    normalised over the labels only, never over the vocabulary."""
    return torch.softmax(label_logprobs.to(torch.float64), dim=-1)


def ensemble(
    p: torch.Tensor, strategy: str = "max", renormalize: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prediction, confidence, distribution) from `p` of shape (..., K, C).

    - vote: y = the class most variants put first (ties to the higher mean probability), conf = mean_k p_k(y);
      distribution = mean_k p_k.
    - mean: pbar = mean_k p_k, y = argmax pbar, conf = pbar(y); distribution = pbar.
    - max: m(c) = max_k p_k(c), y = argmax m, conf = m(y) (m(y) / sum_c m(c) with `renormalize`); distribution =
      m / sum_c m (what Brier and NLL are computed on, as m itself does not sum to 1).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if p.dim() < 2:
        raise ValueError(f"p must have shape (..., K, C), got {tuple(p.shape)}")
    mean = p.mean(dim=-2)
    if strategy == "max":
        m = p.max(dim=-2).values
        distribution = m / m.sum(dim=-1, keepdim=True)
        pred = m.argmax(dim=-1)
        conf = (distribution if renormalize else m).gather(-1, pred.unsqueeze(-1)).squeeze(-1)
        return pred, conf, distribution
    if strategy == "mean":
        pred = mean.argmax(dim=-1)
    else:
        first = p.argmax(dim=-1, keepdim=True)
        votes = torch.zeros_like(p).scatter_(-1, first, 1.0).sum(dim=-2)
        pred = (votes * 2 + mean).argmax(dim=-1)  # mean <= 1 < 2: it only breaks ties between vote counts
    return pred, mean.gather(-1, pred.unsqueeze(-1)).squeeze(-1), mean
