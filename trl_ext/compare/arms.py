"""The arms of a comparison: `trl-ext compare sft asft dft:asft_loss=dft otr` or a YAML `arms:` list.

An arm is `[LABEL=]METHOD[:key=value...]`. When the first word names no method (`dft:asft_loss=dft`), the arm is
labelled by it and trained by the one method whose config has every key given (`asft_loss` is ASFT's): none or
several is an error naming the candidates. Labels are unique; each arm becomes one stage of a recipe whose common
keys (model, data, seed, budget, optimiser) every arm shares.

In a YAML, an arm may chain stages, each trained from the one before (LP-FT: a head-only stage, then full SFT):
`{label: lp_ft, stages: [{method: sft, adapter: fewshot_head_only, max_steps: 40}, {method: sft, max_steps: 100}]}`.
Its stages become consecutive stages of the recipe; its budget is the sum of theirs. An arm may also be a
registered recipe (`{label: redone2, recipe: redone2}`: RL -> SFT -> RL as one arm): the recipe's stages with its
shared keys, less its model, output and reporting keys, which the comparison sets; the arm's other keys apply to
every stage (`{recipe: redone2, max_completion_length: 32}`).

`base` (or `{label: NAME, method: base}`) is the starting model itself, untrained: the row every method should beat,
measured like the others. With `model_name_or_path` it measures that model as it is instead, e.g. another arm's
final model evaluated its own way without training it again (`{label: sft_direct, method: base,
model_name_or_path: "arm:sft", eval_transforms: ...}`).

An arm may evaluate its own way where its method answers in its own form (CLS-RL's thinking and no-thinking
prompts, OncoReason's answer-only and rationale forms): `eval_transforms` (the transforms that build its evaluation
prompts, instead of the comparison's), `eval_dataset_config` (the evaluation dataset's config or built-in form) and
`eval_max_new_tokens` (its generation length) on the arm, `{label: no_think, method: grpo, eval_transforms:
"build_cls_prompts:mode=no_think", eval_max_new_tokens: 8}`; every other evaluation setting stays shared.

An option may name an earlier arm's model: `arm:LABEL` is that arm's final folder (`arm:base` the starting model),
so a teacher trained by one arm distils into another (`{label: opd, method: vla_opd, teacher_model_name_or_path:
"arm:teacher"}`), or an arm starts where another ended (`model_name_or_path: arm:sft_cot`: GRPO after an SFT arm,
without training that SFT twice); under `--seeds` each seed's arm reads the same seed's.

With several seeds (`--seeds 0,1,2`), each arm is trained once per seed as `LABEL-s0`, `LABEL-s1`, ... (its `group`
is LABEL), every stage with that `seed`; the untrained arm is measured once.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from trl_ext.plugin.registry import registry
from trl_ext.run.recipe import RecipeError
from trl_ext.run.specs import parse_spec

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
UNTRAINED = "base"  # the pseudo-method of the arm that measures the starting model as it is
# an arm's own evaluation settings, not training keys
EVAL_KEYS = ("eval_transforms", "eval_max_new_tokens", "eval_dataset_config")
_REFERENCE = re.compile(r"^arm:(?P<label>[A-Za-z0-9][A-Za-z0-9_.-]*)$")


def referenced_arm(value: Any) -> str | None:
    """The label in an option value `arm:LABEL` (another arm's model), else None."""
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return match["label"] if match else None


def resolve_references(options: dict[str, Any], folders: dict[str, str]) -> dict[str, Any]:
    """`options` with every `arm:LABEL` replaced by that arm's folder from `folders` (label -> model path)."""
    return {key: folders[label] if (label := referenced_arm(v)) else v for key, v in options.items()}


@dataclass
class Arm:
    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    # Stages trained after the first, each from the previous stage's model (an arm that chains stages)
    then: list[Arm] = field(default_factory=list)
    group: str | None = None  # the arm this one is a seed of (`with_seeds`)
    evaluation: dict[str, Any] = field(default_factory=dict)  # the arm's own EVAL_KEYS

    @property
    def untrained(self) -> bool:
        return self.method == UNTRAINED

    @property
    def is_start(self) -> bool:
        """The untrained arm that measures the starting model: the one the others are paired with (`Δ vs base`)."""
        return self.untrained and "model_name_or_path" not in self.options

    def stages(self) -> list[dict[str, Any]]:
        """The stages the arm trains (none for the untrained arm)."""
        if self.untrained:
            return []
        return [{"method": arm.method, **arm.options} for arm in (self, *self.then)]

    @property
    def methods(self) -> str:
        """The arm's method, or its stages' methods in order (`sft -> sft`)."""
        if self.untrained:
            return "none (untrained)" if self.is_start else f"none (measures {self.options['model_name_or_path']})"
        return " -> ".join(arm.method for arm in (self, *self.then))


def parse_arm(spec: str | dict[str, Any]) -> Arm:
    """One arm from its command-line form or a YAML mapping (`{label: dft, method: asft, asft_loss: dft}`), its
    evaluation keys (EVAL_KEYS) kept apart from the keys its stages train with."""
    if isinstance(spec, str):
        label, _, rest = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
        name, options = parse_spec(rest)
        evaluation = {key: options.pop(key) for key in EVAL_KEYS if key in options}
        if not evaluation or (label and name not in _methods() and name != UNTRAINED):
            return _parsed(spec)  # (the latter raises: a labelled arm must name a method)
        if name in _methods() or name == UNTRAINED:
            spec = {"label": label or name, "method": name, **options, **evaluation}
        else:  # `dft:asft_loss=dft:...`: the method whose config has the keys
            spec = {"label": name, **options, **evaluation}
    values = dict(spec)
    evaluation = {key: values.pop(key) for key in EVAL_KEYS if key in values}
    arm = _parsed(values)
    if evaluation:
        arm.evaluation = evaluation
    return arm


def _parsed(spec: str | dict[str, Any]) -> Arm:
    if isinstance(spec, dict) and "recipe" in spec:
        return _chain(_recipe_stages(spec))
    if isinstance(spec, dict) and "stages" in spec:
        return _chain(spec)
    if isinstance(spec, dict):
        values = dict(spec)
        method = values.pop("method", None)
        label = str(values.pop("label", method or ""))
        if not method:
            return _by_config_keys(label, values)
        return _checked(Arm(label, str(method), values))
    label, _, rest = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
    name, options = parse_spec(rest)
    if name in _methods() or name == UNTRAINED:
        return _checked(Arm(label or name, name, options))
    if label:
        raise RecipeError(f"Arm {spec!r}: {name!r} is not a method ({_method_list()}).")
    return _by_config_keys(name, options)


def _chain(spec: dict[str, Any]) -> Arm:
    values = dict(spec)
    stages, label = values.pop("stages"), values.pop("label", None)
    if values:
        raise RecipeError(
            f"Arm {label!r}: with `stages`, give every other key inside a stage (found {', '.join(values)})."
        )
    if not label:
        raise RecipeError("An arm with `stages` needs a `label` (it names the arm's folder).")
    if not isinstance(stages, list) or not stages or not all(isinstance(stage, dict) for stage in stages):
        raise RecipeError(f"Arm {label!r}: `stages` must be a list of mappings, each with a `method`.")
    for i, stage in enumerate(stages[1:], start=2):
        if "model_name_or_path" in stage:
            raise RecipeError(
                f"Arm {label!r}: stage {i} trains from stage {i - 1}'s model; drop its model_name_or_path."
            )
    misplaced = sorted({key for stage in stages for key in EVAL_KEYS if key in stage})
    if misplaced:
        raise RecipeError(
            f"Arm {label!r}: {', '.join(misplaced)} is how the arm is evaluated, not how a stage trains: give it next "
            "to `stages`, on the arm."
        )
    first, *then = (parse_arm({**stage, "label": str(label)}) for stage in stages)
    first.then = then
    return first


# A recipe's keys that the comparison owns: every arm starts from its model and writes under its folder and reports
_COMPARISON_KEYS = ("model_name_or_path", "output_dir", "report_to", "save_strategy", "logging_steps")


def _recipe_stages(spec: dict[str, Any]) -> dict[str, Any]:
    """`{label, recipe: NAME, **keys}` as a chained arm: the registered recipe's stages (flat, its shared keys in each,
    without the keys the comparison owns), `keys` on top of every stage."""
    from trl_ext.run.recipe import checked_recipe

    values = dict(spec)
    name = str(values.pop("recipe"))
    label = str(values.pop("label", name))
    if "stages" in values or "method" in values:
        raise RecipeError(f"Arm {label!r}: a `recipe` arm takes its stages and methods from the recipe {name!r}.")
    if name not in {record.name for record in registry().components("recipe")}:
        known = ", ".join(sorted(record.name for record in registry().components("recipe")))
        raise RecipeError(f"Arm {label!r}: {name!r} is not a registered recipe (recipes: {known}).")
    recipe = checked_recipe(registry().get("recipe", name).load(), f"recipe {name!r}")
    shared = {k: v for k, v in recipe.items() if k != "stages" and k not in _COMPARISON_KEYS}
    stages = [
        {**shared, **{k: v for k, v in stage.items() if k not in _COMPARISON_KEYS}, **values}
        for stage in recipe.get("stages") or [{}]  # a recipe without `stages:` is one stage of its shared keys
    ]
    return {"label": label, "stages": stages}


def with_seeds(arms: list[Arm], seeds: list[int]) -> list[Arm]:
    """Each arm once per seed, labelled `LABEL-sSEED`, every stage trained with that seed (`group` = LABEL)."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise RecipeError(f"--seeds must name distinct seeds, got {seeds}.")
    trained = {arm.label for arm in arms if not arm.untrained}
    out = []
    for arm in arms:
        reads = referenced_arm(arm.options.get("model_name_or_path"))
        if arm.untrained and reads in trained:  # measures a trained arm: once per seed, that seed's
            for seed in seeds:
                options = {"model_name_or_path": f"arm:{reads}-s{seed}"}
                out.append(dataclasses.replace(arm, label=f"{arm.label}-s{seed}", options=options, group=arm.label))
            continue
        if arm.untrained:  # nothing drawn at random: one row
            out.append(arm)
            continue
        for seed in seeds:
            label = f"{arm.label}-s{seed}"
            then = [_seeded(stage, seed, label, trained) for stage in arm.then]
            out.append(_checked(dataclasses.replace(_seeded(arm, seed, label, trained), then=then, group=arm.label)))
    return out


def _seeded(stage: Arm, seed: int, label: str, trained: set[str]) -> Arm:
    """The stage trained with `seed`, under `label`, reading the same seed's run of any trained arm it references."""
    options = {
        key: f"arm:{ref}-s{seed}" if (ref := referenced_arm(value)) in trained else value
        for key, value in {**stage.options, "seed": seed}.items()
    }
    return dataclasses.replace(stage, label=label, options=options, then=[])


def parse_arms(specs: list[str | dict[str, Any]]) -> list[Arm]:
    arms = [parse_arm(spec) for spec in specs]
    if not any(not arm.untrained for arm in arms):
        raise RecipeError(
            "Name at least one arm that trains: trl-ext compare base sft asft ... (to measure a model as it is, "
            "use trl-ext evaluate)."
        )
    labels = [arm.label for arm in arms]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise RecipeError(f"Arm labels must differ; repeated: {', '.join(repeated)} (name them LABEL=METHOD:...).")
    for i, arm in enumerate(arms):
        earlier = {other.label for other in arms[:i]}
        for stage in (arm, *arm.then):
            for key, value in stage.options.items():
                label = referenced_arm(value)
                if label is not None and label not in earlier:
                    where = "comes after it" if label in labels else "is not an arm"
                    raise RecipeError(
                        f"Arm {arm.label!r}: {key}=arm:{label} names another arm's model, but {label!r} {where}; list "
                        "the arm it reads before it."
                    )
    return arms


def _checked(arm: Arm) -> Arm:
    if not _LABEL.match(arm.label):
        raise RecipeError(f"Arm label {arm.label!r} must be letters, digits, '_', '-' or '.' (it names a folder).")
    if arm.untrained:
        if set(arm.options) - {"model_name_or_path"} or arm.then:
            raise RecipeError(
                f"Arm {arm.label!r} measures a model as it is (untrained): it takes no options or stages but "
                "model_name_or_path (the model measured instead of the starting one, e.g. arm:LABEL)."
            )
        return arm
    if arm.method not in _methods():
        raise RecipeError(f"Arm {arm.label!r}: unknown method {arm.method!r} ({_method_list()}).")
    return arm


def _by_config_keys(label: str, options: dict[str, Any]) -> Arm:
    """The arm `label` trained by the only method whose config has every key of `options`."""
    if not options:
        raise RecipeError(f"Arm {label!r} names no method ({_method_list()}).")
    owners = []
    for record in registry().components("method"):
        try:
            names = {f.name for f in dataclasses.fields(record.config)}
        except Exception:  # a plugin whose config does not import is reported by `trl-ext plugins`
            continue
        if set(options) <= names and record.family is not None and str(record.family) != "trl":
            owners.append(record.name)
    if len(owners) != 1:
        found = f"methods with all of them: {', '.join(owners)}" if owners else "no method has them all"
        raise RecipeError(
            f"Arm {label!r} is not a method, and its keys {', '.join(options)} do not pick one ({found}); "
            f"write it as {label}=METHOD:key=value."
        )
    return _checked(Arm(label, owners[0], options))


def _methods() -> set[str]:
    return {record.name for record in registry().components("method")}


def _method_list() -> str:
    return "methods: " + ", ".join(sorted(_methods()))
