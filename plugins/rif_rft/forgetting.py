"""The card's continual-learning protocol: tasks T_1..T_n trained in order, each run from the previous checkpoint;
after finishing task j every task is evaluated, a_{j,i}, and

    AA_j = (1/j) sum_{i<=j} a_{j,i}                                    (average accuracy)
    FM_j = (1/(j-1)) sum_{i<j} max_{l in [i, j-1]} (a_{l,i} - a_{j,i})  (forgetting)

plus each task's change against the base model. `ContinualEvalCallback` measures it inside any training run: it
evaluates every task (at train begin once for the base row, at each evaluation, every `every_n_steps` steps, and at
the end), logs `cl/acc/<task>`, `cl/AA`, `cl/FM` (from the second task on) and `cl/delta/<task>`, and at the end
stores this run's row of the accuracy matrix in a JSON history file that the next task's run reads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

TaskEval = Callable[[Any, Any], float]  # (model, tokenizer) -> accuracy in [0, 1]


def average_accuracy(matrix: Sequence[Sequence[float]], j: int | None = None) -> float:
    """AA_j of the accuracy matrix (`matrix[l][i]` = a_{l+1,i+1}, row l after task l+1; j defaults to the last row)."""
    j = len(matrix) if j is None else j
    return sum(matrix[j - 1][i] for i in range(j)) / j


def forgetting_measure(matrix: Sequence[Sequence[float]], j: int | None = None) -> float:
    """FM_j (j >= 2) of the accuracy matrix; NaN for j = 1 (nothing learnt before to forget)."""
    j = len(matrix) if j is None else j
    if j < 2:
        return math.nan
    drops = [max(matrix[row][i] - matrix[j - 1][i] for row in range(i, j - 1)) for i in range(j - 1)]
    return sum(drops) / (j - 1)


class ContinualEvalCallback(GenerationEvalCallback):
    """Logs `cl/acc/<task>` for every task of `task_evals` (name -> `(model, tokenizer) -> accuracy`, in task order),
    `cl/AA` and `cl/FM` for the run training `current_task` (default: the first task without a row in `history`),
    and `cl/delta/<task>` against the base row (evaluated at train begin when `history` has none).

    `history`: the JSON file holding the accuracy matrix across runs (default `<output_dir>/rif_forgetting.json`);
    give every run of a task sequence the same file."""

    label = "rif_forgetting"

    def __init__(
        self,
        task_evals: Mapping[str, TaskEval],
        current_task: str | None = None,
        history: str | os.PathLike | None = None,
        every_n_steps: int | None = None,
        at_train_begin: bool = True,
        at_train_end: bool = True,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, at_train_end=at_train_end)
        if not task_evals:
            raise ValueError("rif_forgetting: task_evals is empty; give at least one task.")
        self.tasks = list(task_evals)
        if current_task is not None and current_task not in self.tasks:
            raise ValueError(f"rif_forgetting: current_task={current_task!r} is none of the tasks {self.tasks}.")
        self.task_evals = dict(task_evals)
        self.current_task, self.history_path = current_task, history
        self.at_train_begin = at_train_begin
        self.rows: dict[str, dict[str, float]] = {}  # trained task -> its accuracies after training it
        self.base: dict[str, float] | None = None
        self.last: dict[str, float] = {}

    # --- the accuracy matrix -------------------------------------------------------------------------------------
    @property
    def j(self) -> int:
        """This run's position in the task order (1-based)."""
        if self.current_task is not None:
            return self.tasks.index(self.current_task) + 1
        done = [t for t in self.tasks if t in self.rows]
        if len(done) == len(self.tasks):
            raise ValueError(f"rif_forgetting: every task of {self.tasks} has a row in the history; set current_task.")
        return next(i for i, t in enumerate(self.tasks) if t not in self.rows) + 1

    def figures(self, acc: Mapping[str, float]) -> dict[str, float]:
        """cl/acc/<task>, cl/AA_j and cl/FM_j with `acc` as row j (rows l < j from the history), cl/delta/<task>."""
        j = self.j
        out = {f"cl/acc/{t}": float(acc[t]) for t in self.tasks}
        out["cl/AA"] = sum(acc[t] for t in self.tasks[:j]) / j
        if j >= 2:
            drops = []
            for i, task in enumerate(self.tasks[: j - 1]):
                earlier = [self.rows[t][task] for t in self.tasks[i : j - 1] if t in self.rows]
                if earlier:  # a_{l,i} for the rows l in [i, j-1] the history holds
                    drops.append(max(a - acc[task] for a in earlier))
            out["cl/FM"] = sum(drops) / len(drops) if drops else math.nan
        if self.base is not None:
            out.update({f"cl/delta/{t}": float(acc[t]) - self.base[t] for t in self.tasks if t in self.base})
        return out

    def accuracies(self, model: Any, tokenizer: Any) -> dict[str, float]:
        return {t: float(self.task_evals[t](model, tokenizer)) for t in self.tasks}

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        self.last = self.accuracies(model, tokenizer)
        return self.figures(self.last)

    # --- the history file ----------------------------------------------------------------------------------------
    def _path(self, args: Any) -> Path:
        return Path(self.history_path or Path(args.output_dir) / "rif_forgetting.json")

    def _load(self, path: Path) -> None:
        if path.exists():
            saved = json.loads(path.read_text())
            self.rows = {t: dict(a) for t, a in saved.get("rows", {}).items()}
            self.base = saved.get("base")

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"tasks": self.tasks, "base": self.base, "rows": self.rows}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(saved, indent=1))
        os.replace(tmp, path)

    # --- the trainer's events ------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        path = self._path(args)
        self._load(path)
        if self.at_train_begin and self.base is None and model is not None and state.is_world_process_zero:
            was_training = model.training
            try:
                self.base = self.accuracies(model, processing_class)
            finally:
                model.train(was_training)
            state.log_history.append({**{f"cl/base/{t}": a for t, a in self.base.items()}, "step": state.global_step})
            print(f"{self.label} base: " + ", ".join(f"{t}={a:.4g}" for t, a in self.base.items()), flush=True)
            self._save(path)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        super().on_train_end(args, state, control, model=model, processing_class=processing_class, **kwargs)
        if self.last and state.is_world_process_zero:
            task = self.tasks[self.j - 1]
            self.rows[task] = dict(self.last)
            self._save(self._path(args))


