"""LTA-Thinker's two auxiliary losses and its "variance" diagnostic, as plain functions of the thought generator's
output H (B, La, d) and the index columns, so the card's hand cases can be checked directly. Computed in float32
(the official projection runs in bf16; see README's Fidelity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Logit of a padded step (official: -1e9), so it never takes part in the softmax.
MASKED_LOGIT = -1e9


def rows_at(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`states[b, index[b, ...]]`: (B, La, d) at (B, n) positions -> (B, n, d)."""
    return states.gather(1, index.unsqueeze(-1).expand(*index.shape, states.size(-1)))


def semantic_alignment_kl(
    states: torch.Tensor, question_index: torch.Tensor, thought_start: torch.Tensor, num_thoughts: int
) -> torch.Tensor:
    """L_kl (card): per sample p = softmax(H[q]) and q_j = softmax(H[a0 + j]) over the hidden dims,
    KL_j = sum_h p_h (log p_h - log q_jh); the mean over the K thoughts, then over the samples."""
    states = states.float()
    offsets = torch.arange(num_thoughts, device=states.device)
    log_p = F.log_softmax(rows_at(states, question_index[:, None]), dim=-1)  # (B, 1, d)
    log_q = F.log_softmax(rows_at(states, thought_start[:, None] + offsets), dim=-1)  # (B, K, d)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, K)
    return kl.mean()


def reasoning_focus_infonce(
    states: torch.Tensor,
    question_index: torch.Tensor,
    step_index: torch.Tensor,
    answer_embedding: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_con (card) and its accuracy. z_i = normalize(H[s_i]) over the valid steps (index 0 is padding); the positive
    is the step most similar to the mean answer embedding u (no gradient); logits_i = cos(H[q], z_i) / tau; CE.
    Returns (mean CE over samples with at least one step, (B,) bool: argmax logits == positive). A batch without any
    step gives a zero that keeps the graph."""
    states = states.float()
    valid = step_index > 0  # (B, S)
    z = F.normalize(rows_at(states, step_index), dim=-1)  # (B, S, d)
    with torch.no_grad():
        u = F.normalize(answer_embedding.float(), dim=-1)
        similarity = (z * u[:, None]).sum(-1).masked_fill(~valid, float("-inf"))
        positive = similarity.argmax(-1)
    h_q = F.normalize(rows_at(states, question_index[:, None]), dim=-1)  # (B, 1, d)
    logits = ((h_q * z).sum(-1) / temperature).masked_fill(~valid, MASKED_LOGIT)
    has_steps = valid.any(-1)
    correct = (logits.argmax(-1) == positive) & has_steps
    if not has_steps.any():
        return states.sum() * 0.0, correct
    loss = F.cross_entropy(logits[has_steps], positive[has_steps])
    return loss, correct


def thought_variance(states: torch.Tensor, thought_start: torch.Tensor, num_thoughts: int) -> torch.Tensor:
    """lta/thought_var: per sample, the variance of each hidden dim over the K thought rows (population variance),
    averaged over dims, then over samples: the paper's motivating "variance" of the latent thoughts."""
    offsets = torch.arange(num_thoughts, device=states.device)
    thoughts = rows_at(states.detach().float(), thought_start[:, None] + offsets)  # (B, K, d)
    return thoughts.var(dim=1, unbiased=False).mean()
