"""Expert (demonstration) batches beside on-policy rollouts: the SFT+GRPO hybrid base's shared machinery.

Methods that mix an SFT term on demonstrations into an RL trainer (CHORD; prefix-guided methods) need, besides the
prompt dataset the RL trainer reads, a second dataset of worked answers. It is a trainer argument, never a config
field (a config is pickled into every checkpoint), built by the `sft_grpo` training base from the config's string
fields (`expert_trainer_kwargs`):

- `expert_dataset_name`: a `builtin:NAME`, a local file or folder, or a Hub id, loaded through `trl_ext.data` in its
  SFT form (`prompt`/`completion` or `messages`);
- `expert_dataset_config`, `expert_dataset_split` (default "train").

`ExpertStream` tokenises the rows as SFTTrainer renders prompt-completion data (`trl_ext.inference.scoring.
tokenize_pair`: chat template, completion-only labels) and draws micro-batches with its own generator, never the
global torch RNG, so drawing them leaves the rollouts of the RL trainer exactly as they would be without. Under several
processes every process draws the same global batch of `batch_size * num_processes` rows and keeps its slice, so the
processes together see what one process with the whole batch would. Its position (epoch, offset, draws) is saved
in each checkpoint (`ExpertStateCallback`) and restored on resume (`ExpertStream.restore`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

STATE_FILE = "trl_ext_expert_state.json"
EXPERT_SHAPES = (("prompt", "completion"), ("messages",))


class ExpertDatasetError(ValueError):
    """An expert dataset that cannot be used (missing, wrong columns, no trainable token), raised before training."""


# --- loading (the sft_grpo base's extra trainer arguments) ------------------------------------------------------------
def load_expert_dataset(name: str, config: str | None = None, split: str = "train"):
    """The `split` of the expert dataset `name` (builtin:NAME, a file, a folder or a Hub id) in its SFT form, checked
    for a usable column shape."""
    from trl_ext.data import load_dataset

    dataset = load_dataset(name, config, form="sft")
    if split not in dataset:
        raise ExpertDatasetError(f"Expert dataset {name} has no split {split!r}; splits: {list(dataset)}.")
    dataset = dataset[split]
    check_expert_columns(dataset.column_names, name)
    if len(dataset) == 0:
        raise ExpertDatasetError(f"Expert dataset {name} ({split}) has no rows.")
    return dataset


def check_expert_columns(columns: Sequence[str], name: str = "the expert dataset") -> None:
    if not any(all(c in columns for c in shape) for shape in EXPERT_SHAPES):
        raise ExpertDatasetError(
            f"Expert dataset {name} needs columns prompt + completion, or messages (SFT form); it has "
            f"{', '.join(columns) or 'none'}."
        )


def expert_trainer_kwargs(stage: Any, model: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """`TrainingBase.extra_kwargs` of the sft_grpo base: `{"expert_dataset": ...}` loaded from the stage config's
    `expert_dataset_name` (+ `expert_dataset_config`, `expert_dataset_split`)."""
    config = stage.config
    name = getattr(config, "expert_dataset_name", None)
    if not name:
        raise ExpertDatasetError(
            f"{stage.method.name} needs demonstrations: pass --expert_dataset_name (builtin:NAME, a file, a folder or "
            "a Hub id of an SFT dataset with prompt + completion or messages)."
        )
    dataset = load_expert_dataset(
        name, getattr(config, "expert_dataset_config", None), getattr(config, "expert_dataset_split", "train")
    )
    return {"expert_dataset": dataset}


# --- tokenising ---------------------------------------------------------------------------------------------------
def _prompt_and_completion(row: dict[str, Any]) -> tuple[Any, Any]:
    if "prompt" in row and "completion" in row:
        return row["prompt"], row["completion"]
    messages = list(row["messages"])
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        raise ExpertDatasetError("An expert row's messages need an assistant turn after at least one other turn.")
    return messages[:last], messages[last:]


def tokenize_expert(dataset, tokenizer, max_length: int | None = None) -> list[tuple[list[int], list[int]]]:
    """(input ids, completion mask) of each row, as SFTTrainer renders prompt-completion data (a `messages` row is
    its last assistant turn after the rest). Rows whose completion is cut away by `max_length` are refused."""
    from trl_ext.inference.scoring import tokenize_pair

    encoded = []
    for i, row in enumerate(dataset):
        prompt, completion = _prompt_and_completion(row)
        ids, mask = tokenize_pair(tokenizer, prompt, completion, max_length)
        if not any(mask):
            raise ExpertDatasetError(
                f"Expert row {i} has no completion token left after truncation to {max_length} tokens; raise the "
                "expert max length or drop the row."
            )
        encoded.append((list(ids), list(mask)))
    return encoded


def collate_expert(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (-100 outside the completions)."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids)
        attention[i, :n] = 1
        labels[i, :n] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids), -100)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# --- drawing ------------------------------------------------------------------------------------------------------
class ExpertSampler:
    """Index draws over `size` rows: a fresh permutation per epoch from a generator seeded with (seed, epoch), read in
    order; a draw may span the end of an epoch. The state is (epoch, offset, draws)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size < 1:
            raise ExpertDatasetError("The expert dataset has no rows.")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.offset, self.draws = 0, 0, 0
        self._order: list[int] | None = None

    def _permutation(self) -> list[int]:
        if self._order is None:
            if self.shuffle:
                gen = torch.Generator().manual_seed(self.seed + self.epoch)
                self._order = torch.randperm(self.size, generator=gen).tolist()
            else:
                self._order = list(range(self.size))
        return self._order

    def next(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            order = self._permutation()
            take = min(n - len(out), self.size - self.offset)
            out += order[self.offset : self.offset + take]
            self.offset += take
            if self.offset == self.size:
                self.epoch, self.offset, self._order = self.epoch + 1, 0, None
        self.draws += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset, "draws": self.draws, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size or state["seed"] != self.seed:
            raise ExpertDatasetError(
                f"The checkpoint's expert state was saved for {state['size']} rows with seed {state['seed']}; this run "
                f"has {self.size} rows with seed {self.seed}. Resume with the same expert dataset and seed."
            )
        self.epoch, self.offset, self.draws, self._order = state["epoch"], state["offset"], state["draws"], None


class ExpertStream:
    """Tokenised expert rows and their sampler: `next_batch()` is this process's slice of the next global batch of
    `batch_size * num_processes` rows, collated."""

    def __init__(
        self,
        dataset,
        tokenizer,
        batch_size: int,
        seed: int,
        max_length: int | None = None,
        process_index: int = 0,
        num_processes: int = 1,
        shuffle: bool = True,
    ):
        check_expert_columns(dataset.column_names)
        if batch_size < 1:
            raise ExpertDatasetError(f"expert batch size must be >= 1, got {batch_size}.")
        self.rows = tokenize_expert(dataset, tokenizer, max_length)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = 0 if pad is None else pad
        self.batch_size, self.process_index, self.num_processes = batch_size, process_index, num_processes
        self.sampler = ExpertSampler(len(self.rows), seed, shuffle)
        self.last_indices: list[int] = []

    def next_batch(self) -> dict[str, torch.Tensor]:
        indices = self.sampler.next(self.batch_size * self.num_processes)
        start = self.process_index * self.batch_size
        self.last_indices = indices[start : start + self.batch_size]
        return collate_expert([self.rows[i] for i in self.last_indices], self.pad_id)

    # --- checkpoint state -----------------------------------------------------------------------------------------
    def save(self, folder: str) -> None:
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump(self.sampler.state_dict(), f)

    def restore(self, folder: str) -> bool:
        """Restore the position saved in checkpoint `folder`; False (and a warning) when it holds none."""
        path = os.path.join(folder, STATE_FILE)
        if not os.path.isfile(path):
            logger.warning(
                "%s holds no expert state (%s): the expert batches restart from the beginning.", folder, path
            )
            return False
        with open(path) as f:
            self.sampler.load_state_dict(json.load(f))
        return True


class ExpertStateCallback(TrainerCallback):
    """Writes the expert stream's position into every checkpoint (from the main process; every process holds the
    same position, since each draws the same global batch)."""

    def __init__(self, stream: ExpertStream, trainer: Any):
        self.stream, self.trainer = stream, trainer

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if self.trainer.is_world_process_zero() and os.path.isdir(folder):
            self.stream.save(folder)


__all__ = [
    "EXPERT_SHAPES",
    "STATE_FILE",
    "ExpertDatasetError",
    "ExpertSampler",
    "ExpertStateCallback",
    "ExpertStream",
    "check_expert_columns",
    "collate_expert",
    "expert_trainer_kwargs",
    "load_expert_dataset",
    "tokenize_expert",
]
