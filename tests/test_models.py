"""Model loading: a missing local folder is named before transformers reads it as a Hub id, quantized loads go to
the CPU without an accelerator, and QLoRA (4-bit base + LoRA) trains on the CPU through the CLI."""

import importlib.util
import json

import pytest
import torch

from trl_ext import models
from trl_ext.cli import main
from trl_ext.compat.models import forget_load_quantizer
from trl_ext.testing import save_tiny_model, tiny_model

QUICK_FLAGS = ["--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]


@pytest.fixture
def rows_file(tmp_path, sft_rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in sft_rows))
    return str(path)


def test_missing_model_folder_is_named_by_the_cli(tmp_path, rows_file, capsys):
    missing = str(tmp_path / "no-such-model")
    code = main(
        ["train", "asft", "--model_name_or_path", missing, "--dataset_name", rows_file, "--output_dir", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"trl-ext: error: Model folder {missing!r} does not exist" in err
    assert "Repo id" not in err


@pytest.mark.parametrize("name", ["./missing", "../missing/model", "~/missing-trl-ext-model", "a/b/c", "bad name"])
def test_names_that_can_only_be_local_paths_are_refused_when_missing(name):
    with pytest.raises(models.ModelLoadError, match="does not exist"):
        models.check_model_path(name)


def test_a_file_is_not_a_model_folder(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(models.ModelLoadError, match="is a file"):
        models.check_model_path(str(path))


@pytest.mark.parametrize("name", ["gpt2", "HuggingFaceTB/SmolLM2-135M", "smollm2-135m"])
def test_hub_ids_and_aliases_pass_without_the_network(name, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # online: the Hub may have it
    models.check_model_path(name)  # no folder of that name here: still a valid Hub id or a built-in alias


def test_an_existing_folder_resolves_with_home_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "model").mkdir()
    assert models.resolve_model_path("~/model") == str(tmp_path / "model")


def test_quantized_device_map(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert models.quantized_device_map() == {"": "cpu"}
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert models.quantized_device_map() == {"": 3}  # one process per accelerator, as `trl sft`
    assert models.quantized_device_map(type("Args", (), {"use_cpu": True})()) == {"": "cpu"}


def test_forget_load_quantizer_saves_a_plain_checkpoint(tmp_path):
    model = tiny_model()
    model.config.quantization_config = {"quant_method": "gguf"}
    model.config._pre_quantization_dtype = torch.float32
    model.is_quantized, model.hf_quantizer = True, object()
    forget_load_quantizer(model)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in saved and "_pre_quantization_dtype" not in saved
    assert model.is_quantized is False and model.hf_quantizer is None


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None,
    reason="QLoRA needs bitsandbytes (the `qlora` extra: pip install 'trl-ext[qlora]')",
)
def test_qlora_trains_asft_on_cpu(tmp_path, rows_file, monkeypatch):
    import bitsandbytes as bnb

    from trl_ext.plugin.registry import get

    ASFTTrainer = get("method", "asft").trainer
    model_dir = save_tiny_model(tmp_path / "model", hidden_size=64)  # 4-bit blocks need dims of 64
    seen = {}
    train = ASFTTrainer.train

    def recording_train(self, *args, **kwargs):
        seen["trainer"] = self
        seen["before"] = {n: p.detach().clone() for n, p in self.model.named_parameters() if "lora_" in n}
        seen["base"] = {n: m.weight.detach().clone() for n, m in self.model.named_modules() if is_4bit(m)}
        return train(self, *args, **kwargs)

    def is_4bit(module):
        return isinstance(module, bnb.nn.Linear4bit)

    monkeypatch.setattr(ASFTTrainer, "train", recording_train)
    flags = ["--model_name_or_path", str(model_dir), "--dataset_name", rows_file, "--output_dir", str(tmp_path / "o")]
    flags += ["--load_in_4bit", "--use_peft", "--max_steps", "3", "--learning_rate", "1e-2", "--logging_steps", "1"]
    assert main(["train", "asft", *flags, *QUICK_FLAGS]) == 0

    trainer = seen["trainer"]
    assert trainer.ref_model is None  # the KL anchor is the adapter-disabled 4-bit base, not a copy
    grad_norms = [log["grad_norm"] for log in trainer.state.log_history if "grad_norm" in log]
    assert len(grad_norms) == 3 and all(g > 0 for g in grad_norms)
    after = dict(trainer.model.named_parameters())
    # LoRA starts at B = 0, so A gets a gradient only once B has moved: both change only if steps 2-3 trained.
    for kind in ("lora_A", "lora_B"):
        names = [n for n in seen["before"] if kind in n]
        assert names and all(not torch.equal(seen["before"][n], after[n].detach()) for n in names), kind
    quantized = {n: m for n, m in trainer.model.named_modules() if is_4bit(m)}
    assert quantized.keys() == seen["base"].keys() and len(quantized) == 2 * 7  # 7 linears a layer; lm_head kept
    for name, module in quantized.items():
        assert module.weight.dtype == torch.uint8 and module.weight.quant_state is not None
        assert torch.equal(module.weight, seen["base"][name])  # frozen


def test_load_trained_keeps_a_prompt_learning_adapter_unmerged(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trl_ext.models import load_trained

    for name, config in (
        ("prefix", PrefixTuningConfig(num_virtual_tokens=3, task_type="CAUSAL_LM")),
        ("lora", LoraConfig(r=2, task_type="CAUSAL_LM")),
    ):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
        model.save_pretrained(str(tmp_path / name))
    assert isinstance(load_trained(tmp_path / "prefix"), PeftModel)  # nothing to merge a prefix into
    assert not isinstance(load_trained(tmp_path / "lora"), PeftModel)  # merged
