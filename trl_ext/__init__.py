"""trl-ext: recent post-training papers as plugins for Hugging Face TRL."""

import os

# Offline by default: TRL trainers ping the Hub's telemetry endpoint on construction. Set before any HF import.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from trl_ext.plugin.hookspecs import hookimpl  # noqa: E402
from trl_ext.plugin.records import (  # noqa: E402
    Adapter,
    Callback,
    Component,
    Dataset,
    LogitsProcessor,
    Method,
    Paper,
    Recipe,
    Reward,
    Transform,
)
from trl_ext.plugin.registry import (  # noqa: E402
    ComponentError,
    DuplicateComponentError,
    UnknownComponentError,
    components,
    get,
    registry,
)

__version__ = "0.1.0"

# The peft tuners trl-ext adds (ssf, ...) are registered with peft once it is imported: PeftModel.from_pretrained of
# a saved one then works. Imports no peft itself.
from trl_ext.adapters import install_peft_hook  # noqa: E402

install_peft_hook()

__all__ = [
    "Adapter",
    "Callback",
    "Component",
    "ComponentError",
    "Dataset",
    "DuplicateComponentError",
    "LogitsProcessor",
    "Method",
    "Paper",
    "Recipe",
    "Reward",
    "Transform",
    "UnknownComponentError",
    "components",
    "get",
    "hookimpl",
    "registry",
]
