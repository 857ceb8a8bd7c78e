"""Prefix-RFT (arXiv 2507.01679): the card's hand-computed cases, the m = 0 parity with GRPOTrainer (rollouts, loss,
gradients), the prefix generator across a resume, bad input, the CLI with LoRA, and 2 processes (DDP, ZeRO-3) = 1."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from trl_ext.cli import main
from trl_ext.testing import assert_same_step, first_batch, interrupted_and_resumed, run_layout, tiny_tokenizer
from trl_ext_plugins.prefix_rft import PrefixRFTConfig, PrefixRFTTrainer, band_high, official_advantages, prefix_length
from trl_ext_plugins.prefix_rft.data import reverse_rows
from trl_ext_plugins.prefix_rft.prefix import PLAIN
from trl_ext_plugins.prefix_rft.trainer import PrefixRow

SCRIPT = Path(__file__).resolve().parents[1] / "distributed" / "prefix_rft_step.py"
G = 4


def by_position(completions, **kwargs):
    """Rewards [0, 0, 1, 1] in each group of 4 (TRL scores rows in group order, before it shuffles them)."""
    return [1.0 if i % G >= 2 else 0.0 for i in range(len(completions))]


def rows(n=8):
    return Dataset.from_list(reverse_rows(n))


def config(tmp_path, **kwargs):
    base = dict(
        output_dir=str(tmp_path / "out"),
        num_generations=G,
        per_device_train_batch_size=8,
        max_completion_length=10,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        shuffle_dataset=False,
        num_prefixed_per_group=1,
        logging_steps=1,
    )
    return PrefixRFTConfig(**{**base, **kwargs})


def make(tmp_path, model, reward=by_position, data=None, **kwargs):
    trainer = PrefixRFTTrainer(
        model=model, reward_funcs=reward, args=config(tmp_path, **kwargs), train_dataset=data or rows()
    )
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; called outside it here
    return trainer


def generated(trainer, seed=0):
    torch.manual_seed(seed)
    trainer.model.train()
    return first_batch(trainer)


# --- card test 1: the prefix cut ----------------------------------------------------------------------------------
def test_card_1_prefix_length_by_hand():
    assert prefix_length(0.95, 10) == 9  # floor(9.5)
    assert prefix_length(1.0, 10) == 9  # 10, capped at |y*| - 1
    assert prefix_length(0.01, 10, min_len=1) == 1  # floor(0.1) = 0, raised to min_prefix_len
    assert prefix_length(0.5, 1) == 0  # a one-token demonstration leaves nothing to continue: plain rollout
    assert prefix_length(0.95, 10, max_len=4) == 4  # the completion budget keeps room for a continuation


@pytest.mark.parametrize("retokenize", [True, False])
def test_card_1_decoded_prompt_and_completion_reproduce_the_demo_prefix(tmp_path, tiny_model_dir, retokenize):
    trainer = make(tmp_path, tiny_model_dir, prefix_retokenize=retokenize)
    tok = tiny_tokenizer()
    prompt = [{"role": "user", "content": "Reverse 123456."}]
    prompt_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    prompt_ids = list(prompt_ids["input_ids"])
    demo = tok("The answer is 654321.", add_special_tokens=False)["input_ids"]
    assert len(demo) >= 4
    for length in (1, len(demo) // 2, len(demo) - 1):
        ids = trainer.prefix_ids(prompt_ids, PrefixRow(prompt, demo, length))
        if not retokenize:
            assert ids == demo[:length]
        assert tok.decode(prompt_ids + ids) == tok.decode(prompt_ids) + tok.decode(demo[:length])
    assert trainer.retokenize_fallbacks == 0


def test_card_1_prefixed_rollouts_start_with_the_demo(tmp_path, tiny_model_dir):
    trainer = make(tmp_path, tiny_model_dir, prefix_retokenize=False)
    batch = generated(trainer)
    tok = tiny_tokenizer()
    prefixed = batch["prefix_mask"].any(1)
    assert int(prefixed.sum()) == 2  # the last of each group of 4, 2 groups
    demos = {tuple(tok(r["demonstration"], add_special_tokens=False)["input_ids"]) for r in reverse_rows(8)}
    for i in prefixed.nonzero().flatten().tolist():
        n = int(batch["prefix_mask"][i].sum())
        head = tuple(batch["completion_ids"][i, :n].tolist())
        assert any(d[:n] == head for d in demos)
        assert batch["prefix_mask"][i, :n].all() and not batch["prefix_mask"][i, n:].any()


def test_rows_without_a_demonstration_stay_plain(tmp_path, tiny_model_dir):
    data = [dict(r, demonstration="" if i == 0 else r["demonstration"]) for i, r in enumerate(reverse_rows(8))]
    batch = generated(make(tmp_path, tiny_model_dir, data=Dataset.from_list(data), shuffle_dataset=False))
    # dataset row 0 (the first group of 4 rollouts) has no demonstration: only the second group is prefixed
    assert int(batch["prefix_mask"].any(1).sum()) == 1


# --- card test 2: advantages --------------------------------------------------------------------------------------
def test_card_2_official_advantages_by_hand():
    # member 0 prefixed (its own sub-group of one: mean 0), members 1-3 plain (mean 1/3)
    cont, pre = official_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, PLAIN, PLAIN, PLAIN]), 4, 1)
    torch.testing.assert_close(cont, torch.tensor([1.0, -1 / 3, -1 / 3, 2 / 3]))
    torch.testing.assert_close(pre, torch.tensor([2 / 3, 0.0, 0.0, 0.0]))  # (1 - 0 - 1/3) / 1
    # two rollouts share one prefix variant (n = 2): centred within it, prefix advantage halved
    cont, pre = official_advantages(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([PLAIN, PLAIN, 0, 0]), 4, 2)
    torch.testing.assert_close(cont, torch.tensor([0.5, -0.5, 0.5, -0.5]))
    torch.testing.assert_close(pre, torch.tensor([0.0, 0.0, (0.5 - 0.5) / 2, (-0.5 - 0.5) / 2]))
    # a row no reward function scored: out of every mean, advantage 0
    cont, _ = official_advantages(
        torch.tensor([1.0, float("nan"), 0.0, 1.0]), torch.tensor([0, PLAIN, PLAIN, PLAIN]), 4, 1
    )
    torch.testing.assert_close(cont, torch.tensor([1.0, 0.0, -0.5, 0.5]))


def test_card_2_official_advantages_in_the_trainer(tmp_path, tiny_model_dir):
    """Rewards [0, 0, 1, 1] with the last member prefixed = the card's [1, 0, 0, 1] with member 0 prefixed."""
    batch = generated(make(tmp_path, tiny_model_dir, prefix_entropy_keep_quantile=1.0))
    adv, prefix, mask = batch["advantages"], batch["prefix_mask"].bool(), batch["completion_mask"].bool()
    assert adv.shape == batch["completion_ids"].shape
    seen = []
    for i in range(adv.shape[0]):
        cont = adv[i][mask[i] & ~prefix[i]].unique()
        assert cont.numel() == 1
        if prefix[i].any():
            torch.testing.assert_close(adv[i][prefix[i]], torch.full((int(prefix[i].sum()),), 2 / 3))
            seen.append(("prefixed", round(float(cont), 5)))
        else:
            seen.append(("plain", round(float(cont), 5)))
    expected = [("plain", -0.33333), ("plain", -0.33333), ("plain", 0.66667), ("prefixed", 1.0)] * 2
    assert sorted(seen) == sorted(expected)


