"""Which modules a trl-ext peft tuner adapts, named as peft names them: a regex matched against the whole module
path, or a list of names each matching the path or its last dotted parts (`q_proj` matches `...self_attn.q_proj`)."""

from __future__ import annotations

import re
from collections.abc import Iterable


def matches_target(names: str | Iterable[str] | None, key: str) -> bool:
    """Whether module path `key` is one of `names` (None: none is)."""
    if names is None:
        return False
    if isinstance(names, str):
        return re.fullmatch(names, key) is not None
    return any(key == name or key.endswith("." + name) for name in names)
