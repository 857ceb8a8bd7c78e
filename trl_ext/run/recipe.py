"""YAML recipes: one run, or `stages:` whose output model feeds the next.

method: asft                      # one stage; any flag of `trl-ext train` as a key
model_name_or_path: smollm2-135m
dataset_name: builtin:arith
kl_weight: 0.1
transforms: [{name: grape, top_k: 1}]

output_dir: runs/sft-then-grpo    # several stages; top-level keys apply to every stage
stages:
  - {method: sft, max_steps: 50}
  - {method: grpo, dataset_name: builtin:json_extract, rewards: json_validity,json_structure}

A stage with `skip_if_empty: true` whose training split is empty once loaded and transformed (an allocation that gave
it nothing) is skipped: recorded as such, its input model passed on to the next stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SKIP_IF_EMPTY = "skip_if_empty"  # a stage key: an empty training split skips the stage (see trl_ext.run.stage)


class RecipeError(ValueError):
    pass


def load_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"Recipe file not found: {path}")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"Recipe {path} is not valid YAML: {exc}") from None
    return checked_recipe(recipe, f"Recipe {path}")


def checked_recipe(recipe: Any, where: str) -> dict[str, Any]:
    """`recipe` (a YAML file's content or a registered recipe's mapping) if well-formed; RecipeError naming `where`."""
    if not isinstance(recipe, dict):
        raise RecipeError(f"{where} must be a YAML mapping of flags (or hold `stages:`), got {type(recipe).__name__}.")
    if "stages" in recipe:
        stages = recipe["stages"]
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            raise RecipeError(f"{where}: `stages` must be a non-empty list of mappings.")
        for i, stage in enumerate(stages):
            if "method" not in stage and "method" not in recipe:
                raise RecipeError(f"{where}: stage {i + 1} names no `method`.")
            if not isinstance(stage.get(SKIP_IF_EMPTY, False), bool):
                raise RecipeError(f"{where}: stage {i + 1}'s `{SKIP_IF_EMPTY}` must be true or false.")
    if not isinstance(recipe.get(SKIP_IF_EMPTY, False), bool):
        raise RecipeError(f"{where}: `{SKIP_IF_EMPTY}` must be true or false.")
    return recipe


def stages(recipe: dict[str, Any], method: str | None = None) -> list[dict[str, Any]]:
    """The stages of a recipe, each a flat mapping of flags including `method`; `method` from the command line
    fills in where the recipe names none."""
    common = {k: v for k, v in recipe.items() if k != "stages"}
    if method and "method" not in common:
        common["method"] = method
    if "stages" not in recipe:
        if "method" not in common:
            raise RecipeError("The recipe names no `method`, and none was given on the command line.")
        return [common]
    out = []
    base_dir = common.pop("output_dir", None)
    for i, stage in enumerate(recipe["stages"]):
        merged = {**common, **stage}
        if i > 0 and "model_name_or_path" not in stage:
            merged.pop("model_name_or_path", None)  # trained from the previous stage's output
        if "output_dir" not in stage and base_dir:
            merged["output_dir"] = str(Path(base_dir) / f"stage-{i + 1}-{merged['method']}")
        out.append(merged)
    return out


def rooted_at_command_line(
    recipe: dict[str, Any], output_dir: str | None, model_name_or_path: str | None
) -> dict[str, Any]:
    """A multi-stage recipe with the command line's `--output_dir` as the root of every stage's folder (a stage keeps
    its own folder's name under it) and its `--model_name_or_path` as the first stage's model; later stages still
    train from the stage before them unless they name their own model. Given per stage, either flag would make
    every stage write one folder, or every stage start again from the base model."""
    if "stages" not in recipe:
        return recipe
    recipe = {**recipe, "stages": [dict(stage) for stage in recipe["stages"]]}
    if output_dir is not None:
        recipe["output_dir"] = output_dir
        for stage in recipe["stages"]:
            if "output_dir" in stage:
                stage["output_dir"] = str(Path(output_dir) / Path(stage["output_dir"]).name)
    if model_name_or_path is not None:
        recipe["model_name_or_path"] = model_name_or_path
        recipe["stages"][0].pop("model_name_or_path", None)
    return recipe