def test_card_2_paper_advantages_are_the_group_mean_on_every_token(tmp_path, tiny_model_dir):
    batch = generated(make(tmp_path, tiny_model_dir, prefix_advantage_mode="paper"))
    assert batch["prefix_mask"].any()
    assert batch["advantages"].dim() == 1  # one value per rollout, prefixed or not
    assert sorted(batch["advantages"].tolist()) == [-0.5] * 4 + [0.5] * 4  # r - 0.5, no std


# --- card test 3: entropy clipping on the prefix tokens ---------------------------------------------------------
def test_card_3_only_the_top_entropy_prefix_token_keeps_its_advantage(tmp_path, tiny_model_dir):
    trainer = make(tmp_path, tiny_model_dir)
    entropies = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.01, 0.02, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    trainer.current_prefix_mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    kept = trainer.get_high_entropy_mask(entropies, mask, 0.0)
    # int(0.8 * 5) = 4 lowest prefix tokens dropped; continuation (incl. low entropy) kept; padding never
    assert kept.tolist() == [[False, True, False, False, False, True, True, False]]


@pytest.mark.parametrize("n", list(range(1, 41)))
def test_card_3_kept_count_is_n_minus_int_point_8_n(n, shared_trainer):
    trainer = shared_trainer
    entropies = torch.rand(1, n, generator=torch.Generator().manual_seed(n)) * 5
    trainer.current_prefix_mask = torch.ones(1, n, dtype=torch.long)
    kept = trainer.get_high_entropy_mask(entropies, torch.ones(1, n, dtype=torch.long), 0.0)
    expected = n - math.floor(4 * n / 5)  # the official split point int(0.8 n), in exact integer arithmetic
    assert int(kept.sum()) == expected
    assert entropies[kept].min() > entropies[~kept].max() if expected < n else True


