"""trl_ext.training.sft: DDP settings the fused-head trainers need (the multi-process step itself is checked per
normalisation family in tests/test_distributed*.py, with and without gradient checkpointing), and the chores the base
does for every SFT-loss plugin: the model card's paper, the loss_type rule, metrics by mode, the detached head, mask
columns, seeded draws and the reference model."""

import logging

import pytest
import torch
from datasets import Dataset

from trl_ext import components
from trl_ext.testing import tiny_model, tiny_tokenizer
from trl_ext.training.reference import reference_model
from trl_ext.training.sft import FusedSFTConfig, FusedSFTTrainer
from trl_ext_plugins.asft import PAPER, ASFTConfig, ASFTTrainer

ROWS = [
    {
        "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
        "completion": [{"role": "assistant", "content": "2 + 2 = 4."}],
    }
]


def _config(tmp_path, **kw):
    return ASFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **kw)


def test_unused_parameter_search_is_turned_off(tmp_path):
    # transformers would turn it on without gradient checkpointing, and DDP would then mark the LM head (projected
    # outside the forward) unused and fail when its gradient arrives
    config = _config(tmp_path, gradient_checkpointing=False)
    assert config.ddp_find_unused_parameters is None
    ASFTTrainer(
        model=tiny_model(), args=config, train_dataset=Dataset.from_list(ROWS), processing_class=tiny_tokenizer()
    )
    assert config.ddp_find_unused_parameters is False


def test_unused_parameter_search_requested_is_refused(tmp_path):
    config = _config(tmp_path, ddp_find_unused_parameters=True)
    with pytest.raises(ValueError, match="ddp_find_unused_parameters"):
        ASFTTrainer(
            model=tiny_model(), args=config, train_dataset=Dataset.from_list(ROWS), processing_class=tiny_tokenizer()
        )


def test_args_of_another_config_class_are_refused(tmp_path):
    from trl import SFTConfig

    config = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    with pytest.raises(TypeError, match="ASFTTrainer needs args of type ASFTConfig, got SFTConfig"):
        ASFTTrainer(
            model=tiny_model(), args=config, train_dataset=Dataset.from_list(ROWS), processing_class=tiny_tokenizer()
        )


def _trainer(tmp_path, cls=ASFTTrainer, **kw):
    return cls(
        model=tiny_model(),
        args=_config(tmp_path, **kw),
        train_dataset=Dataset.from_list(ROWS),
        processing_class=tiny_tokenizer(),
    )


FUSED_METHODS = [m for m in components("method") if issubclass(m.trainer, FusedSFTTrainer)]


def test_every_fused_method_is_covered():
    names = {m.name for m in FUSED_METHODS}
    assert {"asft", "curiosft", "fait", "ift", "lfu", "otr", "poft", "soft", "pkt"} <= names


@pytest.mark.parametrize("method", FUSED_METHODS, ids=lambda m: m.name)
def test_the_trainer_cites_its_methods_paper(method):
    assert method.trainer.paper is method.paper is not None
    assert issubclass(method.config, FusedSFTConfig)


def test_model_card_paper_is_the_paper_record(tmp_path):
    trainer = _trainer(tmp_path, asft_loss="sft")
    # what TRL 1.16's create_model_card reads: title, id (arXiv), citation
    assert trainer._paper == {
        "title": "Anchored Supervised Fine-Tuning",
        "id": "2509.23753",
        "citation": PAPER.citation,
    }
    trainer.create_model_card(model_name="m")
    card = (tmp_path / "README.md").read_text()
    assert "Anchored Supervised Fine-Tuning" in card and "zhu2025anchored" in card


@pytest.mark.parametrize("method", FUSED_METHODS, ids=lambda m: m.name)
def test_loss_type_is_refused_with_the_methods_reason(tmp_path, method):
    own_loss = method.config.own_loss
    assert method.trainer._name in own_loss  # the reason names the method
    with pytest.raises(ValueError) as refused:
        method.config(output_dir=str(tmp_path), use_cpu=True, report_to="none", loss_type="dft")
    assert str(refused.value) == f"loss_type='dft' conflicts with {own_loss}; leave loss_type='nll'."


def test_log_metric_lands_in_the_current_mode(tmp_path):
    trainer = _trainer(tmp_path, asft_loss="sft")
    trainer.model.train()
    assert trainer.metric_mode == "train"
    trainer.log_metric("probe", 1.5)
    trainer.model.eval()
    assert trainer.metric_mode == "eval"
    trainer.log_metric("probe", -2.0)
    # 3 scored tokens with values 1, 2, 6: the token mean is 3 (the fourth position is not scored)
    trainer.log_token_means(
        torch.tensor([[True, True, False], [True, False, False]]), probe_mean=torch.tensor([1.0, 2, 6])
    )
    assert trainer._metrics["train"]["probe"] == [1.5]
    assert trainer._metrics["eval"]["probe"] == [-2.0] and trainer._metrics["eval"]["probe_mean"] == [3.0]
    assert "probe_mean" not in trainer._metrics["train"]


