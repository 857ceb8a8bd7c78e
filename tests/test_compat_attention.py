"""trl_ext.compat.attention against transformers 5.24: the wrapper sees q/k after RoPE on every layer, a pass-through
wrapper leaves the logits unchanged for sdpa and eager, and the registered name is not saved with the config."""

import json

import pytest
import torch
import transformers

from trl_ext.compat.attention import attention_implementation, wrap_attention
from trl_ext.testing import tiny_model

IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 31], [3, 3, 8, 190, 77, 41, 2]])


def test_written_against_transformers_5():
    assert transformers.__version__.split(".")[0] == "5", "compat/attention.py reads config._attn_implementation"


@pytest.mark.parametrize("inner", ["sdpa", "eager"])
def test_pass_through_wrapper_keeps_the_logits(inner, tmp_path):
    model = tiny_model()
    model.set_attn_implementation(inner)
    model.eval()
    with torch.no_grad():
        before = model(IDS, attention_mask=torch.ones_like(IDS)).logits
    seen = []

    def wrapper(call, module, query, key, value, mask, **kwargs):
        seen.append((module.layer_idx, tuple(query.shape), tuple(key.shape)))
        return call(module, query, key, value, mask, **kwargs)

    assert wrap_attention(model, "passthrough", wrapper) == f"passthrough_{inner}"
    assert attention_implementation(model) == f"passthrough_{inner}"
    with torch.no_grad():
        after = model(IDS, attention_mask=torch.ones_like(IDS)).logits
    assert torch.allclose(before, after, atol=1e-6)
    assert [s[0] for s in seen] == [0, 1] and seen[0][1] == (2, 4, 7, 8) and seen[0][2] == (2, 2, 7, 8)
    model.save_pretrained(tmp_path)
    assert "passthrough" not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