@pytest.fixture(scope="module")
def shared_trainer(tmp_path_factory, tiny_model_dir):
    return make(tmp_path_factory.mktemp("shared"), tiny_model_dir)


def test_card_3_zeroed_prefix_tokens_stay_in_the_denominator(tmp_path, tiny_model_dir):
    """bnpo (token mean) at ratio 1: loss = -sum(A kept) / mask.sum(). With A = 1 on prefix tokens and 0 elsewhere,
    the loss is -(N - int(0.8 N)) / (all completion tokens), N the micro-batch's prefix tokens."""
    trainer = make(tmp_path, tiny_model_dir, loss_type="bnpo", prefix_loss_aggregation="trl")
    batch = generated(trainer)
    prefix = batch["prefix_mask"]
    batch["advantages"] = prefix.float()
    n = int(prefix.sum())
    assert n >= 2
    loss = trainer.compute_loss(trainer.model, dict(batch))
    expected = -(n - math.floor(4 * n / 5)) / float(batch["completion_mask"].sum())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)


# --- card test 4: m = 0 is GRPO -----------------------------------------------------------------------------------
def test_card_4_zero_prefixed_rollouts_reproduce_grpo(tmp_path, tiny_model_dir):
    common = dict(
        output_dir=str(tmp_path / "grpo"),
        num_generations=G,
        per_device_train_batch_size=8,
        max_completion_length=10,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        loss_type="dr_grpo",
        scale_rewards="none",
    )
    grpo = GRPOTrainer(model=tiny_model_dir, reward_funcs=by_position, args=GRPOConfig(**common), train_dataset=rows())
    grpo.current_gradient_accumulation_steps = 1
    ours = {}
    for agg in ("trl", "official"):
        args = PrefixRFTConfig(
            **{**common, "output_dir": str(tmp_path / agg)}, num_prefixed_per_group=0, prefix_loss_aggregation=agg
        )
        ours[agg] = PrefixRFTTrainer(model=tiny_model_dir, reward_funcs=by_position, args=args, train_dataset=rows())
        ours[agg].current_gradient_accumulation_steps = 1

    def step(trainer):
        batch = generated(trainer, seed=3)
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        return batch, loss.detach(), grads

    ref_batch, ref_loss, ref_grads = step(grpo)
    # equal lengths and group-centred advantages make the loss value 0 at ratio 1; its gradient is not
    assert any(g.abs().max() > 0 for g in ref_grads.values())
    for agg, trainer in ours.items():
        batch, loss, grads = step(trainer)
        assert batch.keys() == ref_batch.keys()  # no prefix fields, (B,) advantages: the batch TRL builds
        for key, value in ref_batch.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(batch[key], value), key  # rollouts, masks and advantages bit for bit
        scale = 1.0 if agg == "trl" else 8.0  # official: the sum over the micro-batch's 8 rows, not their mean
        assert torch.equal(loss, ref_loss * scale) if agg == "trl" else torch.allclose(loss, ref_loss * scale)
        for name, g in ref_grads.items():
            if agg == "trl":
                assert torch.equal(grads[name], g), name
            else:
                torch.testing.assert_close(grads[name], g * scale)


