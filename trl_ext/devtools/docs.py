"""The README's methods table, generated from the registry (`python -m trl_ext.devtools.docs` rewrites it; a test fails when
the README drifts from what is registered)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from trl_ext.plugin.records import Family
from trl_ext.plugin.registry import Registry

START, END = "<!-- methods-table:start -->", "<!-- methods-table:end -->"


def methods_table(registry: Registry) -> str:
    """One table per family, in the order of `Family`, of what the built-in plugins register."""
    built_in = [r for r in registry.components() if r.plugin in BUILT_IN]
    blocks = []
    for family in Family:
        records = [r for r in built_in if r.family == family]
        if not records:
            continue
        rows = [f"**{family.value}**: {family.description}", "", "| Name | Kind | Plugin | Paper |"]
        rows.append("| --- | --- | --- | --- |")
        for record in records:
            paper = ""
            if record.paper is not None:
                paper = f"[{record.paper.title}]({record.paper.url})" if record.paper.url else record.paper.title
            rows.append(f"| `{record.name}` | {record.kind} | {record.plugin} | {paper} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def built_in_plugins() -> tuple[str, ...]:
    """The plugins trl-ext ships: the `trl_ext` entry points into `trl_ext_plugins`, so a new built-in plugin joins
    the table when it is registered in pyproject.toml, not when someone remembers a list here."""
    from importlib.metadata import entry_points

    return tuple(ep.name for ep in entry_points(group="trl_ext") if ep.value.startswith("trl_ext_plugins."))


BUILT_IN = built_in_plugins()


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
