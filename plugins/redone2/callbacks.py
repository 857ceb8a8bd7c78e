"""`redone_metrics`: the card's per-stage report, logged when a stage's training ends (and at evaluations):
`redone/<stage>/<task>` (mean rule reward of greedy answers on held-out rows of each task), `redone/<stage>/mean`,
`redone/general_nll` (mean per-token NLL of held-out general chat answers) and, with a base model,
`redone/general_delta` = general NLL of this model minus the base's (> 0: general ability lost, the seesaw check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

from .transforms import eval_rows, task_scores


def general_nll(model: Any, tokenizer: Any, rows: Any, batch_size: int = 8) -> float:
    """Mean per-token negative log-likelihood of the rows' completions given their prompts."""
    from trl_ext.inference.scoring import sequence_logprobs

    scored = sequence_logprobs(
        model, tokenizer, list(rows["prompt"]), list(rows["completion"]), batch_size, progress=False
    )
    tokens = sum(s["num_tokens"] for s in scored)
    return -sum(s["sum_logprob"] for s in scored) / max(tokens, 1)


class RedoneMetricsCallback(GenerationEvalCallback):
    label = "redone"

    def __init__(
        self,
        stage: str | None = None,
        base_model_name_or_path: str | None = None,
        eval_dataset: str = "builtin:redone_sns",
        eval_config: str | None = "rl",
        eval_split: str = "test",
        num_eval: int = 16,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        reward: str = "redone_sns_reward",
        general_dataset: str | None = "builtin:redone_sns",
        general_config: str | None = "general",
        general_split: str = "test",
        num_general: int = 32,
        every_n_steps: int | None = None,
        at_train_end: bool = True,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, at_train_end=at_train_end)
        self.stage = stage
        self.base = base_model_name_or_path
        self.eval = (eval_dataset, eval_config, eval_split, int(num_eval))
        self.generation = {"max_new_tokens": int(max_new_tokens), "batch_size": int(batch_size)}
        self.reward_name = reward
        self.general = (general_dataset, general_config, general_split, int(num_general))
        self._base_nll: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.stage is None:
            self.stage = Path(getattr(args, "output_dir", None) or "stage").name

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        from trl_ext.data import load_dataset
        from trl_ext.plugin.registry import get

        name, config, split, num_eval = self.eval
        rows = eval_rows(load_dataset(name, config)[split], num_eval)
        scores = task_scores(model, tokenizer, rows, get("reward", self.reward_name).build(), **self.generation)
        stage = self.stage or "stage"
        figures = {f"redone/{stage}/{task}": value for task, value in scores.items()}
        if scores:
            figures[f"redone/{stage}/mean"] = sum(scores.values()) / len(scores)
        g_name, g_config, g_split, n_general = self.general
        if g_name and n_general > 0:
            general = load_dataset(g_name, g_config)[g_split]
            general = general.select(range(min(n_general, len(general))))
            nll = general_nll(model, tokenizer, general)
            figures["redone/general_nll"] = nll
            if self.base:
                if self._base_nll is None:
                    from trl_ext.models import load_model, load_tokenizer

                    base = load_model(self.base).to(model.device)
                    self._base_nll = general_nll(base, load_tokenizer(self.base), general)
                    del base
                figures["redone/general_delta"] = nll - self._base_nll
        return figures