# --- card test 5: the schedule ------------------------------------------------------------------------------------
def test_card_5_cosine_band():
    assert band_high(0, 100, 0.95, 0.05) == pytest.approx(0.95)
    assert band_high(50, 100, 0.95, 0.05) == pytest.approx(0.50)  # 0.05 + 0.5 (1 + cos(pi/2)) 0.9
    assert band_high(100, 100, 0.95, 0.05) == pytest.approx(0.05)
    assert band_high(500, 100, 0.95, 0.05) == pytest.approx(0.05)  # held after T
    assert band_high(25, 100, 0.95, 0.05, "linear") == pytest.approx(0.725)
    assert band_high(25, 100, 0.95, 0.05, "const") == 0.95


def test_card_5_schedule_in_training_and_ratios_in_the_band(tmp_path, tiny_model_dir):
    trainer = make(tmp_path, tiny_model_dir, max_steps=3, prefix_schedule_steps=2, learning_rate=0.0)
    trainer.train()
    highs = [h["band_high"] for h in trainer.prefix_history]
    assert highs == pytest.approx([0.95, 0.5, 0.05])
    for h in trainer.prefix_history:
        assert all(0.05 <= r <= h["band_high"] + 1e-12 for r in h["ratio"])
    logged = [e["prefix/band_high"] for e in trainer.state.log_history if "prefix/band_high" in e]
    assert logged == pytest.approx([0.95, 0.5, 0.05])
    assert all("prefix/kept_tokens_frac" in e for e in trainer.state.log_history if "loss" in e)


# --- card test 6: prefix tokens carry gradient --------------------------------------------------------------------
def test_card_6_prefix_tokens_carry_gradient(tmp_path, tiny_model_dir):
    trainer = make(tmp_path, tiny_model_dir, prefix_entropy_keep_quantile=1.0)
    batch = generated(trainer)
    batch["advantages"] = batch["prefix_mask"].float()  # only prefix tokens have A != 0
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in trainer.model.parameters() if p.grad is not None))
    assert norm > 0
    trainer.model.zero_grad()
    batch["advantages"] = torch.zeros_like(batch["advantages"])
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    assert all(p.grad is None or not p.grad.any() for p in trainer.model.parameters())


# --- state across a resume ----------------------------------------------------------------------------------------
def test_resume_restores_the_prefix_generator(tmp_path, tiny_model_dir):
    def build(folder):
        return make(
            Path(folder),
            tiny_model_dir,
            max_steps=3,
            save_strategy="steps",
            save_steps=1,
            output_dir=str(folder),
            per_device_train_batch_size=4,
        )

    full, cut, resumed = interrupted_and_resumed(build, tmp_path, 2)
    assert [h["ratio"] for h in resumed.prefix_history] == [h["ratio"] for h in full.prefix_history]
    assert resumed.prefix_rng.bit_generator.state == full.prefix_rng.bit_generator.state
    # a fresh generator would repeat step 0's draws (before the band), which differ from step 2's
    fresh = np.random.default_rng(full.args.seed)
    u = [fresh.beta(1.0, 1.0) for _ in full.prefix_history[0]["ratio"]]
    assert full.prefix_history[0]["ratio"] == pytest.approx([0.05 + 0.9 * x for x in u])
    later = [(r - 0.05) / (full.prefix_history[2]["band_high"] - 0.05) for r in full.prefix_history[2]["ratio"]]
    assert later != pytest.approx(u)


