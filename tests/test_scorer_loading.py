"""`trl_ext.compat.sharding.whole_model_loading` (written against transformers 5.x's `_hf_deepspeed_config_weak_ref`)
loads a whole model while a DeepSpeed ZeRO-3 config is live: a model no engine wraps (compare's measured arm, a frozen
scorer through `trl_ext.inference.scoring.load_scorer`) would otherwise be partitioned at load with nothing to gather
it."""

import pytest

from trl_ext.compat.sharding import whole_model_loading
from trl_ext.testing import deepspeed_config, save_tiny_model


def test_whole_model_loading_hides_a_live_zero3_config_and_restores_it():
    pytest.importorskip("deepspeed")
    from transformers.integrations import deepspeed as hf_deepspeed
    from transformers.integrations import is_deepspeed_zero3_enabled

    assert hasattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref")  # the private name the context swaps
    config = hf_deepspeed.HfDeepSpeedConfig({**deepspeed_config(3), "train_micro_batch_size_per_gpu": 1})
    try:
        assert is_deepspeed_zero3_enabled()
        with whole_model_loading():
            assert not is_deepspeed_zero3_enabled()
        assert is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
        del config


def test_load_scorer_under_zero3_gives_whole_parameters(tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    from transformers.integrations import deepspeed as hf_deepspeed

    from trl_ext.inference.scoring import load_scorer

    path = str(save_tiny_model(tmp_path / "m"))
    config = hf_deepspeed.HfDeepSpeedConfig({**deepspeed_config(3), "train_micro_batch_size_per_gpu": 1})
    try:
        model, _ = load_scorer(path)
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
        del config
    weight = model.get_output_embeddings().weight
    assert not hasattr(weight, "ds_id") and weight.numel() == weight.shape[0] * weight.shape[1] > 0
