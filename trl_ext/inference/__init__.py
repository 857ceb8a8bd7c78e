"""Batched scoring of responses under a model (sequence log-likelihoods on the chunked head)."""
