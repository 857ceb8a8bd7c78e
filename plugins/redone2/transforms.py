"""The recipe's two data steps between stages.

`redone_diagnose_sft` (stage 2, SFT): scores every task of the stage's input model (the stage-1 RL model) and of the
base model on held-out rows with the tasks' rule rewards, picks the weak tasks, writes the diagnosis JSON next to the
stage outputs, keeps the SFT rows of weak tasks and mixes in general data at a share r of the rows.
`refine_weak_upsample` (stage 3, GRPO): reads that diagnosis and repeats the weak tasks' RL rows `refine_weak_upsample`
times (1.0, the card's default, changes nothing).

The diagnosis path defaults to `redone_diagnosis.json` in the folder above the stage's input model, which in a recipe
is the run's root for both stages (stage 2 starts from `<root>/stage-1-grpo`, stage 3 from `<root>/stage-2-sft`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset

from trl_ext.data.curation import current_split

from .selection import WeakSelection, mix_general, select_weak_tasks, upsample_rows

logger = logging.getLogger(__name__)

DIAGNOSIS_FILE = "redone_diagnosis.json"


def default_diagnosis_path(model: Any) -> Path | None:
    """`<folder above the model's folder>/redone_diagnosis.json`, or None when the model is not a local folder."""
    name = getattr(getattr(model, "config", None), "name_or_path", None) or getattr(model, "name_or_path", None)
    if not name or not Path(name).is_dir():
        return None
    return Path(name).resolve().parent / DIAGNOSIS_FILE


def task_scores(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    reward: Any,
    max_new_tokens: int = 32,
    batch_size: int = 16,
) -> dict[str, float]:
    """Mean rule reward per task of the model's greedy completions of `rows` (task, prompt and the reward's columns);
    rows the reward gives None are left out of their task's mean."""
    from trl_ext.inference.generation import generate

    texts = generate(model, tokenizer, list(rows["prompt"]), max_new_tokens, batch_size, progress=False)
    completions = [
        [{"role": "assistant", "content": t}] if isinstance(p, list) else t
        for p, t in zip(rows["prompt"], texts, strict=True)
    ]
    columns = {c: list(rows[c]) for c in rows.column_names if c != "prompt"}
    values = reward(prompts=list(rows["prompt"]), completions=completions, **columns)
    sums: dict[str, list[float]] = {}
    for task, value in zip(rows["task"], values, strict=True):
        if value is not None:
            sums.setdefault(task, []).append(float(value))
    return {task: sum(v) / len(v) for task, v in sorted(sums.items())}


def row_tokens(tokenizer: Any, prompt: Any, completion: Any) -> int:
    """Tokens of one SFT row as the trainer sees it (chat template for conversations)."""
    from trl_ext.inference.scoring import tokenize_pair

    ids, _ = tokenize_pair(tokenizer, prompt, completion)
    return len(ids)


def eval_rows(dataset: Dataset, num_eval: int) -> Dataset:
    """The first `num_eval` rows of each task (all with 0)."""
    if num_eval <= 0:
        return dataset
    seen: dict[str, int] = {}
    keep = []
    for i, task in enumerate(dataset["task"]):
        if seen.get(task, 0) < num_eval:
            seen[task] = seen.get(task, 0) + 1
            keep.append(i)
    return dataset.select(keep)


