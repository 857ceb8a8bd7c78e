"""LoRAMoE (arXiv 2312.09979): the card's six tests (hand-computed balance loss, zero-init equivalence, E=1 equals
peft LoRA, beta=0 equals SFTTrainer, router sums and the trainable count, padding), the balance term checked against
router probabilities captured independently, save/load, the task_type column through remove_unused_columns, gradient
accumulation, and the CLI on a tiny model."""

import json
import logging
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model
from trl import SFTConfig, SFTTrainer

import trl_ext  # noqa: F401  (registers the tuner with peft)
from trl_ext.testing import (
    SGD_STEP_ARGS,
    assert_same_step,
    first_batch,
    run_layout,
    tiny_model,
    tiny_tokenizer,
    train_one_step,
)
from trl_ext_plugins.loramoe.config import LoRAMoETrainerConfig
from trl_ext_plugins.loramoe.loss import group_coefficients, localized_balance_loss
from trl_ext_plugins.loramoe.trainer import LoRAMoETrainer
from trl_ext_plugins.loramoe.tuner import LoRAMoEConfig, LoRAMoELinear, routing_record, trainable_count

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18]])
TARGETS = ["gate_proj", "up_proj", "down_proj"]


def _wrapped(num_experts: int = 4, seed: int = 0, b_std: float = 0.1) -> PeftModel:
    """A tiny Llama with LoRAMoE (dropout 0) whose B_i are non-zero, so the experts change the output."""
    model = get_peft_model(
        tiny_model(), LoRAMoEConfig(num_experts=num_experts, lora_dropout=0.0, task_type="CAUSAL_LM")
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "loramoe_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * b_std)
    return model


def _rows(types=(1, 0, 1, 0)):
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}],
            "completion": [{"role": "assistant", "content": f"{i} + {i + 2} = {2 * i + 2}." + " Yes." * i}],
            "task_type": t,
        }
        for i, t in enumerate(types)
    ]


def _config(tmp_path, **kwargs) -> LoRAMoETrainerConfig:
    args = {**SGD_STEP_ARGS, "per_device_train_batch_size": 2, **kwargs}
    return LoRAMoETrainerConfig(output_dir=str(tmp_path), **args)


def _trainer(tmp_path, model=None, rows=None, **kwargs) -> LoRAMoETrainer:
    return LoRAMoETrainer(
        model=_wrapped() if model is None else model,
        args=_config(tmp_path, **kwargs),
        train_dataset=Dataset.from_list(rows or _rows()),
        processing_class=tiny_tokenizer(),
    )


def _captured_importance(model, input_ids, attention_mask=None, count_padding=True) -> list[torch.Tensor]:
    """Q (B, E) of every LoRAMoE layer, from router inputs captured by forward hooks (not from the layers' record)."""
    inputs = []
    hooks = [m.register_forward_hook(lambda mod, a, out: inputs.append((mod, a[0]))) for m in model.modules()
             if isinstance(m, LoRAMoELinear)]  # fmt: skip
    model(input_ids=input_ids, attention_mask=attention_mask)
    for h in hooks:
        h.remove()
    result = []
    for mod, x in inputs:
        probs = torch.softmax(x.float() @ mod.loramoe_router["default"].weight.T, dim=-1)
        if attention_mask is not None and not count_padding:
            probs = probs * attention_mask[..., None]
        result.append(probs.sum(1))
    return result


# --- card test 1: the hand-computed loss --------------------------------------------------------------------------
def test_card_hand_value():
    q = torch.tensor([[3.0, 1.0], [2.0, 2.0]])
    types = torch.tensor([1, 0])
    assert torch.allclose(group_coefficients(types, 2, 0.1), torch.tensor([[1.1, 0.9], [0.9, 1.1]]))
    # Z = [3.3, 0.9, 1.8, 2.2], mean 2.05, unbiased var 2.97 / 3 = 0.99; 0.99 / 2.05^2 = 0.235574
    assert localized_balance_loss(q, types, 0.1).item() == pytest.approx(0.99 / 4.2025, abs=1e-6)
    assert localized_balance_loss(q, types, 0.1).item() == pytest.approx(0.235574, abs=1e-6)


def test_other_task_types_and_single_value():
    # official: a type outside {0, 1} gets 1 - delta on every expert
    assert torch.allclose(group_coefficients(torch.tensor([2]), 4, 0.1), torch.full((1, 4), 0.9))
    assert localized_balance_loss(torch.tensor([[5.0]]), torch.tensor([1]), 0.1).item() == 0.0  # B*E == 1
    # balanced mass over equal groups: Z = c * [1.1, 1.1, 0.9, 0.9]; Var/Mean^2 by hand = 0.04/3 / 1
    q = torch.full((1, 4), 2.0)
    assert localized_balance_loss(q, torch.tensor([1]), 0.1).item() == pytest.approx((4 * 0.01 / 3) / 1.0, rel=1e-5)


