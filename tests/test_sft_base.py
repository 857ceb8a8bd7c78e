"""trl_ext.training.sft: DDP settings the fused-head trainers need (the multi-process step itself is checked per
normalisation family in tests/test_distributed*.py, with and without gradient checkpointing)."""

import pytest
from datasets import Dataset

from trl_ext.testing import tiny_model, tiny_tokenizer
from trl_ext_plugins.asft import ASFTConfig, ASFTTrainer

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
