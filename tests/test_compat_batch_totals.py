"""trl_ext.compat.step_totals against transformers 5.24 / TRL 1.16: `get_batch_samples` is called once per optimizer
step with all of that step's micro-batches, before any of them is trained; fails loudly if the loop changes."""

import torch
import transformers
import trl
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.compat.step_totals import TESTED_TRANSFORMERS, TESTED_TRL, WindowTotalsMixin
from trl_ext.testing import first_batch, tiny_model, tiny_tokenizer


class _Recording(WindowTotalsMixin, SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []  # (window totals, micro-batch token count) per compute_loss call

    def window_totals(self, batch):
        return {"tokens": (batch["labels"][:, 1:] != -100).sum(), "rows": batch["labels"].shape[0]}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        totals = self.take_window_totals()
        self.seen.append(
            (
                None if totals is None else {k: float(v) for k, v in totals.items()},
                None if num_items_in_batch is None else float(num_items_in_batch),
            )
        )
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def test_versions_it_was_written_against():
    """Pinned in constraints.txt; `make test-latest` runs this against newer releases. When it fails there, re-check
    that `Trainer.get_batch_samples` still fetches every micro-batch of a step before the first `training_step` (the
    tests below), then update TESTED_TRANSFORMERS / TESTED_TRL in trl_ext's batch-totals module."""
    assert transformers.__version__.startswith(TESTED_TRANSFORMERS), (
        f"transformers {transformers.__version__}, written against {TESTED_TRANSFORMERS}: re-check get_batch_samples"
    )
    assert trl.__version__.startswith(TESTED_TRL), f"trl {trl.__version__}, written against {TESTED_TRL}"


def test_totals_cover_the_whole_step_and_close_after_it(tmp_path, sft_rows):
    args = SFTConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=2,
        report_to="none",
        bf16=False,
        save_strategy="no",
        logging_steps=1,
        remove_unused_columns=False,
    )
    trainer = _Recording(
        model=tiny_model(), args=args, train_dataset=Dataset.from_list(sft_rows), processing_class=tiny_tokenizer()
    )
    trainer.train()
    assert len(trainer.seen) == 4  # 2 steps x 2 micro-batches
    for step in (trainer.seen[:2], trainer.seen[2:]):
        (first, n1), (second, n2) = step
        assert first == second and first["rows"] == 4  # the same totals for both micro-batches of a step
        assert first["tokens"] == n1 == n2  # equals TRL's num_items_in_batch for a token count
    assert trainer.take_window_totals() is None  # closed after the step's last micro-batch
    with torch.no_grad():
        trainer.compute_loss(trainer.model, first_batch(trainer))
    assert trainer.seen[-1][0] is None  # outside the loop: no totals
