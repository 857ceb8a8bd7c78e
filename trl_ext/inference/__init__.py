"""Batched generation and scoring of responses under a model (sequence log-likelihoods on the chunked head), and
frozen CLIP-like dual encoders for image-text similarity."""

from trl_ext.inference.generation import generate
from trl_ext.inference.image_encoder import DualEncoder, load_dual_encoder
from trl_ext.inference.scoring import sequence_logprobs, tokenize_pair

__all__ = ["DualEncoder", "generate", "load_dual_encoder", "sequence_logprobs", "tokenize_pair"]