def test_detached_head_sends_no_gradient(tmp_path):
    trainer = _trainer(tmp_path, asft_loss="sft")
    head, detached = trainer.policy_head, trainer.detached_head()
    assert torch.equal(detached.weight, head.weight) and not detached.weight.requires_grad
    assert head.weight.requires_grad


def test_shifted_masks_align_with_labels_and_a_batch_without_them_warns_once(tmp_path, caplog):
    class Masked(ASFTTrainer):
        loss_only_keys = ("probe_mask",)

    trainer = _trainer(tmp_path, cls=Masked, asft_loss="sft")
    mask = torch.ones(1, 3, dtype=torch.bool)
    shifted = trainer.shifted_masks({"probe_mask": torch.tensor([[9, 1, 0, 1]])}, mask)
    assert shifted["probe_mask"].tolist() == [[1, 0, 1]]  # position t predicts token t + 1, as the labels
    inputs = {"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([[1, 2]]), "probe_mask": torch.ones(1, 2)}
    assert "probe_mask" not in trainer.forward_inputs(inputs) and "labels" not in trainer.forward_inputs(inputs)
    with caplog.at_level(logging.WARNING):
        assert trainer.shifted_masks({}, mask) is None and trainer.shifted_masks({}, mask) is None
    assert sum("without probe_mask" in r.message for r in caplog.records) == 1


def test_micro_step_generator_repeats_for_the_same_step_and_micro_batch(tmp_path):
    a, b = _trainer(tmp_path, asft_loss="sft"), _trainer(tmp_path, asft_loss="sft")

    def draws(trainer, stream="probe"):
        return torch.randint(0, 1000, (6,), generator=trainer.micro_step_generator(stream)).tolist()

    first, second = draws(a), draws(a)
    assert first != second  # the next micro-batch of the step draws afresh
    assert draws(b) == first and draws(b) == second  # a second run draws the same
    assert draws(b, "other") != first  # another stream of the same micro-batch is independent
    a.state.global_step = 1
    assert draws(a) not in (first, second)


def test_reference_model_copies_loads_or_defers_to_the_adapter_base(tmp_path):
    policy = tiny_model()
    copy, described = reference_model(policy)
    assert described.startswith("initial copy of") and not copy.training
    assert all(not p.requires_grad for p in copy.parameters())
    for (name, p), q in zip(policy.named_parameters(), copy.parameters(), strict=True):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr(), name
    assert reference_model(policy, adapter_base=True) == (None, "adapter-disabled base")
    other = tiny_model(seed=1).train()
    given, described = reference_model(policy, other)
    assert given is other and described == "given" and not given.training  # used as it is, frozen
    with pytest.raises(ValueError, match="different vocabulary size"):
        reference_model(policy, tiny_model(vocab_size=policy.config.vocab_size + 8))


def test_num_tokens_is_counted_as_sft_trainer_counts_it(tmp_path):
    # the fused methods' compute_loss replaces SFTTrainer's, which logs `num_tokens` (what `trl-ext compare` reports as
    # a training budget): the same rows and steps give the same count, and by hand it is every attention-mask token
    from trl import SFTConfig, SFTTrainer

    rows = ROWS * 3 + [
        {
            "prompt": [{"role": "user", "content": "And 12 + 30?"}],
            "completion": [{"role": "assistant", "content": "12 + 30 = 42, since 2 + 0 = 2 and 1 + 3 = 4."}],
        }
    ]
    common = dict(use_cpu=True, bf16=False, report_to="none", max_steps=2, per_device_train_batch_size=2)
    common.update(logging_steps=1, save_strategy="no", seed=3)
    counts = {}
    for name, cls, config in (
        ("sft", SFTTrainer, SFTConfig(output_dir=str(tmp_path / "sft"), **common)),
        ("asft", ASFTTrainer, ASFTConfig(output_dir=str(tmp_path / "asft"), **common)),
    ):
        trainer = cls(
            model=tiny_model(), args=config, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
        )
        by_hand = sum(len(row["input_ids"]) for row in trainer.train_dataset)  # padding is not counted
        trainer.train()
        counts[name] = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
    assert counts["asft"] == counts["sft"] and counts["asft"][-1] == by_hand  # 2 steps x 2 rows: every row once
