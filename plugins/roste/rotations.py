"""Orthogonal Hadamard rotations as explicit matmuls (the card's adaptation of the fast-hadamard CUDA kernel).

A dimension that is not a power of two is rotated block-diagonally, I (x) H_b with b the largest power of two dividing
it (64 for SmolLM2's 576 = 9 x 64, 512 for its 1536 = 3 x 512): still orthogonal, so every folding stays exact."""

from __future__ import annotations

import functools

import torch


def block_size(dim: int) -> int:
    """The largest power of two dividing `dim` (the Hadamard block of a dimension `dim`)."""
    if dim < 1:
        raise ValueError(f"a Hadamard rotation needs a positive dimension, got {dim}")
    return dim & -dim


@functools.lru_cache(maxsize=16)
def _sylvester(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)], dim=0)
    return h / n**0.5


def hadamard(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalised Sylvester Hadamard matrix of order n (a power of two): H H^T = I, entries +-1/sqrt(n)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"a Sylvester Hadamard matrix needs a power-of-two order, got {n}")
    return _sylvester(n).to(dtype)


def rotation_matrix(dim: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The full [dim, dim] rotation I_(dim/b) (x) H_b (block-diagonal; H_dim when dim is a power of two)."""
    b = block_size(dim)
    return torch.kron(torch.eye(dim // b, dtype=torch.float64), _sylvester(b)).to(dtype)


def rotate(x: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """x (I (x) H_b) over the last dimension of `x`, as a matmul per block of size b = block.shape[0]."""
    b = block.shape[0]
    shape = x.shape
    return (x.reshape(*shape[:-1], shape[-1] // b, b) @ block.to(x.dtype)).reshape(shape)
