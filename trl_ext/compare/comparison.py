"""What a `trl-ext compare` run compares: its arms, metrics, evaluation settings and the keys every arm shares (the
`Comparison`), and the command-line flag helpers it is built with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl_ext.compare.arms import Arm, referenced_arm, resolve_references
from trl_ext.compare.metrics import MetricSpec
from trl_ext.run.recipe import RecipeError

FINAL_RECORD = "compare_final.json"
REFERENCE_RECORD = "reference_answers.json"  # the untrained model's answers `unchanged` compares with, by key


@dataclass
class Comparison:
    arms: list[Arm]
    metric: MetricSpec
    also: list[MetricSpec] = field(default_factory=list)  # more metrics of the final models (`--also_eval`)
    output_dir: str = "outputs/compare"
    common: dict[str, Any] = field(default_factory=dict)  # recipe keys every arm shares (a YAML's top level)
    flags: list[str] = field(default_factory=list)  # command-line flags, applied to every arm
    eval_dataset: str | None = None  # default: the arms' dataset_name
    eval_dataset_config: str | None = None
    eval_split: str = "test"
    # transforms applied to the evaluation dataset before its rows are picked (the test part of a split transform)
    eval_transforms: Any = None
    eval_rows: int = 64
    eval_every: int = 0
    max_new_tokens: int = 64
    eval_batch_size: int = 16
    eval_groups: str | None = None  # a column of the rows: the metric per value of it as well
    seed: int = 0
    head_to_head: list[tuple[str, str]] = field(default_factory=list)  # (A, B): A's wins, ties, losses against B

    def recipe(self, model: str) -> dict[str, Any]:
        """The recipe whose stages are the arms' stages: each arm starts from `model`; a chained arm's later stages
        train from the stage before them, in folders under the arm's, and its last stage writes the arm's folder."""
        stages = []
        folders = self.arm_models(model)  # `arm:LABEL` -> the arm's model (parse_arms lets a stage name earlier arms)
        for arm, index, values in self.arm_stages():
            folder = Path(self.output_dir) / arm.label
            last = index == len(arm.then)
            values = resolve_references(values, folders)
            stage = {**values, "output_dir": str(folder if last else folder / f"stage-{index + 1}-{values['method']}")}
            if index == 0 and "model_name_or_path" not in values:  # an arm may start from another arm's model
                stage["model_name_or_path"] = model
            stages.append(stage)
        return {**self.common, "stages": stages}

    def arm_models(self, model: str) -> dict[str, str]:
        """Each arm's final model by label: a trained arm's folder, the starting model for `base`, and what an
        untrained arm with `model_name_or_path` measures (another arm's folder for `arm:LABEL`)."""
        folders: dict[str, str] = {}
        for arm in self.arms:
            if not arm.untrained:
                folders[arm.label] = str(Path(self.output_dir) / arm.label)
            elif arm.is_start:
                folders[arm.label] = model
            else:
                folders[arm.label] = resolve_references(arm.options, folders)["model_name_or_path"]
        return folders

    def resolve_metric_references(self, model: str) -> None:
        """Every `arm:LABEL` in a metric's options becomes that arm's final model (a reward scored against the SFT
        arm's model: SRPPO's self-reward), `arm:base` the starting model. The metrics measure after every arm has
        trained, so any arm may be named; not while one trains (`eval_every`), when the named arm may not exist yet."""
        folders = self.arm_models(model)
        folders.setdefault("base", model)
        for spec in (self.metric, *self.also):
            labels = [label for value in spec.options.values() if (label := referenced_arm(value))]
            if not labels:
                continue
            unknown = [label for label in labels if label not in folders]
            if unknown:
                raise RecipeError(
                    f"--eval {spec.label}: arm:{unknown[0]} is not an arm of this comparison (arms: "
                    f"{', '.join(folders)}; under --seeds name one seed's arm, e.g. arm:{unknown[0]}-s0)."
                )
            if spec is self.metric and self.eval_every:
                raise RecipeError(
                    f"--eval {spec.label} reads arm:{labels[0]}, which may not be trained yet when the arms are "
                    "measured during training: pass --eval_every 0, or measure it with --also_eval."
                )
            spec.options = resolve_references(spec.options, folders)

    def checked_pairs(self) -> None:
        """Each head-to-head pair names two different arms measured the same way (the same rows, so each row is a
        duel); under --seeds a pair of labels stands for the pair of each seed's runs."""
        arms = {arm.label: arm for arm in self.arms}
        seeds = {}  # a seeded arm's label -> the seeds it was trained with (`with_seeds` labels them LABEL-sSEED)
        for arm in self.arms:
            if arm.group:
                seeds.setdefault(arm.group, []).append(arm.label.removeprefix(f"{arm.group}-s"))
        pairs = []
        for a, b in self.head_to_head:
            if a == b:
                raise RecipeError(f"head_to_head {a}:{b} names one arm twice.")
            unknown = [label for label in (a, b) if label not in arms and label not in seeds]
            if unknown:
                raise RecipeError(
                    f"head_to_head {a}:{b}: {unknown[0]!r} is not an arm of this comparison (arms: {', '.join(arms)})."
                )
            for seed in seeds.get(a) or seeds.get(b) or [None]:
                pair = tuple(label if label in arms else f"{label}-s{seed}" for label in (a, b))
                if arms[pair[0]].evaluation != arms[pair[1]].evaluation:
                    raise RecipeError(
                        f"head_to_head {a}:{b}: the two arms are evaluated differently (their own eval_* keys), so "
                        "their rows are not the same items."
                    )
                pairs.append(pair)
        self.head_to_head = pairs

    def arm_stages(self) -> list[tuple[Arm, int, dict[str, Any]]]:
        """(arm, the stage's index in the arm, the stage's method and options), in training order."""
        return [(arm, i, values) for arm in self.arms for i, values in enumerate(arm.stages())]

    def generation(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "batch_size": self.eval_batch_size, "seed": self.seed}

    def for_arm(self, arm: Arm) -> Comparison:
        """The comparison as `arm` is evaluated: itself, or with the arm's own evaluation transforms, dataset config
        and generation length (its metrics copied, so that answers measured for its rows stay its own)."""
        if not arm.evaluation:
            return self
        import copy

        return dataclasses.replace(
            self,
            metric=copy.copy(self.metric),
            also=[copy.copy(spec) for spec in self.also],
            eval_transforms=arm.evaluation.get("eval_transforms", self.eval_transforms),
            eval_dataset_config=arm.evaluation.get("eval_dataset_config", self.eval_dataset_config),
            max_new_tokens=int(arm.evaluation.get("eval_max_new_tokens", self.max_new_tokens)),
        )


def without_flag(flags: list[str], name: str) -> list[str]:
    """`flags` less `--name V` / `--name=V`."""
    out, skip = [], False
    for i, flag in enumerate(flags):
        if skip:
            skip = False
        elif flag == f"--{name}":
            skip = i + 1 < len(flags)
        elif not flag.startswith(f"--{name}="):
            out.append(flag)
    return out


def flag_value(flags: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` among command-line flags (None when absent)."""
    for i, flag in enumerate(flags):
        if flag == f"--{name}" and i + 1 < len(flags):
            return flags[i + 1]
        if flag.startswith(f"--{name}="):
            return flag.split("=", 1)[1]
    return None
