"""The README's methods table, generated from the registry (`python -m trl_ext.docs` rewrites it; a test fails when
the README drifts from what is registered)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .registry import Registry

START, END = "<!-- methods-table:start -->", "<!-- methods-table:end -->"


def methods_table(registry: Registry) -> str:
    rows = ["| Name | Kind | Family | Plugin | Paper |", "| --- | --- | --- | --- | --- |"]
    for record in registry.components():
        if record.plugin == "core" or record.plugin not in BUILT_IN:
            continue
        paper = ""
        if record.paper is not None:
            paper = f"[{record.paper.title}]({record.paper.url})" if record.paper.url else record.paper.title
        rows.append(f"| `{record.name}` | {record.kind} | {record.family} | {record.plugin} | {paper} |")
    return "\n".join(rows)


BUILT_IN = ("asft", "grape", "rlstruct", "curiosft", "soft", "fait", "tl_training", "otr", "ift", "lfu", "poft")


def render_readme(text: str, registry: Registry) -> str:
    block = f"{START}\n{methods_table(registry)}\n{END}"
    return re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    registry = Registry().load_entry_points(allow=["core", *BUILT_IN])
    path.write_text(render_readme(path.read_text(), registry))
    print(f"Updated the methods table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
