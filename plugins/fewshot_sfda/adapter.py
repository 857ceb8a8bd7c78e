"""The linear-probe stage of LP-FT: everything frozen but the output head (a classifier's `score`, else the LM
head). On a model with tied embeddings the LM head IS the input embedding matrix, so both move together."""

from __future__ import annotations

from typing import Any


def head_parameter_names(model) -> list[str]:
    head = getattr(model, "score", None) or model.get_output_embeddings()
    ids = {id(p) for p in head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def make_head_only_adapter(**options: Any):
    """The registry's factory (`fewshot_head_only`)."""
    if options:
        raise ValueError(f"fewshot_head_only takes no options, got {sorted(options)}")

    def head_only(model):
        keep = set(head_parameter_names(model))
        for name, param in model.named_parameters():
            param.requires_grad_(name in keep)
        return model

    return head_only
