"""trl_ext.compat.distillation leans on DistillationTrainer's private loss seam (written against trl 1.16): these
fail loudly when `_compute_loss` stops handing its hidden states and heads to `_chunked_divergence_loss`."""

import inspect

import torch
import trl
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer
from trl.trainer import distillation_trainer

from trl_ext.compat.distillation import DIVERGENCE_PARAMETERS, divergence_override, trl_divergence_loss
from trl_ext.compat.trainer import prepare_inputs
from trl_ext.testing import tiny_model, tiny_tokenizer

TESTED_TRL = "1.16"


def test_version_and_signature_it_was_written_against():
    assert trl.__version__.startswith(TESTED_TRL), (
        f"trl {trl.__version__}, written against {TESTED_TRL}: re-check DistillationTrainer._compute_loss"
    )
    assert tuple(inspect.signature(trl_divergence_loss).parameters) == DIVERGENCE_PARAMETERS
    assert "_chunked_divergence_loss(" in inspect.getsource(DistillationTrainer._compute_loss)


def test_override_receives_the_loss_call_and_is_restored(tmp_path):
    trainer = DistillationTrainer(
        model=tiny_model(),
        teacher_model=tiny_model(seed=1),
        args=DistillationConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=2,
            max_completion_length=4,
            report_to="none",
            use_cpu=True,
            bf16=False,
        ),
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i} + 1?"}]} for i in range(2)]),
        processing_class=tiny_tokenizer(),
    )
    trainer.model.train()
    batch = prepare_inputs(trainer, next(iter(trainer.get_train_dataloader())))
    reference = trainer.compute_loss(trainer.model, dict(batch))
    calls = []

    def spy(*args, **kwargs):
        bound = inspect.signature(trl_divergence_loss).bind(*args, **kwargs)
        calls.append(bound.arguments)
        return trl_divergence_loss(*args, **kwargs)

    with divergence_override(spy):
        loss = trainer.compute_loss(trainer.model, dict(batch))
    assert distillation_trainer._chunked_divergence_loss is trl_divergence_loss
    assert len(calls) == 1 and torch.equal(loss, reference)
    k = batch["completion_ids"].shape[1]
    assert calls[0]["student_hidden_states"].shape[:2] == (2, k)
    assert torch.equal(calls[0]["completion_mask"], batch["completion_mask"])
    assert calls[0]["teacher_lm_head_weight"] is trainer.teacher_model.get_output_embeddings().weight
