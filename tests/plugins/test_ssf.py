"""SSF (arXiv 2210.08823) as a peft tuner: the card's hand case, identity init, merge (norm shifts folded into the
next linears' new biases) within 1e-5, save/load identity, the trainable count by the card's formula, the gradient of
the shift, add_adapter, a 4-bit base, the CLI, and 2 processes (DDP, ZeRO-3) equal to 1."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from torch import nn

from trl_ext.testing import assert_same_step, run_layout, tiny_model
from trl_ext_plugins.ssf.tuner import SSFConfig, SSFLinear, SSFModel, SSFNorm, trainable_count

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 18]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def _trained(init: str = "official", steps: int = 3, **kwargs) -> PeftModel:
    """An SSF-wrapped tiny Llama after a few SGD steps (so scales and shifts are far from their init)."""
    torch.manual_seed(0)
    model = get_peft_model(tiny_model(), SSFConfig(init=init, **kwargs))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(steps):
        model(IDS, labels=IDS).loss.backward()
        opt.step()
        opt.zero_grad()
    return model


def _set(linear_layer: SSFLinear, scale, shift, name="default"):
    with torch.no_grad():
        linear_layer.ssf_scale[name].weight.copy_(torch.tensor(scale))
        linear_layer.ssf_shift[name].weight.copy_(torch.tensor(shift))


def test_card_hand_case_linear_and_its_merge():
    linear = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    layer = SSFLinear(linear, "default", SSFConfig(init="identity"))
    _set(layer, [2.0, 0.5], [1.0, -1.0])
    x = torch.tensor([[1.0, 1.0]])
    assert torch.equal(linear(x), torch.tensor([[3.0, 7.0]]))  # W x
    assert torch.equal(layer(x), torch.tensor([[7.0, 2.5]]))  # gamma * (W x) + beta
    layer.merge()
    assert torch.equal(linear.weight, torch.tensor([[2.0, 4.0], [1.5, 2.0]]))
    assert torch.equal(linear.bias, torch.tensor([1.0, -1.0]))  # a bias created for the bias-free linear
    assert torch.equal(layer(x), torch.tensor([[7.0, 2.5]]))
    layer.unmerge()  # exact inverse
    assert torch.equal(linear.weight, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(linear.bias, torch.zeros(2))


def test_unmerge_refuses_a_vanishing_scale():
    layer = SSFLinear(nn.Linear(2, 2), "default", SSFConfig(init="identity"))
    _set(layer, [1.0, 1e-8], [0.0, 0.0])
    layer.merge()
    with pytest.raises(ValueError, match="cannot be unmerged"):
        layer.unmerge()


def test_identity_init_is_bit_exact_and_names_carry_the_adapter():
    base = tiny_model()
    model = get_peft_model(tiny_model(), SSFConfig(init="identity"))
    assert torch.equal(_logits(model), _logits(base))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".default." in n and "ssf_" in n for n in trainable)  # GRPO's reference copy
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if p.requires_grad)
    assert not all(p.requires_grad for p in model.parameters())  # the base is frozen


def test_official_init_statistics():
    torch.manual_seed(0)
    model = get_peft_model(tiny_model(hidden_size=256, num_layers=1), SSFConfig())
    scales = torch.cat([p.flatten() for n, p in model.named_parameters() if "ssf_scale" in n])
    shifts = torch.cat([p.flatten() for n, p in model.named_parameters() if "ssf_shift" in n])
    assert abs(scales.mean().item() - 1.0) < 0.005 and abs(scales.std().item() - 0.02) < 0.002
    assert abs(shifts.mean().item()) < 0.005 and abs(shifts.std().item() - 0.02) < 0.002


def test_trainable_count_matches_the_card_formula():
    # tiny Llama: hidden 32, intermediate 64, 4 heads of 8, 2 kv heads -> q 32, k 16, v 16, o 32, gate 64, up 64,
    # down 32 and two norms of 32 per layer; 2 layers; 2 vectors each
    by_hand = 2 * 2 * ((32 + 16 + 16 + 32 + 64 + 64 + 32) + 32 * 2)
    model = get_peft_model(tiny_model(), SSFConfig())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == by_hand == 1280
    assert trainable_count(tiny_model(), SSFConfig()) == by_hand
    # SmolLM2-135M by the formula (hidden 576, intermediate 1536, 9 heads of 64, 3 kv heads, 30 layers)
    assert 2 * 30 * ((576 + 192 + 192 + 576 + 1536 + 1536 + 576) + 2 * 576) == 380_160


def test_merge_and_unload_within_1e5_with_norm_shift_folding(tmp_path):
    model = _trained()
    expected = _logits(model)
    norm = model.base_model.model.model.layers[0].input_layernorm
    assert isinstance(norm, SSFNorm) and norm.ssf_shift["default"].weight.abs().max() > 0
    merged = model.merge_and_unload()
    layer = merged.model.layers[0]
    assert type(layer.self_attn.q_proj) is nn.Linear and type(layer.input_layernorm) is not SSFNorm
    assert layer.self_attn.q_proj.bias is not None and layer.mlp.down_proj.bias is not None
    assert merged.config.attention_bias and merged.config.mlp_bias
    assert (_logits(merged) - expected).abs().max().item() < 1e-5
    merged.save_pretrained(tmp_path / "merged")  # the bias flags make the new biases reload
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert (_logits(reloaded) - expected).abs().max().item() < 1e-5


def test_norm_shift_folds_into_the_consumers_as_the_card_says():
    """b_L' = b_L + W_L beta for q/k/v after input_layernorm, computed here by hand from the unmerged tensors."""
    model = _trained()
    layer = model.base_model.model.model.layers[0]
    beta = layer.input_layernorm.ssf_shift["default"].weight.detach().clone()
    w_q = layer.self_attn.q_proj.get_base_layer().weight.detach().clone()
    gamma_q = layer.self_attn.q_proj.ssf_scale["default"].weight.detach().clone()
    beta_q = layer.self_attn.q_proj.ssf_shift["default"].weight.detach().clone()
    merged = model.merge_and_unload()
    q = merged.model.layers[0].self_attn.q_proj
    assert torch.allclose(q.bias, gamma_q * (w_q @ beta) + beta_q, atol=1e-6)


