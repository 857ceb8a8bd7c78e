"""Batched generation and scoring of responses under a model (sequence log-likelihoods on the chunked head), sentence
embeddings from a frozen encoder (`load_text_encoder`) and frozen CLIP-like dual encoders for image-text similarity."""

from trl_ext.inference.generation import Generation, generate, generate_completions
from trl_ext.inference.image_encoder import DualEncoder, load_dual_encoder
from trl_ext.inference.scoring import option_logprobs, sequence_logprobs, tokenize_option, tokenize_pair
from trl_ext.inference.text_encoder import LazyTextEncoder, TextEncoder, load_text_encoder, mean_pool, pair_cosines

__all__ = [
    "DualEncoder",
    "Generation",
    "LazyTextEncoder",
    "TextEncoder",
    "generate",
    "generate_completions",
    "load_dual_encoder",
    "load_text_encoder",
    "mean_pool",
    "option_logprobs",
    "pair_cosines",
    "sequence_logprobs",
    "tokenize_option",
    "tokenize_pair",
]