# --- card test 2: zero-init equivalence ---------------------------------------------------------------------------
def test_fresh_adapter_gives_the_base_logits_exactly():
    base = tiny_model()
    model = get_peft_model(tiny_model(), LoRAMoEConfig(task_type="CAUSAL_LM"))
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, base(IDS).logits)


# --- card test 3: E=1 is LoRA ---------------------------------------------------------------------------------------
def test_one_expert_equals_peft_lora_outputs_and_gradients():
    moe = _wrapped(num_experts=1)
    lora = get_peft_model(
        tiny_model(), LoraConfig(r=4, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    )
    moe_params = dict(moe.named_parameters())
    pairs = []
    with torch.no_grad():
        for name, p in lora.named_parameters():
            for kind in ("A", "B"):
                if f"lora_{kind}.default.weight" in name:
                    twin = name.replace(f"lora_{kind}.default.weight", f"loramoe_{kind}.default.0.weight")
                    p.copy_(moe_params[twin])
                    pairs.append((name, twin))
    assert len(pairs) == 2 * 3 * 2  # A and B of 3 linears in 2 layers
    out_moe, out_lora = moe(IDS, labels=IDS), lora(IDS, labels=IDS)
    assert torch.allclose(out_moe.logits, out_lora.logits, atol=1e-6)
    out_moe.loss.backward()
    out_lora.loss.backward()
    lora_params = dict(lora.named_parameters())
    for name, twin in pairs:
        assert torch.allclose(lora_params[name].grad, moe_params[twin].grad, atol=1e-6, rtol=1e-5), name
    routers = [p for n, p in moe.named_parameters() if "loramoe_router" in n]
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in routers)  # softmax of one value is 1


# --- card test 4: beta = 0 is SFTTrainer ------------------------------------------------------------------------------
def test_beta_zero_equals_sfttrainer_loss_and_beta_adds_the_captured_balance(tmp_path):
    model = _wrapped()
    trainer = _trainer(tmp_path / "moe", model=model, blc_weight=0.0)
    batch = first_batch(trainer)
    assert batch["task_type"].tolist() == [1, 0]
    sft = SFTTrainer(
        model=model,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), **{**SGD_STEP_ARGS, "per_device_train_batch_size": 2}),
        train_dataset=Dataset.from_list(_rows()),
        processing_class=tiny_tokenizer(),
    )
    model.train()
    sft_inputs = {k: v for k, v in batch.items() if k != "task_type"}
    expected = sft.compute_loss(model, dict(sft_inputs))
    assert torch.equal(trainer.compute_loss(model, dict(batch)), expected)

    trainer.args.blc_weight = 0.1
    with_balance = trainer.compute_loss(model, dict(batch))
    q = _captured_importance(model, batch["input_ids"], batch["attention_mask"])  # official: every position
    blc = sum(localized_balance_loss(qi, batch["task_type"], 0.1) for qi in q)
    assert len(q) == 6
    assert with_balance.item() == pytest.approx(expected.item() + 0.1 * blc.item(), rel=1e-6)
    assert trainer._metrics["train"]["loramoe/blc_loss"][-1] == pytest.approx(blc.item(), rel=1e-5)


def test_fused_experts_equal_each_experts_own_modules(monkeypatch):
    """The two-matmul path ([B_1..B_E] (w ⊗ 1_r * [A_1;..;A_E] x)) gives the per-expert sum that ZeRO-3 runs through
    each expert's own modules: logits and every trainable gradient within float32 rounding."""
    from trl_ext_plugins.loramoe import tuner

    ids = torch.arange(3, 27).reshape(2, 12)

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        model = _wrapped(num_experts=4, seed=3)
        calls = []
        for name, module in model.named_modules():
            if ".loramoe_A." in name:  # an expert's own module: called only on the per-module path
                module.register_forward_hook(lambda *args: calls.append(1))
        logits = model(input_ids=ids).logits
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return logits.detach(), grads, len(calls)

    fused, fused_grads, fused_calls = run()
    monkeypatch.setattr(tuner, "is_zero3_partitioned", lambda param: True)  # the engine's per-module path
    looped, looped_grads, looped_calls = run()
    assert fused_calls == 0 and looped_calls > 0  # the two paths really ran
    assert torch.allclose(fused, looped, atol=1e-6)
    assert fused_grads.keys() == looped_grads.keys() and len(fused_grads) > 0
    for name, grad in fused_grads.items():
        assert torch.allclose(grad, looped_grads[name], atol=1e-6, rtol=1e-5), name
    assert any(grad.abs().sum() > 0 for name, grad in fused_grads.items() if "loramoe_A" in name)


