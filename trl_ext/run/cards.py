"""Model-card additions: the method, its paper (title, arXiv link, BibTeX), base model, dataset, the components
used, the recipe and the plugin versions, appended to the README.md that TRL's `create_model_card` writes. Read from
the stage that was trained, not from the global registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trl_ext.plugin.records import Component, Method

if TYPE_CHECKING:
    from trl_ext.run.arguments import Stage

MARKER = "## Trained with trl-ext"


def render_section(
    method: Method,
    base_model: str,
    dataset: str,
    components: list[Component],
    recipe: dict[str, Any] | None,
    plugin_versions: dict[str, str] | None = None,
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
    versions = [f"`{name}` {version}" for name, version in sorted((plugin_versions or {}).items())]
    if versions:
        lines += ["", "Plugins: " + ", ".join(versions)]
    return "\n".join(lines) + "\n"


def add_trl_ext_section(output_dir: str, stage: Stage) -> Path:
    """Append (or replace) the trl-ext section of `output_dir/README.md`, keeping TRL's card above it."""
    path = Path(output_dir) / "README.md"
    text = path.read_text() if path.exists() else f"# {Path(output_dir).name}\n"
    text = text.split(MARKER)[0].rstrip() + "\n\n"
    section = render_section(
        stage.method,
        stage.model_args.model_name_or_path,
        stage.script_args.dataset_name,
        stage.components,
        {"method": stage.method.name, **stage.asked},
        stage.plugin_versions,
    )
    path.write_text(text + section)
    return path
