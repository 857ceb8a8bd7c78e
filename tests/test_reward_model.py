"""`trl_ext.models.load_reward_model`, `trl_ext.rewards.model.RewardModelScorer` and `build_reward`: a sequence
classifier scored on text outside a trainer, the same as one unpadded forward per text."""

from __future__ import annotations

import pytest
import torch

from trl_ext.models import ModelLoadError, load_reward_model
from trl_ext.rewards.model import RewardModelScorer
from trl_ext.rewards.resolve import build_reward
from trl_ext.testing import tiny_tokenizer


def save_classifier(path, num_labels: int = 1):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                         num_labels=num_labels)  # fmt: skip
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_reward_model_scores_each_text_as_one_unpadded_forward(tmp_path):
    path = save_classifier(tmp_path / "rm")
    load_reward_model.cache_clear()
    model, tok = load_reward_model(path, device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert load_reward_model(path, device="cpu")[0] is model  # loaded once
    prompts = ["Tom has 3 apples. ", [{"role": "user", "content": "How many?"}], "A "]
    completions = ["He buys 4 more, so 7.", "Seven", [{"role": "assistant", "content": "box of pens"}]]
    scores = RewardModelScorer(model, tok, batch_size=2)(prompts=prompts, completions=completions)
    texts = [
        "Tom has 3 apples. He buys 4 more, so 7.",
        tok.apply_chat_template([*prompts[1], {"role": "assistant", "content": "Seven"}], tokenize=False),
        "A box of pens",
    ]
    with torch.no_grad():
        expected = [float(model(**tok(t, return_tensors="pt", add_special_tokens=False)).logits[0, 0]) for t in texts]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert build_reward(path)(prompts=prompts, completions=completions) == pytest.approx(expected, abs=1e-5)
    load_reward_model.cache_clear()


def test_reward_model_with_several_labels_is_refused(tmp_path):
    path = save_classifier(tmp_path / "clf", num_labels=3)
    with pytest.raises(ModelLoadError, match="has 3 labels"):
        load_reward_model(path, device="cpu")
    load_reward_model.cache_clear()


def test_build_reward_builds_named_rewards():
    reward = build_reward("think_format_reward")  # TRL's, as `--rewards` names it
    completions = [
        [{"role": "assistant", "content": "<think>\nx\n</think>\ny"}],
        [{"role": "assistant", "content": "y"}],
    ]
    assert reward(completions=completions) == [1.0, 0.0]