def test_layer_merge_of_a_norm_shift_is_refused_outside_merge_and_unload():
    model = _trained()
    with pytest.raises(ValueError, match="merge_and_unload"):
        model.merge_adapter()


def test_save_load_forward_identical(tmp_path):
    model = _trained()
    expected = _logits(model)
    model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(tiny_model(), tmp_path / "adapter")
    assert torch.equal(_logits(loaded), expected)


def test_add_adapter_and_switch():
    model = _trained()
    first = _logits(model)
    model.add_adapter("second", SSFConfig(init="identity"))
    assert torch.equal(_logits(model), first)  # the added adapter is not active yet
    model.set_adapter("second")
    assert torch.equal(_logits(model), _logits(tiny_model()))  # identity
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".second." in n for n in trainable)
    with model.disable_adapter():
        assert torch.equal(_logits(model), _logits(tiny_model()))


def test_shift_gradient_is_the_sum_of_output_gradients():
    """d loss / d beta = sum over tokens of d loss / d y (float64), and gradcheck of the affine."""
    torch.manual_seed(0)
    layer = SSFLinear(nn.Linear(3, 4).double(), "default", SSFConfig())
    layer.ssf_scale["default"].double()
    layer.ssf_shift["default"].double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    y = layer(x)
    y.retain_grad()
    loss = (y**3).sum()
    loss.backward()
    assert torch.allclose(layer.ssf_shift["default"].weight.grad, y.grad.sum(dim=(0, 1)))
    base = layer.get_base_layer()
    assert torch.autograd.gradcheck(
        lambda scale, shift: base(x) * scale + shift,
        (
            torch.rand(4, dtype=torch.float64, requires_grad=True),
            torch.rand(4, dtype=torch.float64, requires_grad=True),
        ),
    )


def test_final_norm_merge_is_refused_clearly():
    model = _trained(include_final_norm=True, steps=1)
    with pytest.raises(ValueError, match="lm_head bias"):
        model.merge_and_unload()


def test_bad_options_fail_before_training():
    from trl_ext_plugins.ssf.adapter import make_ssf_adapter

    with pytest.raises(ValueError, match="target"):
        make_ssf_adapter(target="everything")
    with pytest.raises(ValueError, match="init"):
        make_ssf_adapter(init="zeros")
    assert issubclass(SSFModel, object)


def test_cli_train_sft_with_adapter_ssf(tiny_model_dir, tmp_path, capsys):
    from trl_ext.cli import main

    out = tmp_path / "run"
    flags = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]
    code = main(
        ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), "--adapter", "ssf"] + flags
    )
    assert code == 0
    assert "ssf: 1,280 trainable parameters" in capsys.readouterr().out
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert sum(p.numel() for n, p in loaded.named_parameters() if "ssf_" in n) == 1280


def test_info_prints_the_formula(capsys):
    from trl_ext.cli import main

    assert main(["info", "ssf"]) == 0
    out = capsys.readouterr().out
    assert "380,160 on SmolLM2-135M" in out and "2 * (sum of the targeted" in out


SCRIPT = Path(__file__).parents[1] / "distributed" / "ssf_step.py"


@pytest.mark.slow
def test_two_processes_ddp_and_zero3_equal_one(tmp_path, monkeypatch):
    reference = run_layout(SCRIPT, tmp_path / "accumulated.json", 2, 2, "none")
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 2, 1, "none", nproc=2)
    assert_same_step(reference, ddp, name="ssf on 2 processes (ddp)")
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(SCRIPT, tmp_path / "zero3.json", 2, 1, "zero3", nproc=2)
    assert_same_step(reference, zero3, name="ssf on 2 processes (zero3)")


def test_4bit_base_trains_and_refuses_to_merge(tiny_model_dir):
    """The card allows SSF on a bnb 4-bit base (output-side affine on Linear4bit); merging into it raises."""
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig

    from trl_ext.models import load_model
    from trl_ext_plugins.ssf.adapter import make_ssf_adapter

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    base = load_model(tiny_model_dir, quantization_config=quant, device_map={"": "cpu"})
    torch.manual_seed(0)
    model = make_ssf_adapter()(base)
    wrapped = [m for m in model.modules() if isinstance(m, SSFLinear)]
    assert len(wrapped) == 2 * 7 and all(isinstance(m.get_base_layer(), bnb.nn.Linear4bit) for m in wrapped)
    model.train()
    model(IDS, labels=IDS).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="quantised base"):
        model.merge_and_unload()
