"""trl_ext.adapters.zoo (`trl-ext peft-zoo`, peft-fm-survey card): the budget solver against hand counts of the
parameters (LoRA, supertuning, IA3, prefix tuning), meta-device counts equal to real ones, every listed method builds,
runs a forward and reloads to the same outputs on a tiny model, the CLI table and saved configs, and `--adapter
peft:config=DIR` training."""

import json
import math

import pytest
import torch
from peft import IA3Config, LoraConfig, PeftModel, PromptTuningConfig, get_peft_model
from transformers import LlamaConfig

from trl_ext.adapters import zoo
from trl_ext.testing import tiny_model

# tiny_model()'s shapes: hidden 32, intermediate 64, 2 layers, 4 heads of 8, 2 kv heads (k/v project to 16)
HIDDEN, INTER, LAYERS, KV = 32, 64, 2, 16
# sum of (in + out) over the 7 linears "all-linear" selects in one layer: q, k, v, o, gate, up, down
IN_PLUS_OUT = (32 + 32) + (32 + KV) + (32 + KV) + (32 + 32) + (32 + 64) + (32 + 64) + (64 + 32)


def _one_layer_config() -> LlamaConfig:
    """The card's oracle model: a 64x64 q_proj and a 64x128 up_proj (hidden 64, intermediate 128, one layer)."""
    return LlamaConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
    )


def test_lora_budget_oracle_from_the_card():
    # r*(64+64) + r*(64+128) = 320 r: r=4 gives 1280 (256 off 1536), r=5 gives 1600 (64 off), r=8 gives 2560
    result = zoo.solve("lora", _one_layer_config(), budget=1536, target_modules=["q_proj", "up_proj"])
    assert (result.value, result.trainable) == (5, 1600)
    assert result.config.r == 5 and result.budget_matched  # 64 / 1536 = 4.2% off, within the default 5%


def test_lora_budget_matched_flag_follows_the_tolerance():
    result = zoo.solve("lora", _one_layer_config(), budget=1536, tol=0.04, target_modules=["q_proj", "up_proj"])
    assert result.value == 5 and not result.budget_matched  # 4.17% > 4%
    result = zoo.solve("lora", _one_layer_config(), budget=1536, tol=0.05, target_modules=["q_proj", "up_proj"])
    assert result.budget_matched


def test_lora_fraction_budget_on_all_linear():
    model = tiny_model()
    total = sum(p.numel() for p in model.parameters())
    budget = 0.05
    per_rank = LAYERS * IN_PLUS_OUT  # 1024
    best_r = min(range(1, 64), key=lambda r: (abs(r * per_rank - round(budget * total)), r))
    result = zoo.solve("lora", model, budget=budget)
    assert result.value == best_r and result.trainable == best_r * per_rank
    assert result.total == total and math.isclose(result.fraction, best_r * per_rank / total)
    real = get_peft_model(tiny_model(), result.config)  # the returned config on real weights
    assert sum(p.numel() for p in real.parameters() if p.requires_grad) == best_r * per_rank


def test_supertuning_sparsity_for_a_64x64_target():
    # floor(4096 * (1 - sparsity)) trainable entries: 40 at the card's sparsity 0.99
    result = zoo.solve("supertuning", _one_layer_config(), budget=40, target_modules=["q_proj"])
    assert result.trainable == 40 and result.budget_matched
    assert math.floor(4096 * (1 - result.config.sparsity)) == 40
    assert abs(result.config.sparsity - 0.99) < 2.5e-4
    with torch.device("cpu"):
        from transformers import AutoModelForCausalLM

        real = get_peft_model(AutoModelForCausalLM.from_config(_one_layer_config()), result.config)
    assert sum(p.numel() for p in real.parameters() if p.requires_grad) == 40


def test_ia3_is_fixed_and_reported_unmatched():
    # IA3 on all-linear: a scale per output channel of q, k, v, o, gate, up; per input channel of the feed-forward
    # down_proj (peft marks it feed-forward), per layer
    hand = LAYERS * (HIDDEN + KV + KV + HIDDEN + INTER + INTER + INTER)
    result = zoo.solve("ia3", tiny_model(), budget=10_000)
    assert result.knob is None and result.trainable == hand and not result.budget_matched


