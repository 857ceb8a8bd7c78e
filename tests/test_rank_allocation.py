"""AdaLoRA's rank allocation in trl-ext runs (trl_ext.training.rank_allocation).

Expected ranks come from peft's documented cubic schedule, computed by hand: with init_r=4, target_r=1 on the tiny
model's q_proj and v_proj (2 layers: 4 matrices) the initial budget is 16 ranks and the target 4; over total_step=6
(tinit = tfinal = 0) the budget at step s is int(12 (1 - s/6)^3 + 4): 16, 10, 7, 5, 4, 4, so the last step keeps 4
ranks in all, one per matrix on average. Without the allocation every matrix keeps its 4.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from peft import AdaLoraConfig, get_peft_model
from safetensors.torch import load_file

from trl_ext.testing import interrupted_and_resumed, tiny_model
from trl_ext.training.rank_allocation import STATE_FILE, AdaLoraAllocation, attach_rank_allocation

MATRICES = 4  # q_proj, v_proj in each of 2 layers


def _adalora(**overrides) -> AdaLoraConfig:
    fields = {"init_r": 4, "target_r": 1, "total_step": 1000, "target_modules": ["q_proj", "v_proj"]}
    return AdaLoraConfig(task_type="CAUSAL_LM", **(fields | overrides))


def _kept_ranks(folder) -> tuple[int, int]:
    """(ranks kept in the saved rank_pattern, rows of the saved lora_E tensors)."""
    config = json.loads((folder / "adapter_config.json").read_text())
    pattern = config["rank_pattern"] or {}
    weights = load_file(str(folder / "adapter_model.safetensors"))
    rows = sum(t.shape[0] for name, t in weights.items() if "lora_E" in name)
    return sum(sum(kept) for kept in pattern.values()), rows


def test_cli_run_prunes_to_the_target_budget(tiny_model_dir, tmp_path):
    from trl_ext.cli import main

    _adalora().save_pretrained(str(tmp_path / "adalora"))
    out = tmp_path / "run"
    flags = ["--max_steps", "6", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]
    code = main(
        ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out)]
        + ["--adapter", f"peft:config={tmp_path / 'adalora'}", "--learning_rate", "1e-2"]
        + flags
    )
    assert code == 0
    assert json.loads((out / "adapter_config.json").read_text())["total_step"] == 6
    assert _kept_ranks(out) == (1 * MATRICES, 1 * MATRICES)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out))
    assert sum(p.shape[0] for n, p in loaded.named_parameters() if "lora_E" in n) == MATRICES


def _trainer(folder, rows):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trl_ext.testing import tiny_tokenizer

    model = get_peft_model(tiny_model(), _adalora())
    args = SFTConfig(
        output_dir=str(folder),
        max_steps=6,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        save_strategy="steps",
        save_steps=3,
        report_to="none",
        seed=0,
        data_seed=0,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
    )
    assert attach_rank_allocation(trainer) is not None
    return trainer


def test_resume_restores_the_importance_averages(tmp_path, sft_rows):
    full, cut, resumed = interrupted_and_resumed(lambda folder: _trainer(folder, sft_rows), tmp_path, stop_step=3)
    assert (tmp_path / "cut" / "checkpoint-3" / STATE_FILE).is_file()
    pattern = full.model.peft_config["default"].rank_pattern
    assert pattern == resumed.model.peft_config["default"].rank_pattern
    assert sum(sum(kept) for kept in pattern.values()) == MATRICES
    a = {n: p for n, p in full.model.named_parameters() if "lora_" in n}
    b = dict(resumed.model.named_parameters())
    assert max((a[n] - b[n]).abs().max().item() for n in a) < 1e-6
    # the scores the next allocation would rank: averaged over all six steps in both runs
    averages = full.model.base_model.rankallocator.exp_avg_ipt, resumed.model.base_model.rankallocator.exp_avg_ipt
    assert averages[0].keys() == averages[1].keys()
    largest = max(v.abs().max().item() for v in averages[0].values())
    assert largest > 0
    assert max((averages[0][n] - averages[1][n]).abs().max().item() for n in averages[0]) < 1e-4 * largest


def test_the_averages_saved_are_the_ones_restored(tmp_path, sft_rows):
    """A resume without the saved averages scores the ranks from one step's gradient, not from their moving
    averages: the restored ones must be exactly what the interrupted run held."""
    cut = _trainer(tmp_path / "cut", sft_rows)
    from trl_ext.testing import stop_at_step

    cut.add_callback(stop_at_step(3))
    cut.train()
    allocator = cut.model.base_model.rankallocator
    resumed = _trainer(tmp_path / "cut", sft_rows)
    callback = next(c for c in resumed.callback_handler.callbacks if isinstance(c, AdaLoraAllocation))
    callback._restore(str(tmp_path / "cut" / "checkpoint-3"))
    restored = resumed.model.base_model.rankallocator
    assert allocator.exp_avg_ipt.keys() == restored.exp_avg_ipt.keys() and allocator.exp_avg_ipt
    for name, value in allocator.exp_avg_unc.items():
        assert torch.equal(value, restored.exp_avg_unc[name])


@pytest.mark.parametrize(("deepspeed", "fsdp", "engine"), [(True, False, "DeepSpeed"), (False, True, "FSDP")])
def test_sharded_engines_are_refused_with_the_reason(deepspeed, fsdp, engine):
    model = get_peft_model(tiny_model(), _adalora())
    trainer = SimpleNamespace(model=model, is_deepspeed_enabled=deepspeed, is_fsdp_enabled=fsdp)
    with pytest.raises(ValueError, match=f"under {engine}.*Use DDP"):
        AdaLoraAllocation().bind(trainer)


def test_a_model_without_adalora_gets_no_allocation():
    from peft import LoraConfig

    trainer = SimpleNamespace(model=get_peft_model(tiny_model(), LoraConfig(r=2)), add_callback=None)
    assert attach_rank_allocation(trainer) is None


def test_the_penalty_is_the_one_peft_adds_to_a_model_loss():
    """peft (following the official AdaLoRA code) adds orth_reg_weight * R to a loss the model computes itself: the
    difference between weight 1 and weight 0 on the same batch is R."""
    from trl_ext.training.rank_allocation import orthogonality_penalty

    model = get_peft_model(tiny_model(), _adalora(orth_reg_weight=1.0))
    ids = torch.arange(3, 19).reshape(2, 8)
    with torch.no_grad():
        with_penalty = model(input_ids=ids, labels=ids).loss
        model.peft_config["default"].orth_reg_weight = 0.0
        without = model(input_ids=ids, labels=ids).loss
    penalty = orthogonality_penalty(model.base_model)
    assert penalty.item() > 0.1  # random init is far from orthogonal: the check is not void
    assert abs((with_penalty - without).item() - penalty.item()) < 1e-5


@pytest.mark.parametrize("accumulation", [1, 2])
def test_the_trainer_loss_gets_the_penalty_once_per_optimizer_step(tmp_path, sft_rows, accumulation):
    """TRL's SFT loss comes from the fused head (peft sees no model loss and adds nothing); the callback adds
    0.5 R per step: TRL scales its SFT loss over the accumulated batch (the training step leaves it undivided), so
    each of the `accumulation` micro-batches carries 0.5 R / accumulation."""
    from trl_ext.testing import first_batch
    from trl_ext.training.rank_allocation import orthogonality_penalty

    trainer = _trainer(tmp_path, sft_rows)
    trainer.current_gradient_accumulation_steps = accumulation
    batch = first_batch(trainer)
    trainer.model.train()
    items = (batch["labels"][:, 1:] != -100).sum()
    config = trainer.model.peft_config["default"]
    with torch.no_grad():
        total = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=items)
        config.orth_reg_weight = 0.0
        plain = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=items)
        penalty = orthogonality_penalty(trainer.model.base_model)
    assert trainer.loss_is_scaled_for_ga or trainer.model_accepts_loss_kwargs  # TRL's SFT: scaled over the batch
    assert abs((total - plain).item() - 0.5 * penalty.item() / accumulation) < 1e-5


@pytest.mark.slow
def test_two_ddp_processes_prune_like_one(tiny_model_dir, tmp_path):
    """Under `torchrun` each process scores the ranks from the gradients DDP has already averaged, so two processes of
    two rows keep the ranks, and end with the adapter, of one process of four rows (24 rows: 6 steps, one epoch)."""
    from trl_ext.testing import run_cli, uneven_rows

    _adalora(total_step=6).save_pretrained(str(tmp_path / "adalora"))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in uneven_rows() * 6))
    flags = ["--adapter", f"peft:config={tmp_path / 'adalora'}", "--max_steps", "6", "--optim", "sgd"]
    flags += ["--learning_rate", "0.5", "--lr_scheduler_type", "constant", "--max_grad_norm", "0", "--seed", "0"]
    flags += ["--save_strategy", "no", "--report_to", "none", "--gradient_checkpointing", "false"]
    runs = {}
    for nproc, per_device in ((1, 4), (2, 2)):
        out = tmp_path / f"nproc{nproc}"
        run_cli("train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", out,
                "--per_device_train_batch_size", per_device, *flags, nproc=nproc)  # fmt: skip
        pattern = json.loads((out / "adapter_config.json").read_text())["rank_pattern"]
        runs[nproc] = pattern, load_file(str(out / "adapter_model.safetensors"))
    (one_pattern, one), (two_pattern, two) = runs[1], runs[2]
    assert sum(sum(kept) for kept in one_pattern.values()) == MATRICES  # pruned to the target: the test is not void
    assert two_pattern == one_pattern
    assert one.keys() == two.keys()
    kept = [k for k in one if one[k].numel()]  # a matrix pruned to no rank saves an empty lora_E
    scale = max(one[k].abs().max().item() for k in kept)
    assert max((one[k] - two[k]).abs().max().item() for k in kept) < 1e-5 * max(1.0, scale)
