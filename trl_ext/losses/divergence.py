"""Token-level losses and statistics between a student's and a teacher's next-token distributions p and q, from both
models' hidden states and LM heads, in row chunks (no (batch, seq, vocab) logits):

- `hard_ce_loss`: -log p(argmax_v q(v)), cross-entropy on the teacher's greedy token;
- `sampled_reverse_kl_loss`: the sampled (policy-gradient) estimator of the reverse KL on the student's own tokens
  y_t ~ p: the detached advantage a_t = log q(y_t) - log p(y_t) weights -log p(y_t), whose expectation over y_t has
  the gradient of KL(p || q);
- `divergence_stats`: per-token reverse and forward KL, both entropies and top-1 agreement, without gradients.

The dense reverse/forward KL with gradients is TRL's `trl.kernels.chunked_divergence` (DistillationTrainer's loss).
Both heads apply their logit scale and soft-cap; `tempered` divides the logits by a temperature afterwards, as TRL's
divergence does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trl_ext.losses.distribution import default_chunk_rows, greedy_tokens, target_distribution_loss
from trl_ext.losses.token_loss import LMHead


def tempered(head: LMHead, temperature: float) -> LMHead:
    """`head` whose logits are divided by `temperature` (after its scale; a soft-capped head only at 1.0, since the
    temperature applies after the cap)."""
    if temperature == 1.0:
        return head
    if head.softcap is not None:
        raise ValueError(
            f"temperature {temperature} on a soft-capped LM head (final_logit_softcapping={head.softcap}) is not "
            "supported by this estimator: use temperature 1.0 or the full-distribution estimator."
        )
    return LMHead(head.weight, head.bias, head.logit_scale / temperature, None)


@dataclass
class DivergenceStats:
    """Detached per-token statistics over N positions, each [N] (nats)."""

    reverse_kl: torch.Tensor  # KL(p || q)
    forward_kl: torch.Tensor  # KL(q || p)
    student_entropy: torch.Tensor
    teacher_entropy: torch.Tensor
    top1_agreement: torch.Tensor  # argmax p == argmax q, as float


def divergence_stats(
    student_hidden: torch.Tensor,
    student_head: LMHead,
    teacher_hidden: torch.Tensor,
    teacher_head: LMHead,
    chunk_size: int | None = None,
) -> DivergenceStats:
    """Per-token KLs, entropies and top-1 agreement of p (student) and q (teacher) at N positions ([N, H] hidden
    states each), one row chunk at a time, without gradients."""
    n = student_hidden.shape[0]
    rows = chunk_size or default_chunk_rows(student_head.weight.shape[0])
    out = [torch.empty(n, device=student_hidden.device) for _ in range(5)]
    with torch.no_grad():
        for start in range(0, n, rows):
            sl = slice(start, min(start + rows, n))
            logp = torch.log_softmax(student_head.capped(student_head.logits(student_hidden[sl].detach()))[0], -1)
            logq = torch.log_softmax(teacher_head.capped(teacher_head.logits(teacher_hidden[sl].detach()))[0], -1)
            p, q = logp.exp(), logq.exp()
            out[0][sl] = (p * (logp - logq)).sum(-1)
            out[1][sl] = (q * (logq - logp)).sum(-1)
            out[2][sl] = -(p * logp).sum(-1)
            out[3][sl] = -(q * logq).sum(-1)
            out[4][sl] = (logp.argmax(-1) == logq.argmax(-1)).float()
    return DivergenceStats(*out)


def hard_ce_loss(
    student_hidden: torch.Tensor,
    student_head: LMHead,
    teacher_hidden: torch.Tensor,
    teacher_head: LMHead,
    *,
    normalizer: torch.Tensor | float,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sum_t -log p(argmax_v q_t(v) | s_t) / normalizer` over N positions (gradients reach the student only), and
    the student's detached entropy at each position [N]."""
    target, _ = greedy_tokens(teacher_hidden, teacher_head, chunk_size=chunk_size)
    ones = torch.ones(target.shape[0], 1, device=target.device)
    loss, stats = target_distribution_loss(
        student_hidden,
        student_head,
        lambda rows, _log_probs: (target[rows, None], ones[rows]),
        normalizer=normalizer,
        chunk_size=chunk_size,
    )
    return loss, stats.entropy


def sampled_reverse_kl_loss(
    student_hidden: torch.Tensor,
    student_head: LMHead,
    teacher_hidden: torch.Tensor,
    teacher_head: LMHead,
    tokens: torch.Tensor,
    *,
    normalizer: torch.Tensor | float,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled reverse-KL estimator on the student's own tokens `tokens` [N] (y_t ~ p):

        L = sum_t -a_t log p(y_t | s_t) / normalizer,   a_t = log q(y_t | s_t) - log p(y_t | s_t)  (detached)

    Its gradient is an unbiased estimate of the gradient of sum_t KL(p_t || q_t) / normalizer. The value returned
    is shifted by a constant to sum_t -a_t / normalizer (the k1 estimate of that KL), so the logged loss reads as a
    KL; the gradient is the policy-gradient one. Also returns the student's detached entropy at each position [N]."""
    _, log_q = greedy_tokens(teacher_hidden, teacher_head, labels=tokens, chunk_size=chunk_size)
    advantage = torch.empty_like(log_q)

    def targets(rows: slice, log_p: torch.Tensor):
        y = tokens[rows, None]
        advantage[rows] = log_q[rows] - log_p.gather(1, y)[:, 0]
        return y, advantage[rows, None]

    surrogate, stats = target_distribution_loss(
        student_hidden, student_head, targets, normalizer=normalizer, chunk_size=chunk_size
    )
    estimate = -advantage.sum() / torch.as_tensor(normalizer, dtype=torch.float32, device=advantage.device)
    return surrogate + (estimate - surrogate.detach()), stats.entropy
