"""trl_ext.training.normalization: per-sequence-mean losses under gradient accumulation with uneven micro-batches.

Written against TRL 1.16 / transformers 5.24: `SequenceCountMixin` counts through `WindowTotalsMixin`'s override of
`Trainer.get_batch_samples`, which must run once per optimizer step with that step's micro-batches; the GA test fails
if that changes."""

from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.testing import SGD_STEP_ARGS, tiny_model, tiny_tokenizer
from trl_ext.training.normalization import (
    SequenceCountMixin,
    accumulation_divisor,
    count_scored_sequences,
    sequence_normalizer,
    sequence_token_weights,
)


def test_sequence_token_weights_and_counts():
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.allclose(sequence_token_weights(mask), torch.tensor([0.5, 0.5, 0.25, 0.25, 0.25, 0.25]))
    labels = torch.tensor([[-100, -100, 5, 6], [7, -100, -100, -100], [-100, 1, 2, -100]])
    assert count_scored_sequences(labels) == 2  # row 1 scores only position 0, which nothing predicts


class _SequenceMeanSFT(SequenceCountMixin, SFTTrainer):
    """mean over sequences of each sequence's token-mean NLL, through TRL's fused head."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs, fused_lm_head=True)
        mask = inputs["labels"][:, 1:] != -100
        per_sequence = -(out.log_probs * mask).sum(1) / mask.sum(1).clamp(min=1)
        divisor, multiplier = sequence_normalizer(self, mask, num_items_in_batch)
        self.seen_counts.append(int(divisor))
        return per_sequence.sum() / divisor * multiplier


class _LocalMean(_SequenceMeanSFT):
    num_sequences_in_batch = None  # forget the global count: each micro-batch its own mean


def _update(tmp_path, cls, per_device, accumulation):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
            "completion": [{"role": "assistant", "content": f"{a} + {b} = {a + b}." + " ok" * k}],
        }
        for a, b, k in [(1, 2, 0), (30, 4, 5), (7, 8, 1), (10, 20, 3), (5, 5, 7)]
    ]
    model = tiny_model()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = SFTConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        **SGD_STEP_ARGS,
    )
    trainer = cls(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer())
    trainer.seen_counts = []
    trainer.train()
    return {n: initial[n] - p.detach() for n, p in model.named_parameters()}, trainer.seen_counts


def test_uneven_accumulation_counts_sequences_globally(tmp_path):
    """5 sequences: one micro-batch of 5, or micro-batches of 2, 2 and 1 accumulated; the same SGD update."""
    single, counts_single = _update(tmp_path / "a", _SequenceMeanSFT, 5, 1)
    accumulated, counts_accumulated = _update(tmp_path / "b", _SequenceMeanSFT, 2, 3)
    assert counts_single == [5] and counts_accumulated == [5, 5, 5]
    assert max((single[k] - accumulated[k]).abs().max().item() for k in single) < 1e-6
    local, _ = _update(tmp_path / "c", _LocalMean, 2, 3)  # the test has power: local means give another update
    assert max((single[k] - local[k]).abs().max().item() for k in single) > 1e-4


def test_outside_training_the_count_is_local():
    class Stub:
        num_sequences_in_batch = torch.tensor(9)

    mask = torch.tensor([[True, False], [False, False], [True, True]])
    divisor, multiplier = sequence_normalizer(Stub(), mask, num_items_in_batch=None)
    assert int(divisor) == 2 and multiplier == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("declared", "accepts", "items", "loss_func", "expected"),
    [
        (None, True, 10, None, 3),  # SFTTrainer on a model taking loss kwargs: the step leaves the loss undivided
        (None, True, None, None, 1),  # no item count (evaluation, direct calls): the step divides the whole loss
        (None, False, 10, None, 1),  # a model without loss kwargs: the step divides
        (None, False, None, object(), 3),  # a compute_loss_func normalises itself
        (True, False, None, None, 3),  # GRPOTrainer / DistillationTrainer declare they scale
        (False, True, 10, None, 1),  # RLOOTrainer declares it does not
    ],
)
def test_accumulation_divisor_follows_the_training_step(declared, accepts, items, loss_func, expected):
    """transformers' training step divides the loss by the accumulation count unless it was scaled already (its rule,
    in Trainer.training_step); a term added per micro-batch must then be divided by hand to count once per step."""
    trainer = SimpleNamespace(
        loss_is_scaled_for_ga=declared,
        model_accepts_loss_kwargs=accepts,
        compute_loss_func=loss_func,
        current_gradient_accumulation_steps=3,
    )
    assert accumulation_divisor(trainer, items) == expected
