"""The pieces of trl_ext.compat that lean on TRL/transformers behaviour (written against trl 1.16): each test fails
loudly when that behaviour changes."""

import torch
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

from trl_ext.compat.models import add_backbone_forward, backbone, backbone_forward_with_cache, drop_instance_forward
from trl_ext.compat.trainer import record_metric
from trl_ext.testing import tiny_model, tiny_tokenizer


def _inputs():
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_backbone_forward_returns_the_decoder_states():
    model = tiny_model().eval()
    add_backbone_forward(model)
    add_backbone_forward(model)  # idempotent
    hidden = model(**_inputs(), return_backbone_hidden=True)
    expected = model.model(**_inputs()).last_hidden_state
    assert torch.equal(hidden, expected)
    # without the flag the model is untouched: logits from its own head
    assert torch.allclose(model(**_inputs()).logits, model.lm_head(expected), atol=1e-6)


def test_backbone_forward_reaches_through_peft_and_trl_patches(tmp_path):
    """SFTTrainer patches `forward` with its fused head; PEFT calls `self.model.forward`: our flag still arrives."""
    rows = [{"prompt": [{"role": "user", "content": "1 + 1?"}], "completion": [{"role": "assistant", "content": "2"}]}]
    trainer = SFTTrainer(
        model=tiny_model(),
        args=SFTConfig(output_dir=str(tmp_path), bf16=False, report_to="none"),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
        peft_config=LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"),
    )
    base = trainer.model.get_base_model()
    add_backbone_forward(base)
    hidden = trainer.model(**_inputs(), return_backbone_hidden=True)
    assert hidden.shape == (2, 5, base.config.hidden_size)
    assert torch.allclose(hidden, backbone(base)(**_inputs()).last_hidden_state)
    fused = trainer.model(**_inputs(), labels=_inputs()["input_ids"], fused_lm_head=True)  # TRL's patch still works
    assert fused.log_probs.shape == (2, 4)


def test_drop_instance_forward_allows_a_clean_deepcopy():
    import copy

    model = tiny_model()
    add_backbone_forward(model)
    saved = drop_instance_forward(model)
    clone = copy.deepcopy(model)
    model.forward = saved
    assert "forward" not in clone.__dict__
    assert clone.lm_head.weight.data_ptr() != model.lm_head.weight.data_ptr()


def test_record_metric_feeds_trl_logging(tmp_path):
    rows = [{"prompt": "a", "completion": "b"}]
    trainer = SFTTrainer(
        model=tiny_model(),
        args=SFTConfig(output_dir=str(tmp_path), bf16=False, report_to="none"),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    record_metric(trainer, "train", "x/metric", 2.0)
    record_metric(trainer, "train", "x/metric", 4.0)
    logs = {}
    trainer.model.train()
    trainer.log(logs)
    assert logs["x/metric"] == 3.0  # SFTTrainer.log averages what was recorded


def test_sharding_pieces_trl_1_16_provides():
    """compat.sharding wraps two private TRL 1.16 names; without ZeRO-3 the head gather is a null context and the
    redirected call returns what the method returns, run as the wrapped module's forward."""
    from contextlib import nullcontext

    from trl_ext.compat.sharding import gathered_lm_head, run_inside_forward

    head = torch.nn.Linear(4, 3)
    assert isinstance(gathered_lm_head(head.weight, head.bias), nullcontext)
    wrapper = torch.nn.Sequential(head)
    seen = []
    out = run_inside_forward(wrapper, head, lambda x: seen.append(x) or x * 2, torch.ones(1))
    assert seen and torch.equal(out, torch.full((1,), 2.0))
    assert head.forward.__func__ is torch.nn.Linear.forward  # the redirection put the real forward back


def test_time_reward_computation_wraps_grpo_reward_computation():
    """The bench times GRPOTrainer's private `_calculate_rewards`: it must still exist and be called per batch."""
    from types import SimpleNamespace

    from trl import GRPOTrainer

    from trl_ext.compat.trainer import time_reward_computation

    assert callable(getattr(GRPOTrainer, "_calculate_rewards", None))
    seen = []
    trainer = SimpleNamespace(_calculate_rewards=lambda *args: sum(args))
    time_reward_computation(trainer, seen.append)
    assert trainer._calculate_rewards(1, 2) == 3 and len(seen) == 1 and seen[0] >= 0


def test_backbone_forward_with_cache_continues_a_sequence():
    model = tiny_model(vocab_size=128, seed=6).eval()
    ids = torch.tensor([[3, 9, 27, 81 % 128, 17, 51]])
    with torch.no_grad():
        full = backbone(model)(input_ids=ids, use_cache=False).last_hidden_state
        head, cache = backbone_forward_with_cache(backbone(model), input_ids=ids[:, :4])
        tail, _ = backbone_forward_with_cache(backbone(model), cache, input_ids=ids[:, 4:])
    torch.testing.assert_close(torch.cat([head, tail], dim=1), full, atol=1e-5, rtol=1e-5)


def test_keep_columns_survives_remove_unused_columns(tmp_path):
    """transformers drops dataset columns outside `_signature_columns` (SFTTrainer: input_ids, labels, seq_lengths)
    when remove_unused_columns=True; keep_columns adds to that list."""
    from trl_ext.compat.trainer import keep_columns

    rows = [
        {"prompt": [{"role": "user", "content": "1 + 1?"}], "completion": [{"role": "assistant", "content": "2"}],
         "task_type": 1}
    ]  # fmt: skip
    trainer = SFTTrainer(
        model=tiny_model(),
        args=SFTConfig(output_dir=str(tmp_path), bf16=False, report_to="none", remove_unused_columns=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    assert "task_type" in trainer.train_dataset.column_names  # SFTTrainer's preparation keeps extra columns
    assert "task_type" not in trainer._remove_unused_columns(trainer.train_dataset).column_names
    keep_columns(trainer, ["task_type"])
    kept = trainer._remove_unused_columns(trainer.train_dataset).column_names
    assert "task_type" in kept and "input_ids" in kept and "prompt" not in kept
