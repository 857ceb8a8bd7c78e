"""UDS's scores, from last hidden states H and the LM head W, never from a full [B, T, V] logits tensor.

For sample i with rows H_i [N_i, d] and logits L_i = c H_i W^T [N_i, V]:
- intra score: ||L_i||_* = sum of the singular values of L_i. With the Gram matrix W^T W = U diag(s) U^T,
  L_i L_i^T = c^2 H_i W^T W H_i^T = (c H_i U s^1/2)(c H_i U s^1/2)^T, so sigma(L_i) = sigma(c H_i U s^1/2), an
  [N_i, d] matrix (the card's QR form W = QR, R^T R = W^T W, gives the same singular values).
- sketch: z_i = vec(A[:, :N_i] L_i B) = vec(A[:, :N_i] H_i E) with E = c W^T B [d, r2], A and B the real parts of
  the official code's subsampled randomized Fourier transforms over time and vocabulary (`sketch_matrices`).
- inter score: the mean L2 distance of z_i to the filled slots of a FIFO memory of selected sketches (0 when empty).
The "logits" path builds L_i one sample at a time (a head with a bias or soft-capping, where the Gram form is not
exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trl_ext.losses.token_loss import LMHead

FLOAT64_ELEMENTS = 1 << 22  # N_i * d at or below this: the SVD runs in float64
_FROM_WEIGHT = object()  # UDSScorer.score's default head_key: derived from the head weight tensor itself


def nuclear_norm(matrix: torch.Tensor) -> torch.Tensor:
    """Sum of the singular values of a 2-D matrix (0 for a matrix with no rows), in float64 when small."""
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        return torch.zeros((), dtype=torch.float64, device=matrix.device)
    wide = matrix.double() if matrix.numel() <= FLOAT64_ELEMENTS else matrix.float()
    return torch.linalg.svdvals(wide).sum().double()


def gram_factor(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """F [d, d] with (c H W^T)(c H W^T)^T = (H F)(H F)^T for any H: F = c U s^1/2 from W^T W = U diag(s) U^T.
    The Gram matrix is summed in W's precision (at least float32), factorised in float64."""
    w = weight.detach()
    w = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w
    gram = (w.T @ w).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    return scale * eigenvectors * eigenvalues.clamp(min=0).sqrt()


def _cos_matrix(n: int, idx: torch.Tensor) -> torch.Tensor:
    """[n, len(idx)] cos(2 pi t idx[k] / n), with t idx[k] reduced modulo n in integers first (exact angles)."""
    t = torch.arange(n, dtype=torch.int64)
    phase = (t[:, None] * idx[None, :].to(torch.int64)) % n
    return torch.cos(2 * math.pi * phase.double() / n)


def sketch_matrices(t_max: int, vocab: int, r_time: int, r_vocab: int, seed: int):
    """(A [r1, T_max], B [V, r2], d1, d2, idx1, idx2) of the bilinear sketch z = vec(A[:, :N] L B), drawn from a
    generator seeded with `seed` (signs d in {-1, +1}; indices with replacement):
    B[v, k] = d2[v] cos(2 pi v idx2[k] / V) sqrt(V / r2), A[k, t] = d1[t] cos(2 pi t idx1[k] / T_max) sqrt(T_max / r1).
    float64, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    d1 = torch.randint(0, 2, (t_max,), generator=gen).double() * 2 - 1
    d2 = torch.randint(0, 2, (vocab,), generator=gen).double() * 2 - 1
    idx1 = torch.randint(0, t_max, (r_time,), generator=gen)
    idx2 = torch.randint(0, vocab, (r_vocab,), generator=gen)
    b = d2[:, None] * _cos_matrix(vocab, idx2) * math.sqrt(vocab / r_vocab)
    a = (d1[:, None] * _cos_matrix(t_max, idx1) * math.sqrt(t_max / r_time)).T
    return a, b, d1, d2, idx1, idx2


def inter_scores(z: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """[b] mean L2 distance of each row of z [b, D] to the rows of `memory` [m, D]; zeros when m = 0."""
    if memory.shape[0] == 0:
        return torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    return torch.cdist(z.double(), memory.to(z.device).double()).mean(dim=1)


class SketchMemory:
    """A ring buffer of Q sketches: `push` writes rows at the pointer, which wraps; `filled` is the written slots."""

    def __init__(self, size: int, dim: int):
        if size < 1:
            raise ValueError(f"memory size {size} must be >= 1")
        self.slots = torch.zeros(size, dim, dtype=torch.float32)
        self.ptr = 0
        self.count = 0

    @property
    def size(self) -> int:
        return self.slots.shape[0]

    def push(self, rows: torch.Tensor) -> None:
        for row in rows.detach().to(self.slots):
            self.slots[self.ptr] = row
            self.ptr = (self.ptr + 1) % self.size
            self.count = min(self.count + 1, self.size)

    def filled(self) -> torch.Tensor:
        return self.slots[: self.count]

    def state_dict(self) -> dict:
        return {"slots": self.slots.clone(), "ptr": self.ptr, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["slots"].shape) != tuple(self.slots.shape):
            raise ValueError(
                f"saved UDS memory has shape {tuple(state['slots'].shape)}, this run's {tuple(self.slots.shape)}"
            )
        self.slots = state["slots"].to(self.slots).clone()
        self.ptr, self.count = int(state["ptr"]), int(state["count"])


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, highest first; ties go to the earlier row (a stable sort)."""
    return torch.argsort(-scores, stable=True)[: min(k, scores.shape[0])]


