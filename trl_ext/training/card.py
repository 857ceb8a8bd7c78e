"""The model card every save and push writes, complete the first time: TRL's own card (the trainer class's
`create_model_card`, with its method citation, tags and framework versions), peft's metadata when an adapter is
trained (`library_name: peft`, the adapter tags, `pipeline_tag`), then trl-ext's section. Transformers pushes at
`save_model`, at each checkpoint and in `push_to_hub`, each time through the trainer's `create_model_card`: hooking
that one method is what makes the card on the Hub the card on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trl_ext.compat.model_card import bibtex_keys, describe_data_and_base, drop_local_base, named_base_model


@dataclass(frozen=True)
class CardExtension:
    """What trl-ext adds to TRL's card.

    Args:
        base_model: the Hub id of the model the run started from (a built-in model's source); None: what TRL reads
            from the model's config.
        local_base: how the card names a base model that has no Hub id (TRL would write "[None]").
        dataset_name: a Hub dataset, which TRL links and lists in the metadata.
        data_description: data that is not on the Hub, as the card's first sentence names it.
        tags: added to TRL's tags (e.g. "trl-ext", the method).
        section: trl-ext's section, given the BibTeX keys the card already cites (so no entry appears twice).
    """

    base_model: str | None = None
    local_base: str | None = None
    dataset_name: str | None = None
    data_description: str | None = None
    tags: tuple[str, ...] = ()
    section: Callable[[set[str]], str] | None = None


def write_model_card(
    trainer: Any,
    extension: CardExtension,
    model_name: str | None = None,
    dataset_name: str | None = None,
    tags: str | list[str] | None = None,
) -> Path | None:
    """Write `output_dir/README.md` through TRL's and peft's own card code, then extend it; the path (None on
    processes other than the main one, which write nothing)."""
    from accelerate.utils import is_peft_model
    from huggingface_hub import ModelCard

    if not trainer.is_world_process_zero():
        return None
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags += [tag for tag in extension.tags if tag not in tags]
    path = Path(trainer.args.output_dir) / "README.md"
    with named_base_model(trainer.model, extension.base_model):
        type(trainer).create_model_card(
            trainer, model_name=model_name, dataset_name=dataset_name or extension.dataset_name, tags=tags
        )
        trl_tags = list(ModelCard.load(path).data.tags or [])
        if is_peft_model(trainer.model):
            # peft replaces the tags with its own (the adapter's); TRL's are merged back below.
            trainer.model.create_or_update_model_card(str(path.parent))
    card = ModelCard.load(path)
    card.data.tags = sorted({*trl_tags, *(card.data.tags or [])})  # TRL's come from a set: give them an order
    if extension.base_model is None:
        drop_local_base(card.data)
    text = describe_data_and_base(card.text, extension.data_description, extension.local_base)
    if extension.section is not None:
        text = text.rstrip() + "\n\n" + extension.section(set(bibtex_keys(text)))
    card.text = text
    card.save(path)
    return path


def extend_model_card(trainer: Any, extension: CardExtension) -> None:
    """Make every card `trainer` writes (its `create_model_card`, called by TRL at each checkpoint and by
    transformers before each push) the complete one; any trainer class, TRL's own included."""

    def create_model_card(
        model_name: str | None = None, dataset_name: str | None = None, tags: str | list[str] | None = None
    ) -> None:
        write_model_card(trainer, extension, model_name, dataset_name, tags)

    trainer.create_model_card = create_model_card
