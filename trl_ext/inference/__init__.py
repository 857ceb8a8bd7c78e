"""Batched generation and scoring of responses under a model (sequence log-likelihoods on the chunked head)."""

from trl_ext.inference.generation import generate
from trl_ext.inference.scoring import sequence_logprobs, tokenize_pair

__all__ = ["generate", "sequence_logprobs", "tokenize_pair"]
