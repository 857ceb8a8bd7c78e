"""BestByFewShotVal: model selection by the loss on the few-shot validation rows (one per class), evaluated every
`val_freq` optimizer steps; the best weights are kept in CPU memory (trainable parameters only) and restored when
training ends, a light stand-in for saving a checkpoint every 10 steps."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class BestByFewShotVal(TrainerCallback):
    """Keeps the weights of the step with the lowest validation loss; a tie keeps the earlier step (strict
    improvement, as the official code). `val_loss(model) -> float` measures the loss."""

    def __init__(self, val_loss: Callable[[torch.nn.Module], float], val_freq: int = 10,
                 extra_metrics: dict[str, float] | None = None) -> None:  # fmt: skip
        if val_freq < 1:
            raise ValueError(f"fewshot_best_val: val_freq={val_freq} must be >= 1.")
        self.val_loss, self.val_freq = val_loss, int(val_freq)
        self.extra_metrics = dict(extra_metrics or {})
        self.best_loss, self.best_step = math.inf, None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[tuple[int, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.val_freq:
            return
        was_training = model.training
        model.eval()
        with torch.no_grad():
            loss = float(self.val_loss(model))
        model.train(was_training)
        self.history.append((state.global_step, loss))
        state.log_history.append({"fewshot/val_loss": loss, "step": state.global_step})
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, state.global_step
            self.best_state = {
                n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad
            }

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.best_state is None or model is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_state.items():
                params[name].copy_(value.to(params[name].device))
        logger.info("fewshot: restored step %d (validation loss %.4g)", self.best_step, self.best_loss)
        figures = {"fewshot/best_step": float(self.best_step), "fewshot/best_val_loss": self.best_loss,
                   **self.extra_metrics}  # fmt: skip
        state.log_history.append({**figures, "step": state.global_step})


def make_best_val_callback(
    dataset: Any = "builtin:fewshot_sentiment",
    split: str = "train",
    label_column: str = "label",
    k: Any = 3,
    val_per_class: Any = 1,
    test_ratio: Any = 0.2,
    seed: Any = 0,
    val_freq: Any = 10,
    batch_size: Any = 16,
    tokenizer: Any = None,
) -> BestByFewShotVal:
    """The registry's factory (`fewshot_best_val`): the validation rows are those `few_shot_split` draws from
    `dataset`'s `split` with the same options (give the transform and the callback the same ones); the loss is the
    token-mean NLL of their completions, as SFTTrainer's eval_loss."""
    from trl_ext.evaluation.callback import eval_rows
    from trl_ext.evaluation.metrics import completion_nll

    from .split import few_shot_indices

    rows = eval_rows(dataset, split, "fewshot_best_val", required=(label_column, "prompt", "completion"))
    idx = few_shot_indices([r[label_column] for r in rows], int(k), int(val_per_class), float(test_ratio), int(seed))
    val = {"prompt": [rows[i]["prompt"] for i in idx.validation],
           "completion": [rows[i]["completion"] for i in idx.validation]}  # fmt: skip
    holder: dict[str, Any] = {"tokenizer": tokenizer}

    class _Callback(BestByFewShotVal):
        def on_train_begin(self, args, state, control, processing_class=None, **kw):
            holder["tokenizer"] = holder["tokenizer"] or processing_class

    def val_loss(model) -> float:
        return completion_nll(model, holder["tokenizer"], val, batch_size=int(batch_size))

    extra = {"fewshot/num_train": float(len(idx.train)), "fewshot/num_val": float(len(idx.validation))}
    return _Callback(val_loss, int(val_freq), extra)