class DiagnoseSFT:
    """Stage 2's data: diagnose on the first call (any split), then keep weak tasks' rows and mix general data into
    the train split."""

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        base_model_name_or_path: str | None = None,
        eval_dataset: str = "builtin:redone_sns",
        eval_config: str | None = "rl",
        eval_split: str = "test",
        num_eval: int = 16,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        reward: str = "redone_sns_reward",
        weak_selection: str = "fraction",
        weak_frac: float = 0.5,
        weak_thresholds: Mapping[str, float] | None = None,
        default_threshold: float = 0.5,
        gain_delta: float | None = None,
        general_mix_ratio: float = 0.1,
        general_dataset: str | None = "builtin:redone_sns",
        general_config: str | None = "general",
        general_split: str = "train",
        seed: int = 42,
        diagnosis_path: str | None = None,
    ) -> None:
        if model is None or tokenizer is None:
            raise ValueError("redone_diagnose_sft scores the stage's input model: run it in a training stage.")
        self.model, self.tokenizer = model, tokenizer
        self.base = base_model_name_or_path
        self.eval = (eval_dataset, eval_config, eval_split, int(num_eval))
        self.generation = {"max_new_tokens": int(max_new_tokens), "batch_size": int(batch_size)}
        self.reward_name = reward
        self.selection = WeakSelection(
            weak_selection, float(weak_frac), weak_thresholds, default_threshold, gain_delta
        )
        if self.selection.weak_selection == "gain" and not base_model_name_or_path:
            raise ValueError("redone_diagnose_sft: weak_selection=gain needs base_model_name_or_path.")
        self.ratio = float(general_mix_ratio)
        self.general = (general_dataset, general_config, general_split)
        self.seed = int(seed)
        self.path = Path(diagnosis_path) if diagnosis_path else default_diagnosis_path(model)
        self.diagnosis: dict[str, Any] | None = None

    def diagnose(self) -> dict[str, Any]:
        from trl_ext.data import load_dataset
        from trl_ext.plugin.registry import get

        name, config, split, num_eval = self.eval
        rows = eval_rows(load_dataset(name, config)[split], num_eval)
        reward = get("reward", self.reward_name).build()
        scores = task_scores(self.model, self.tokenizer, rows, reward, **self.generation)
        baseline = None
        if self.base:
            from trl_ext.models import load_model, load_tokenizer

            base = load_model(self.base).to(self.model.device)
            baseline = task_scores(base, load_tokenizer(self.base), rows, reward, **self.generation)
            del base
        weak = select_weak_tasks(scores, baseline, self.selection)
        diagnosis = {
            "scores": scores,
            "baseline": baseline,
            "gain": {t: s - baseline.get(t, 0.0) for t, s in scores.items()} if baseline else None,
            "weak_tasks": weak,
            "selection": {
                "weak_selection": self.selection.weak_selection,
                "weak_frac": self.selection.weak_frac,
                "weak_thresholds": dict(self.selection.weak_thresholds or {}),
                "default_threshold": self.selection.default_threshold,
                "gain_delta": self.selection.gain_delta,
            },
            "eval": {"dataset": name, "config": config, "split": split, "rows": len(rows)},
            "model": getattr(self.model.config, "name_or_path", None),
            "base_model": self.base,
        }
        logger.info("redone2: task scores %s (base %s); weak tasks %s", scores, baseline, weak)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(diagnosis, indent=2))
        return diagnosis

    def __call__(self, dataset: Dataset) -> Dataset:
        if self.diagnosis is None:
            self.diagnosis = self.diagnose()
        weak = set(self.diagnosis["weak_tasks"])
        kept = dataset.filter(lambda row: row["task"] in weak)
        split = current_split()
        if split is not None and split != "train":
            return kept
        if self.ratio == 0 or not self.general[0]:
            return mix_general(kept, kept.select([]), 0.0, self.seed)
        from trl_ext.data import load_dataset

        name, config, general_split = self.general
        general = load_dataset(name, config)[general_split]
        mixed = mix_general(kept, general, self.ratio, self.seed)
        logger.info("redone2: SFT rows %d of weak tasks + %d general", len(kept), len(mixed) - len(kept))
        tokens = {"domain": 0, "general": 0}
        for row in mixed:
            tokens[row["source"]] += row_tokens(self.tokenizer, row["prompt"], row["completion"])
        self.diagnosis["sft_rows"] = {"domain": len(kept), "general": len(mixed) - len(kept)}
        self.diagnosis["sft_tokens"] = {**tokens, "general_share": tokens["general"] / max(sum(tokens.values()), 1)}
        logger.info("redone2: SFT tokens %s (the share r is in examples; long general rows weigh more)", tokens)
        if self.path is not None:
            self.path.write_text(json.dumps(self.diagnosis, indent=2))
        return mixed


class RefineUpsample:
    """Stage 3's data: weak tasks' rows repeated `refine_weak_upsample` times (train split only)."""

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        refine_weak_upsample: float = 1.0,
        diagnosis_path: str | None = None,
        seed: int = 42,
    ) -> None:
        self.factor = float(refine_weak_upsample)
        if self.factor < 1.0:
            raise ValueError(f"refine_weak_upsample: refine_weak_upsample={self.factor} must be >= 1.")
        self.path = Path(diagnosis_path) if diagnosis_path else default_diagnosis_path(model)
        self.seed = int(seed)

    def weak_tasks(self) -> list[str]:
        if self.path is None or not self.path.exists():
            raise FileNotFoundError(
                f"refine_weak_upsample: no diagnosis at {self.path}; run redone_diagnose_sft first or give "
                "diagnosis_path."
            )
        return list(json.loads(self.path.read_text())["weak_tasks"])

    def __call__(self, dataset: Dataset) -> Dataset:
        split = current_split()
        if self.factor == 1.0 or (split is not None and split != "train"):
            return dataset
        rows = upsample_rows(dataset["task"], self.weak_tasks(), self.factor, self.seed)
        return dataset.select(rows).shuffle(seed=self.seed).flatten_indices()


def make_diagnose_sft(**options: Any) -> DiagnoseSFT:
    return DiagnoseSFT(**options)


def make_refine_upsample(**options: Any) -> RefineUpsample:
    return RefineUpsample(**options)