# --- bad input ----------------------------------------------------------------------------------------------------
def test_refuses_a_dataset_without_demonstrations(tmp_path, tiny_model_dir):
    data = Dataset.from_list([{"prompt": "Reverse 12.", "answer": "21"}] * 4)
    with pytest.raises(ValueError, match="demonstration"):
        make(tmp_path, tiny_model_dir, data=data)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_prefixed_per_group": 4}, "at least one plain rollout"),
        ({"num_prefixed_per_group": 3, "prefix_rollouts_per_variant": 2}, "multiple"),
        ({"top_entropy_quantile": 0.2}, "prefix_entropy_keep_quantile"),
        ({"loss_type": "grpo"}, "prefix_loss_aggregation"),
        ({"scale_rewards": "group"}, "scale_rewards"),
        ({"prefix_ratio_high_end": 0.01}, ">= prefix_ratio_low"),
    ],
)
def test_config_refusals(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        config(tmp_path, **kwargs)


# --- the CLI, with LoRA -------------------------------------------------------------------------------------------
def test_cli_prefix_rft_with_lora(tiny_model_dir, tmp_path, capfd):
    code = main(
        [
            "train",
            "prefix_rft",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:prefix_reverse",
            "--rewards",
            "prefix_answer",
            "--num_generations",
            "4",
            "--per_device_train_batch_size",
            "4",
            "--num_prefixed_per_group",
            "2",
            "--max_completion_length",
            "8",
            "--max_steps",
            "2",
            "--use_peft",
            "--lora_r",
            "4",
            "--lora_target_modules",
            "all-linear",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
            "--output_dir",
            str(tmp_path / "run"),
        ]
    )
    out = "".join(capfd.readouterr())
    assert code == 0, out[-3000:]
    assert "prefix/ratio_mean" in out and "prefix/kept_tokens_frac" in out and "onpolicy/reward_mean" in out


# --- 2 processes = 1 process --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return run_layout(SCRIPT, tmp_path_factory.mktemp("prft1") / "one.json", 8, "none")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["none", "zero3"])
def test_two_processes_equal_one(engine, one_process, tmp_path, monkeypatch):
    if engine.startswith("zero"):
        pytest.importorskip("deepspeed")
        monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    assert one_process["prefix_tokens"] > 0 and 0 < one_process["kept_frac"] < 1
    run = run_layout(SCRIPT, tmp_path / f"{engine}.json", 4, engine, nproc=2)
    assert run["completions"] == one_process["completions"]
    assert_same_step(one_process, run, name=f"prefix_rft on 2 processes ({engine if engine != 'none' else 'ddp'})")


def test_cli_refuses_a_dataset_without_demonstrations(tmp_path, capfd, no_model_load):
    args = ["train", "prefix_rft", "--dataset_name", "builtin:arith", "--dataset_config", "grpo"]
    code = main([*args, "--rewards", "prefix_answer", "--output_dir", str(tmp_path / "x")])
    assert code != 0
    assert "demonstration" in "".join(capfd.readouterr())


def test_prefix_answer_unusable_gold_scores_none_never_raises():
    from trl_ext_plugins.prefix_rft.rewards import prefix_answer

    answers = ["007", None, "", "  ", "seven", ["007"], True, b"7", float("inf")]
    n = len(answers)
    out = prefix_answer(
        prompts=["p"] * n, completions=["The answer is 007"] * n, completion_ids=[[1]] * n, answer=answers
    )
    assert out == [1.0] + [None] * (n - 1)
    # leading zeros still count; garbage completions still score 0.0
    assert prefix_answer(prompts=["p"] * 3, completions=["The answer is 7", None, ""], answer=["007", "7", "7"]) == [
        0.0,
        0.0,
        0.0,
    ]
