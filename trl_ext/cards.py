"""Model-card additions: the method, its paper (title, arXiv link, BibTeX), base model, dataset, the components
used, the recipe and the plugin versions, appended to the README.md that TRL's `create_model_card` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .method import Component, Method
from .registry import registry

MARKER = "## Trained with trl-ext"


def render_section(
    method: Method, base_model: str, dataset: str, components: list[Component], recipe: dict[str, Any] | None
) -> str:
    lines = [MARKER, "", f"- **Method**: `{method.name}` ({method.description or method.family})"]
    lines.append(f"- **Base model**: `{base_model}`")
    lines.append(f"- **Dataset**: `{dataset}`")
    if components:
        lines.append("- **Components**: " + ", ".join(f"`{c.kind}:{c.name}`" for c in components))
    papers = [c.paper for c in [method, *components] if c.paper is not None]
    seen: set[str] = set()
    for paper in papers:
        if paper.title in seen:
            continue
        seen.add(paper.title)
        link = f" ([arXiv:{paper.arxiv}]({paper.url}))" if paper.arxiv else ""
        lines += ["", f"### Paper: {paper.title}{link}", ""]
        if paper.citation:
            lines += ["```bibtex", paper.citation.strip(), "```"]
    if recipe:
        lines += ["", "### Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).strip(), "```"]
    used = {method.plugin, *(c.plugin for c in components)}
    versions = [f"`{p.name}` {p.version}" for name, p in sorted(registry().plugins.items()) if name in used]
    if versions:
        lines += ["", "Plugins: " + ", ".join(versions)]
    return "\n".join(lines) + "\n"


def add_trl_ext_section(
    output_dir: str,
    *,
    method: Method,
    base_model: str,
    dataset: str,
    components: list[Component],
    recipe: dict[str, Any] | None = None,
) -> Path:
    """Append (or replace) the trl-ext section of `output_dir/README.md`, keeping TRL's card above it."""
    path = Path(output_dir) / "README.md"
    text = path.read_text() if path.exists() else f"# {Path(output_dir).name}\n"
    text = text.split(MARKER)[0].rstrip() + "\n\n"
    path.write_text(text + render_section(method, base_model, dataset, components, recipe))
    return path
