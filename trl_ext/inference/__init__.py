"""Batched generation and scoring of responses under a model (sequence log-likelihoods on the chunked head)."""

from trl_ext.inference.generation import Generation, generate, generate_completions
from trl_ext.inference.scoring import sequence_logprobs, tokenize_pair

__all__ = ["Generation", "generate", "generate_completions", "sequence_logprobs", "tokenize_pair"]