def _dataset_name(name: str) -> str:
    # `dataset=rif_tasks` inside --callbacks (where ':' separates options) means builtin:rif_tasks
    if ":" in name or "/" in name or os.path.exists(name):
        return name
    from trl_ext.plugin.registry import registry

    names = {r.name for r in registry().components("dataset")}
    return f"builtin:{name}" if name in names else name


def generation_accuracy(
    rows: Sequence[Mapping[str, Any]],
    judge: Callable[..., bool],
    prompt_column: str = "prompt",
    answer_column: str = "answer",
    max_new_tokens: int = 16,
    batch_size: int = 16,
) -> TaskEval:
    """A task evaluator: the share of `rows` whose greedy answer the judge accepts against `answer_column`."""
    from trl_ext.evaluation.judges import judge_all
    from trl_ext.inference.generation import generate

    prompts = [r[prompt_column] for r in rows]
    golds = [r[answer_column] for r in rows]

    def accuracy(model: Any, tokenizer: Any) -> float:
        answers = generate(model, tokenizer, prompts, max_new_tokens, batch_size, False)
        verdicts = judge_all(judge, prompts, answers, golds)
        return sum(verdicts) / len(verdicts) if verdicts else math.nan

    return accuracy


def make_forgetting_callback(
    dataset: str = "rif_tasks",
    split: str = "test",
    form: str | None = None,
    task_column: str = "task",
    tasks: Any = None,
    current_task: str | None = None,
    n: int | None = 16,
    judge: str = "trl_ext_plugins.rif_rft.data:rif_task_judge",
    prompt_column: str = "prompt",
    answer_column: str = "answer",
    max_new_tokens: int = 16,
    batch_size: int = 16,
    history: str | None = None,
    every_n_steps: int | None = None,
    at_train_begin: bool = True,
    at_train_end: bool = True,
) -> ContinualEvalCallback:
    """`--callbacks rif_forgetting[:key=value...]`: the tasks are the values of `task_column` in `dataset`'s `split`
    (in order of appearance, or `tasks` as "a+b+c"), each evaluated on its first `n` rows by greedy generation and
    `judge` (a name from `trl_ext.evaluation.judges` or an import path; default: rif_tasks' answer match)."""
    from trl_ext.data import load_dataset
    from trl_ext.evaluation.callback import eval_rows
    from trl_ext.evaluation.judges import resolve_judge

    data = load_dataset(_dataset_name(str(dataset)), form)
    if split not in data:
        raise ValueError(f"rif_forgetting: {dataset} has no split {split!r}; splits: {list(data)}")
    rows = eval_rows(data[split], split, "rif_forgetting", (prompt_column, answer_column, task_column))
    order = list(dict.fromkeys(r[task_column] for r in rows))
    if tasks is not None:
        wanted = (
            [t.strip() for t in str(tasks).replace(",", "+").split("+")] if isinstance(tasks, str) else list(tasks)
        )
        unknown = [t for t in wanted if t not in order]
        if unknown:
            raise ValueError(f"rif_forgetting: tasks {unknown} are not in {dataset}'s {task_column} ({order}).")
        order = wanted
    judge_fn = resolve_judge(judge)
    evals = {}
    for task in order:
        task_rows = [r for r in rows if r[task_column] == task][:n]
        evals[task] = generation_accuracy(
            task_rows, judge_fn, prompt_column, answer_column, max_new_tokens, batch_size
        )
    return ContinualEvalCallback(evals, current_task, history, every_n_steps, at_train_begin, at_train_end)