def test_prefix_tuning_counts_keys_and_values_per_layer():
    # num_virtual_tokens * 2 (key, value) * layers * kv width (grouped-query attention: 2 kv heads of 8)
    per_token = 2 * LAYERS * KV
    result = zoo.solve("prefix_tuning", tiny_model(), budget=10 * per_token + 3)
    assert (result.value, result.trainable) == (10, 10 * per_token)


@pytest.mark.parametrize(
    "config",
    [
        LoraConfig(r=3, target_modules="all-linear", task_type="CAUSAL_LM"),
        IA3Config(task_type="CAUSAL_LM"),
        PromptTuningConfig(num_virtual_tokens=7, task_type="CAUSAL_LM"),
    ],
    ids=["lora", "ia3", "prompt_tuning"],
)
def test_meta_count_equals_real_count(config):
    real = get_peft_model(tiny_model(), config)
    assert zoo.count_trainable(tiny_model(), config) == sum(p.numel() for p in real.parameters() if p.requires_grad)


def test_every_listed_method_builds_runs_and_reloads(tmp_path):
    methods = zoo.list_methods()
    assert {"lora", "dora", "ia3", "prompt_tuning", "prefix_tuning", "loha", "lokr", "oft", "vera", "ssf"} <= set(
        methods
    )
    assert {m["category"] for m in methods.values()} <= set(zoo.CATEGORIES)
    meta = zoo.base_model_on_meta(tiny_model())
    ids = torch.tensor([[5, 6, 7, 8]])
    for name in methods:
        result = zoo.solve(name, meta, budget=0.02)
        torch.manual_seed(0)
        model = get_peft_model(tiny_model(), result.config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == result.trainable, name
        for p in model.parameters():  # move off the init (LoRA's B = 0 would hide a lost tensor)
            if p.requires_grad:
                p.data.add_(0.01 * torch.randn_like(p))
        model.eval()  # PVeRA samples in train mode
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all(), name
        model.save_pretrained(str(tmp_path / name))
        loaded = PeftModel.from_pretrained(tiny_model(), str(tmp_path / name))
        with torch.no_grad():
            assert torch.allclose(loaded(input_ids=ids).logits, logits, atol=1e-5), name


def test_unknown_method_names_close_matches():
    with pytest.raises(ValueError, match="did you mean lora"):
        zoo.solve("lorra", tiny_model())


def test_unsupported_types_are_listed_with_a_reason():
    skipped = zoo.unsupported()
    assert "POLY" in skipped and "task_ids" in skipped["POLY"]
    assert not set(skipped) & {m["peft_type"] for m in zoo.list_methods().values()}


def test_cli_table_and_saved_configs(tiny_model_dir, tmp_path, capsys):
    from peft import PeftConfig

    from trl_ext.cli import main

    out = tmp_path / "zoo"
    code = main(
        ["peft-zoo", "--model_name_or_path", tiny_model_dir, "--budget", "2048", "--methods", "lora", "ia3"]
        + ["--output", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    lora_line = next(line for line in text.splitlines() if line.startswith("lora "))
    # 2048 = 1 * 1024 * 2: LoRA r=2 on all-linear; IA3's size is fixed
    assert "reparameterization" in lora_line and "r=2" in lora_line and "2,048" in lora_line
    ia3_line = next(line for line in text.splitlines() if line.startswith("ia3 "))
    assert (
        "additive" in ia3_line
        and "(fixed)" in ia3_line
        and f"{LAYERS * (2 * HIDDEN + 2 * KV + 3 * INTER):,}" in ia3_line
    )
    assert PeftConfig.from_pretrained(str(out / "lora")).r == 2
    summary = json.loads((out / "zoo.json").read_text())
    assert [m["method"] for m in summary["methods"]] == ["lora", "ia3"]


def test_cli_refuses_an_unknown_method(tiny_model_dir, capsys):
    from trl_ext.cli import main

    assert main(["peft-zoo", "--model_name_or_path", tiny_model_dir, "--methods", "nope"]) == 2
    assert "unknown peft-zoo method" in capsys.readouterr().err


def test_adapter_peft_config_trains_one_step(tiny_model_dir, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trl_ext.cli import main

    zoo_dir = tmp_path / "zoo"
    assert (
        main(
            ["peft-zoo", "--model_name_or_path", tiny_model_dir, "--budget", "3072", "--output", str(zoo_dir)]
            + ["--methods", "lora"]
        )
        == 0
    )
    run = tmp_path / "run"
    flags = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]
    code = main(
        ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(run)]
        + ["--adapter", f"peft:config={zoo_dir / 'lora'}", "--callbacks", "peft_budget:target_budget=3072"]
        + flags
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "peft adapter LORA" in text and "3,072 trainable parameters" in text  # r=3: 3 * 1024
    assert "peft_budget: 3,072 trainable" in text and "reparameterization" in text
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run)
    assert loaded.peft_config["default"].r == 3


def test_adapter_peft_config_names_the_folders_with_a_config(tmp_path):
    from trl_ext.adapters.from_config import load_peft_config

    LoraConfig(r=2).save_pretrained(str(tmp_path / "lora"))
    with pytest.raises(FileNotFoundError, match="subfolders with one: lora"):
        load_peft_config(tmp_path)
    assert load_peft_config(tmp_path / "lora").r == 2


def test_an_override_of_the_knob_skips_the_search():
    result = zoo.solve("lora", tiny_model(), budget=5000, r=7, lora_alpha=14)
    assert (result.value, result.trainable) == (7, 7 * LAYERS * IN_PLUS_OUT)
    assert result.config.lora_alpha == 14 and not result.budget_matched  # 7168 vs 5000


def test_ia3_on_all_linear_saves_a_config_that_loads(tmp_path):
    from peft import PeftConfig

    config = zoo.build_peft_config("ia3", tiny_model())
    model = get_peft_model(tiny_model(), config)
    model.save_pretrained(str(tmp_path))
    loaded = PeftConfig.from_pretrained(str(tmp_path))  # peft refused the resolved all-linear here
    assert set(loaded.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert list(loaded.feedforward_modules) == ["down_proj"]


def test_loramoe_is_solved_by_its_expert_rank():
    """LoRAMoE declares `r` as its knob. On the one-layer model its default targets gate/up (64 -> 128) and down
    (128 -> 64) each hold 6 experts of r * (in + out) = 192 r and a router of in x 6 (no bias):
    3 * 6 * 192 r + 6 * (64 + 64 + 128) = 3456 r + 1536; a budget of 11,904 is r = 3 exactly."""
    result = zoo.solve("loramoe", _one_layer_config(), budget=3456 * 3 + 1536)
    assert (result.value, result.trainable) == (3, 11904) and result.budget_matched
    assert result.config.r == 3


def test_prefix_tuning_under_gradient_checkpointing_is_refused_before_training(tiny_model_dir, tmp_path, capsys):
    """The checkpointed decoder layers drop the prefix cache while the mask keeps the virtual tokens: without the
    check the first step fails on a shape mismatch. With checkpointing off the same adapter trains."""
    from peft import PrefixTuningConfig, PromptTuningConfig

    from trl_ext.cli import main

    PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4).save_pretrained(str(tmp_path / "prefix"))
    flags = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]
    base = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--adapter", f"peft:config={tmp_path / 'prefix'}"]
    code = main(base + ["--output_dir", str(tmp_path / "refused"), "--gradient_checkpointing", "true"] + flags)
    err = capsys.readouterr().err
    assert code == 2 and "--gradient_checkpointing false" in err and "PREFIX_TUNING" in err
    assert not (tmp_path / "refused" / "adapter_model.safetensors").exists()
    code = main(base + ["--output_dir", str(tmp_path / "trained"), "--gradient_checkpointing", "false"] + flags)
    assert code == 0 and (tmp_path / "trained" / "adapter_model.safetensors").is_file()
    # prompt tuning prepends embeddings, which checkpointing keeps: not refused
    PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4).save_pretrained(str(tmp_path / "prompt"))
    prompt = [
        "train",
        "sft",
        "--model_name_or_path",
        tiny_model_dir,
        "--adapter",
        f"peft:config={tmp_path / 'prompt'}",
    ]
    code = main(prompt + ["--output_dir", str(tmp_path / "prompt_run"), "--gradient_checkpointing", "true"] + flags)
    assert code == 0 and (tmp_path / "prompt_run" / "adapter_model.safetensors").is_file()