@dataclass
class SampleScores:
    intra: torch.Tensor  # [b] nuclear norms
    sketches: torch.Tensor  # [b, r1 * r2]


class UDSScorer:
    """Intra scores and sketches of the rows of a micro-batch, from backbone hidden states and an `LMHead`.

    `path`: "gram" (exact from H and W, a linear head without bias or soft-capping), "logits" (one sample's logits
    at a time) or "auto" (gram where exact). The Gram factor and c W^T B are cached while the head weight is
    frozen (LoRA that does not train the head: computed once; see `score`'s `head_key`)."""

    def __init__(self, t_max: int, vocab: int, r_time: int, r_vocab: int, seed: int, path: str = "auto"):
        self.t_max, self.vocab = t_max, vocab
        self.a, self.b, *_ = sketch_matrices(t_max, vocab, r_time, r_vocab, seed)
        self.path = path
        self._cache_key = None
        self._factor = self._e = None

    @staticmethod
    def gram_exact(head: LMHead) -> bool:
        return head.bias is None and head.softcap is None

    def resolve_path(self, head: LMHead) -> str:
        if self.path == "auto":
            return "gram" if self.gram_exact(head) else "logits"
        if self.path == "gram" and not self.gram_exact(head):
            raise ValueError(
                "uds_exact_path='gram' needs a linear LM head without bias or logit soft-capping; this model's head "
                "has "
                + ("a bias" if head.bias is not None else f"softcap={head.softcap}")
                + ". Use 'auto' or 'logits'."
            )
        return self.path

    def _gram_terms(self, head: LMHead, device, dtype, head_key):
        w = head.weight
        if head_key is _FROM_WEIGHT:
            # A trained head (full fine-tuning, tied embeddings) changes at every step, and optimizers' in-place
            # foreach updates need not bump the version counter: recompute it then; a frozen head (LoRA) is factorised
            # once, while its storage and version counter stay the same.
            head_key = None if w.requires_grad else (w.data_ptr(), w._version)
        key = None if head_key is None else (head_key, tuple(w.shape), w.dtype, device, dtype, head.logit_scale)
        if key is None or key != self._cache_key:
            factor = gram_factor(w, head.logit_scale)
            wd = w.detach()
            wd = wd.float() if wd.dtype in (torch.float16, torch.bfloat16) else wd  # float64 only for a float64 head
            e = head.logit_scale * (wd.T @ self.b.to(wd.device, wd.dtype))
            self._factor, self._e = factor.to(device, dtype), e.to(device, dtype)
            self._cache_key = key
        return self._factor, self._e

    def score(self, hidden: torch.Tensor, rows: torch.Tensor, head: LMHead, head_key=_FROM_WEIGHT) -> SampleScores:
        """hidden [b, T, d] (no grad), rows [b, T] bool: the positions of each sample scored, in order.

        `head_key`: what the cached Gram terms are valid for, a hashable that changes whenever the head's values may
        change, or None to recompute them. By default it comes from `head.weight` itself (its storage and version
        counter; None when it requires grad), which holds only when `head.weight` is the model's own parameter: a
        copy gathered from shards (FSDP2's `full_tensor`, a fresh tensor each step that requires no grad under
        no_grad, possibly at a reused address) needs the caller's key (`UDSSFTTrainer.head_cache_key`)."""
        path = self.resolve_path(head)
        b = hidden.shape[0]
        intra = torch.zeros(b, dtype=torch.float64)
        sketches = torch.zeros(b, self.a.shape[0] * self.b.shape[1], dtype=torch.float64)
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        a = self.a.to(hidden.device, dtype)
        if path == "gram":
            factor, e = self._gram_terms(head, hidden.device, dtype, head_key)
        else:
            bmat = self.b.to(hidden.device, dtype)
        for i in range(b):
            h = hidden[i][rows[i]][: self.t_max].to(dtype)
            n = h.shape[0]
            if n == 0:  # nothing to score: intra 0, sketch 0 (no NaN)
                continue
            if path == "gram":
                intra[i] = nuclear_norm(h @ factor.to(dtype)).cpu()
                z = a[:, :n] @ h @ e
            else:
                logits = h @ head.weight.detach().to(dtype).T
                if head.bias is not None:
                    logits = logits + head.bias.detach().to(dtype)
                logits = logits * head.logit_scale
                if head.softcap is not None:
                    logits = head.softcap * torch.tanh(logits / head.softcap)
                intra[i] = nuclear_norm(logits).cpu()
                z = a[:, :n] @ logits @ bmat
            sketches[i] = z.reshape(-1).double().cpu()
        return SampleScores(intra, sketches)