# --- card test 5: router sums, trainable parameters, the count ------------------------------------------------------
def test_router_sums_to_one_and_only_experts_and_router_train():
    model = _wrapped(num_experts=6)
    layer = model.base_model.model.model.layers[0].mlp.gate_proj
    x = torch.randn(2, 5, 32)
    probs = layer.router_probs(x, "default")
    assert probs.dtype == torch.float32 and probs.shape == (2, 5, 6)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 5), atol=1e-6)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".default." in n and ("loramoe_A" in n or "loramoe_B" in n or "loramoe_router" in n)
                             for n in trainable)  # fmt: skip
    # hidden 32, FFN 64, 2 layers, E=6, r=4: gate/up 6*4*(32+64) + 6*32 = 2496 each, down 6*4*(64+32) + 6*64 = 2688
    expected = 2 * (2496 + 2496 + 2688)
    assert sum(model.get_nb_trainable_parameters()[:1]) == expected == 15360
    assert trainable_count(tiny_model(), LoRAMoEConfig()) == expected


# --- card test 6: padding ------------------------------------------------------------------------------------------
def test_padding_leaves_the_masked_loss_unchanged_and_counts_in_the_official_one():
    model = _wrapped()
    model.train()
    types = torch.tensor([1, 0])
    short = IDS[:, :5]
    padded = torch.cat([short, torch.full((2, 3), 1)], dim=1)
    mask = torch.cat([torch.ones(2, 5), torch.zeros(2, 3)], dim=1).long()

    def loss(ids, attention_mask, count_padding):
        with routing_record(model, attention_mask, count_padding) as record:
            model(input_ids=ids, attention_mask=attention_mask)
            return sum(localized_balance_loss(s.importance, types, 0.1) for s in record.stats.values()).item()

    plain = loss(short, torch.ones_like(short), False)
    assert loss(padded, mask, False) == pytest.approx(plain, rel=1e-5)
    assert loss(padded, mask, True) != pytest.approx(plain, rel=1e-3)  # official: padding counts


# --- save / load, merge -------------------------------------------------------------------------------------------
def test_save_load_forward_identical_and_merge_refused(tmp_path):
    model = _wrapped()
    model.eval()
    model.save_pretrained(tmp_path)
    # what a process without `import trl_ext` gets as peft's KeyError: the saved type says what to do
    saved_type = json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"]
    assert saved_type.startswith("LORAMOE") and "import trl_ext" in saved_type
    loaded = PeftModel.from_pretrained(tiny_model(), tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, model(IDS).logits)
        assert not torch.equal(loaded(IDS).logits, tiny_model()(IDS).logits)
    with pytest.raises(ValueError, match="input-dependent|depends on the input"):
        loaded.merge_and_unload()
    base = loaded.unload()
    with torch.no_grad():
        assert torch.equal(base(IDS).logits, tiny_model()(IDS).logits)


# --- the task_type column -----------------------------------------------------------------------------------------
def test_task_type_survives_remove_unused_columns(tmp_path):
    trainer = _trainer(tmp_path, remove_unused_columns=True, rows=_rows((0, 1)))
    batch = first_batch(trainer)
    assert batch["task_type"].tolist() == [0, 1]
    assert "prompt" not in trainer._remove_unused_columns(trainer.train_dataset).column_names


def test_missing_column_skips_the_balance_with_a_warning(tmp_path, caplog):
    rows = [{k: v for k, v in r.items() if k != "task_type"} for r in _rows()]
    model = _wrapped()
    with caplog.at_level(logging.WARNING):
        trainer = _trainer(tmp_path, model=model, rows=rows)
    assert "no 'task_type' column" in caplog.text
    batch = first_batch(trainer)
    assert "task_type" not in batch
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    trainer.args.blc_weight = 0.0
    assert torch.equal(loss, trainer.compute_loss(model, dict(batch)))


def test_odd_experts_refused_with_the_balance_on(tmp_path):
    with pytest.raises(ValueError, match="must be even"):
        _trainer(tmp_path, model=_wrapped(num_experts=3))


