"""What the card of TRL 1.16.0's `create_model_card` (template `templates/lm_model_card.md`) and peft 0.21's
`PeftModel.create_or_update_model_card` look like, read and edited with huggingface_hub 2.4's `ModelCard`. Both read
the base model from the model config's `_name_or_path` (trl `get_config_model_id`, peft `BaseTuner.get_model_config`);
the sentences below are the template's. When a release changes them, tests/test_model_card.py fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# TRL's first sentence, "This model is a fine-tuned version of [BASE](https://huggingface.co/BASE)[ on the
# [DATA](https://huggingface.co/datasets/DATA) dataset].", followed by this line.
_TRAINED_WITH_TRL = ".\nIt has been trained using [TRL]"
# What that sentence links when TRL found no Hub id (the model was loaded from a local folder).
_UNKNOWN_BASE = "[None](https://huggingface.co/None)"
_BIBTEX_KEY = re.compile(r"@\w+\s*\{\s*([^,\s]+)\s*,")


@contextmanager
def named_base_model(model: Any, hub_id: str | None) -> Iterator[None]:
    """While the card is written, the model and its config name `hub_id` as where they came from, so TRL's card (its
    sentence and `base_model`) and peft's (`base_model` from the config, the `base_model:adapter:` tag from the
    model's `name_or_path`) all name it. Restored after: TRL loads GRPO/DPO reference models from the config's."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    holders = [h for h in (getattr(inner, "config", None), inner) if h is not None and hasattr(h, "name_or_path")]
    if hub_id is None or not holders:
        yield
        return
    saved = [h.name_or_path for h in holders]
    for holder in holders:
        holder.name_or_path = hub_id
    try:
        yield
    finally:
        for holder, value in zip(holders, saved, strict=True):
            holder.name_or_path = value


def bibtex_keys(text: str) -> list[str]:
    """The keys of the BibTeX entries in `text`, in order, repeats included."""
    return _BIBTEX_KEY.findall(text)


def describe_data_and_base(text: str, data: str | None, local_base: str | None) -> str:
    """TRL's first sentence naming data that is not on the Hub (`data`, e.g. "generated data (`builtin:arith`)"),
    which TRL would otherwise link as a Hub dataset, and a base model TRL could not name (`local_base`) in place
    of its "[None]" link."""
    if local_base is not None:
        text = text.replace(_UNKNOWN_BASE, local_base, 1)
    if data is not None and _TRAINED_WITH_TRL in text:
        text = text.replace(_TRAINED_WITH_TRL, f" on {data}{_TRAINED_WITH_TRL}", 1)
    return text


def drop_local_base(data: Any) -> None:
    """Remove from a card's metadata (`ModelCardData`) the base model peft names by a local folder (`base_model` and
    its `base_model:adapter:PATH` tag): the Hub accepts only a Hub id there, and a folder of this machine says
    nothing to a reader."""
    base = data.base_model if isinstance(data.base_model, str) else None
    if base is None or not (base.startswith(("/", ".", "~")) or Path(base).expanduser().exists()):
        return
    data.base_model = None
    data.tags = [tag for tag in data.tags or [] if tag != f"base_model:adapter:{base}"]
