"""trl_ext.compat.grpo_seams against TRL 1.16: the three private GRPOTrainer steps it wraps keep their signatures,
are called once per generation batch in the order generate-and-score > single-turn generation > rewards, see and
return what the wrappers assume, and a (B, T) advantage tensor is taken by the loss. Fails loudly when TRL changes."""

import inspect

import pytest
import torch
import trl
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from trl_ext.compat.grpo_seams import (
    SEAMS,
    TESTED_TRL,
    around_generate_and_score,
    around_single_turn_generation,
    observe_rewards,
)
from trl_ext.compat.trainer import prepare_inputs


def test_versions_it_was_written_against():
    """Pinned in constraints.txt; when this fails under a newer TRL, re-read GRPOTrainer's `_generate`,
    `_generate_and_score_completions` and `_compute_loss` against the module docstring, then update TESTED_TRL."""
    assert trl.__version__.startswith(TESTED_TRL), f"trl {trl.__version__}, written against {TESTED_TRL}"


def test_signatures():
    params = {name: list(inspect.signature(getattr(GRPOTrainer, name)).parameters) for name in SEAMS}
    assert params["_generate_and_score_completions"] == ["self", "inputs"]
    assert params["_generate_single_turn"][:5] == [
        "self",
        "prompt_ids",
        "images",
        "multimodal_fields",
        "num_generations",
    ]
    assert params["_calculate_rewards"] == ["self", "inputs", "prompts", "completions", "completion_ids_list"]
    # the public hook prefix_rft points at the prefix tokens is called by `_compute_loss` with this signature
    assert list(inspect.signature(GRPOTrainer.get_high_entropy_mask).parameters) == [
        "self",
        "entropies",
        "mask",
        "threshold",
    ]


def _reward(completions, **kwargs):
    return [float(i % 3) for i in range(len(completions))]


@pytest.fixture
def trainer(tmp_path, tiny_model_dir):
    config = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=6,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        loss_type="dr_grpo",
        scale_rewards="none",
    )
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": f"Count to {i}."}]} for i in range(8)])
    trainer = GRPOTrainer(model=tiny_model_dir, reward_funcs=_reward, args=config, train_dataset=data)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; the loss is called outside it here
    return trainer


def test_call_order_and_shapes(trainer):
    calls = []

    def score(inner, inputs):
        calls.append(("score", len(inputs)))
        out = inner(inputs)
        calls.append(("scored", tuple(out["advantages"].shape)))
        return out

    def generate(inner, prompt_ids, *args, **kwargs):
        calls.append(("generate", len(prompt_ids), all(isinstance(i, int) for i in prompt_ids[0])))
        completion_ids, logprobs = inner([list(p) + [5] for p in prompt_ids], *args, **kwargs)  # an injected token
        return [[5, *c] for c in completion_ids], logprobs

    around_generate_and_score(trainer, score)
    around_single_turn_generation(trainer, generate)
    observe_rewards(trainer, lambda r: calls.append(("rewards", tuple(r.shape))))
    trainer.model.train()
    batch = prepare_inputs(trainer, next(iter(trainer.get_train_dataloader())))
    assert calls == [("score", 8), ("generate", 8, True), ("rewards", (8, 1)), ("scored", (8,))]
    assert (batch["completion_ids"][:, 0] == 5).all()  # what the generation wrapper returned is the completion


def test_per_token_advantages_are_taken_by_the_loss(trainer):
    """A (B, T) advantage equal to the (B,) one broadcast over T gives the same loss (TRL unsqueezes (B,))."""
    trainer.model.train()
    batch = prepare_inputs(trainer, next(iter(trainer.get_train_dataloader())))
    batch["advantages"] = torch.arange(8, dtype=torch.float32) + 1.0
    row = trainer.compute_loss(trainer.model, dict(batch))
    width = batch["completion_ids"].shape[1]
    per_token = dict(batch, advantages=batch["advantages"][:, None].expand(-1, width).clone())
    assert torch.equal(trainer.compute_loss(trainer.model, per_token), row)
    assert row.abs() > 0