# --- gradient accumulation ----------------------------------------------------------------------------------------
def test_gradient_accumulation_averages_the_per_micro_batch_balance(tmp_path):
    """L_lbc is a squared coefficient of variation over a micro-batch, so 2 micro-batches of 1 are not 1 of 2: the
    accumulated step's balance gradient is the mean of the per-sample ones (official behaviour, batch size 1). The SFT
    part is TRL's (identical in both layouts): update(2 x 1) - update(1 x 2) = beta * (mean_i grad L_i - grad L_12)."""
    beta = 0.5
    rows = _rows((1, 0))
    kw = dict(blc_weight=beta, count_padding_tokens=False, shuffle_dataset=False)
    single = _trainer(tmp_path / "single", rows=rows, per_device_train_batch_size=2, **kw)
    batch = first_batch(single)
    accumulated = _trainer(
        tmp_path / "acc", rows=rows, per_device_train_batch_size=1, gradient_accumulation_steps=2, **kw
    )

    # The balance gradients at the initial weights, from router probabilities captured by hooks
    model = _wrapped()
    model.train()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def balance_grad(ids, mask, types):
        model.zero_grad()
        q = _captured_importance(model, ids, mask, count_padding=False)
        sum(localized_balance_loss(qi, types, 0.1) for qi in q).backward()
        return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in params.items()}

    g12 = balance_grad(batch["input_ids"], batch["attention_mask"], batch["task_type"])
    per_sample = []
    for i in range(2):
        n = int(batch["attention_mask"][i].sum())
        per_sample.append(balance_grad(batch["input_ids"][i : i + 1, :n], None, batch["task_type"][i : i + 1]))

    run_single, run_acc = train_one_step(single), train_one_step(accumulated)
    largest = 0.0
    for name in params:
        key = name
        diff = torch.tensor(run_acc["update"][key]) - torch.tensor(run_single["update"][key])
        expected = beta * (0.5 * (per_sample[0][name] + per_sample[1][name]) - g12[name]).flatten()
        largest = max(largest, expected.abs().max().item())
        assert torch.allclose(diff, expected, atol=2e-5), name
    assert largest > 1e-3  # the two layouts do differ: the comparison is not void


# --- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_train_loramoe_and_sft_with_adapter(tiny_model_dir, tmp_path, capsys):
    from trl_ext.cli import main

    flags = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--report_to", "none", "--save_strategy", "no",
             "--logging_steps", "1", "--model_name_or_path", tiny_model_dir]  # fmt: skip
    out = tmp_path / "moe"
    assert main(["train", "loramoe", "--dataset_name", "builtin:loramoe_mix", "--output_dir", str(out)] + flags) == 0
    printed = capsys.readouterr().out
    assert "loramoe: 15,360 trainable parameters" in printed
    assert (out / "adapter_model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert sum(p.numel() for n, p in loaded.named_parameters() if "loramoe_" in n) == 15360
    assert "'loramoe/blc_loss'" in printed and "'loramoe/router_entropy'" in printed  # the logged metrics
    # what compare, evaluate and generate load: kept unmerged (merging is refused), the same outputs
    from trl_ext.models import load_trained

    as_loaded = load_trained(out)
    assert isinstance(as_loaded, PeftModel)
    with torch.no_grad():
        assert torch.equal(as_loaded.eval()(IDS).logits, loaded.eval()(IDS).logits)

    out = tmp_path / "sft"
    code = main(["train", "sft", "--dataset_name", "builtin:arith", "--output_dir", str(out),
                 "--adapter", "loramoe:num_experts=2:r=2"] + flags)  # fmt: skip
    assert code == 0
    assert "loramoe: " in capsys.readouterr().out and (out / "adapter_config.json").exists()


SCRIPT = Path(__file__).parents[1] / "distributed" / "loramoe_step.py"


@pytest.mark.slow
def test_two_processes_ddp_and_zero3_equal_one(tmp_path, monkeypatch):
    reference = run_layout(SCRIPT, tmp_path / "accumulated.json", 1, 2, "none")
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 1, 1, "none", nproc=2)
    assert_same_step(reference, ddp, name="loramoe on 2 processes (ddp)")
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(SCRIPT, tmp_path / "zero3.json", 1, 1, "zero3", nproc=2)
    assert_same_step(reference, zero3, name="loramoe on 2 processes (zero3)")


def test_4bit_base_trains(tiny_model_dir):
    """The experts read the input of a bnb Linear4bit and add to its output; every trainable parameter gets a
    gradient (B_i made non-zero so A_i and the router do too)."""
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig

    from trl_ext.models import load_model
    from trl_ext_plugins.loramoe.adapter import make_loramoe_adapter

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    base = load_model(tiny_model_dir, quantization_config=quant, device_map={"": "cpu"})
    model = make_loramoe_adapter(num_experts=4, lora_dropout=0.0)(base)
    wrapped = [m for m in model.modules() if isinstance(m, LoRAMoELinear)]
    assert len(wrapped) == 2 * 3 and all(isinstance(m.get_base_layer(), bnb.nn.Linear4bit) for m in wrapped)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "loramoe_B" in name:
                p.normal_(0, 0.1)
    model.train()
    model(IDS, labels=IDS).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert len(grads) == 6 * (2 * 4 + 1) and all(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="depends on the input"):
        model.merge_and_unload()
