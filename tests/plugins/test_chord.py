"""chord (arXiv 2508.11408): the card's hand-computed values, the limiting cases against TRL's own trainers, the expert
stream's resume, the CLI, and (slow) 2 processes against 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.testing import (
    SGD_STEP_ARGS,
    assert_same_step,
    check_same_step_in_every_layout,
    interrupted_and_resumed,
    logged,
    run_layout,
    tiny_model,
    tiny_tokenizer,
)
from trl_ext.training.expert import (
    STATE_FILE,
    ExpertDatasetError,
    ExpertSampler,
    ExpertStream,
    collate_expert,
    expert_trainer_kwargs,
    load_expert_dataset,
    tokenize_expert,
)
from trl_ext_plugins.chord import ChordConfig, ChordTrainer, expert_token_loss, mu_schedule

DISTRIBUTED_SCRIPT = Path(__file__).parent.parent / "distributed" / "chord_step.py"


# --- data and trainers ----------------------------------------------------------------------------------------------
def prompt_rows(n: int = 8) -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": f"What is {i} + {i + 3}?"}], "answer": str(2 * i + 3)}
        for i in range(n)
    ]


def expert_rows(n: int = 8) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i + 3}?"}],
            "completion": [{"role": "assistant", "content": f"{i} + {i + 3} = {2 * i + 3}." + " So" * (i % 3)}],
        }
        for i in range(n)
    ]


def varied_reward(completions, **kwargs):
    """A deterministic reward that varies between completions, so GRPO's advantages are not all zero."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [float(sum(map(ord, t)) % 5) for t in texts]


def chord_config(out, **overrides) -> ChordConfig:
    fields = dict(
        output_dir=str(out),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        gradient_checkpointing=False,
        **{**SGD_STEP_ARGS, "learning_rate": 0.1},
    )
    fields.update(overrides)
    return ChordConfig(**fields)


def chord_trainer(out, expert=None, rewards=None, **overrides) -> ChordTrainer:
    return ChordTrainer(
        model=tiny_model(),
        reward_funcs=rewards or [varied_reward],
        args=chord_config(out, **overrides),
        train_dataset=Dataset.from_list(prompt_rows()),
        processing_class=tiny_tokenizer(),
        expert_dataset=Dataset.from_list(expert_rows() if expert is None else expert),
    )


# --- 1. the mu schedule (card test 1) -------------------------------------------------------------------------------
@pytest.mark.parametrize("step, expected", [(0, 0.0), (100, 0.25), (200, 0.5), (400, 0.26), (600, 0.02), (1000, 0.02)])
def test_mu_schedule_example_config(step, expected):
    assert mu_schedule(step, 200, 400, 0.5, 0.02) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 0.9), (100, 0.475), (200, 0.05), (300, 0.05)])
def test_mu_schedule_chord_mu_preset(step, expected):
    assert mu_schedule(step, 0, 200, 0.9, 0.05) == pytest.approx(expected, abs=1e-12)


def test_mu_schedule_constant_when_decay_is_zero():
    assert [mu_schedule(s, 0, 0, 0.1, 0.1) for s in (0, 1, 50)] == [0.1, 0.1, 0.1]


# --- 2. the expert-SFT token losses (card test 2) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "p, variant, expected",
    [
        (0.5, "phi", 0.25 * math.log(2)),  # 0.17329
        (0.9, "phi", 0.09 * -math.log(0.9)),  # 0.0094824
        (0.5, "nll", math.log(2)),
        (0.9, "is", 0.9 * -math.log(0.9)),
    ],
)
def test_single_token_loss_by_hand(p, variant, expected):
    loss = expert_token_loss(torch.tensor([math.log(p)], dtype=torch.float64), variant)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_card_phi_figures():
    phi = expert_token_loss(torch.tensor([math.log(0.5), math.log(0.9)], dtype=torch.float64), "phi")
    assert phi[0].item() == pytest.approx(0.17329, abs=5e-6)
    assert phi[1].item() == pytest.approx(0.0094824, abs=5e-8)


@pytest.mark.parametrize(
    "variant, weight", [("phi", lambda p: p * (1 - p)), ("is", lambda p: p), ("nll", lambda p: 1)]
)
def test_gradient_wrt_target_logit_on_a_five_way_softmax(variant, weight):
    """d/dz_y of -sg(w(p)) log p_y = -w(p) (1 - p_y); the other logits get w(p) p_j."""
    logits = torch.tensor([1.3, -0.4, 0.2, 2.0, -1.1], dtype=torch.float64, requires_grad=True)
    y = 3
    log_p = torch.log_softmax(logits, -1)
    expert_token_loss(log_p[y : y + 1], variant).sum().backward()
    p = torch.softmax(logits.detach(), -1)
    expected = weight(p[y]) * p
    expected[y] = -weight(p[y]) * (1 - p[y])
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-15)


def test_cutoff_clamps_log_p_but_weights_use_the_unclamped_p():
    """c = 0.5: a token with p = 0.9 contributes -phi(0.9) log 0.5 and gets no gradient; one with p = 0.2 is as
    without the cutoff."""
    log_p = torch.tensor([math.log(0.9), math.log(0.2)], dtype=torch.float64, requires_grad=True)
    loss = expert_token_loss(log_p, "phi", cutoff_prob=0.5)
    assert loss[0].item() == pytest.approx(-0.09 * math.log(0.5), rel=1e-12)
    assert loss[1].item() == pytest.approx(-0.16 * math.log(0.2), rel=1e-12)
    loss.sum().backward()
    assert log_p.grad[0].item() == 0.0
    assert log_p.grad[1].item() == pytest.approx(-0.16, rel=1e-12)


# --- config ---------------------------------------------------------------------------------------------------------
def test_dual_clip_sets_grpo_delta_and_conflicts_are_refused(tmp_path):
    assert chord_config(tmp_path, chord_dual_clip=3.0).delta == 3.0
    assert chord_config(tmp_path).delta is None
    with pytest.raises(ValueError, match="chord_dual_clip=3.0 and delta=2.0"):
        chord_config(tmp_path, chord_dual_clip=3.0, delta=2.0)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sft_loss_variant", "dft", "sft_loss_variant='dft'"),
        ("mu_peak", 1.5, "mu_peak=1.5"),
        ("mu_decay_steps", -1, "mu_decay_steps=-1"),
        ("cutoff_prob", 0.0, "cutoff_prob=0.0"),
        ("chord_dual_clip", 0.5, "chord_dual_clip=0.5"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        chord_config(tmp_path, **{field: value})


def test_config_defaults_follow_the_card(tmp_path):
    config = chord_config(tmp_path)
    assert (config.sft_loss_variant, config.mu_peak, config.mu_valley, config.mu_warmup_steps) == ("phi", 0.1, 0.1, 0)
    assert (config.loss_type, config.cutoff_prob, config.expert_batch_size) == ("bnpo", 1.0, 4)
    assert config.expert_seed == config.seed


# --- the dual clip is GRPOConfig.delta: hand values through GRPOTrainer's own loss --------------------------------------
@pytest.mark.parametrize("delta, advantage, expected", [(None, -1.0, 5.0), (3.0, -1.0, 3.0), (3.0, 1.0, -1.2)])
def test_dual_clip_hand_values(tmp_path, delta, advantage, expected):
    """Every completion token at ratio pi/pi_old = 5, eps = 0.2: -min(r A, clip(r) A) is 5 for A = -1; the dual clip
    c = 3 caps it at -c A = 3; for A = +1 it is -1.2 either way (bnpo token mean, mu = 0 so the loss is GRPO's)."""
    trainer = chord_trainer(tmp_path, mu_peak=0.0, mu_valley=0.0, chord_dual_clip=delta)
    tok = tiny_tokenizer()
    prompt = torch.tensor([tok("What is 1 + 2?")["input_ids"]] * 2)
    completion = torch.tensor([tok(" 1 + 2 = 3.")["input_ids"]] * 2)
    ids = torch.cat([prompt, completion], 1)
    labels = ids.clone()
    labels[:, : prompt.shape[1]] = -100
    trainer.model.train()
    with torch.no_grad():
        log_probs = trainer.model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs[
            :, -completion.shape[1] :
        ]
    inputs = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": completion,
        "completion_mask": torch.ones_like(completion),
        "advantages": torch.full((2,), advantage),
        "old_per_token_logps": log_probs - math.log(5.0),
    }
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(trainer.model, inputs)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --- the expert stream --------------------------------------------------------------------------------------------------
def test_sampler_permutes_each_epoch_with_its_own_generator_and_restores():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    sampler = ExpertSampler(5, seed=7)
    draws = [sampler.next(3) for _ in range(4)]  # 12 indices: two full epochs and two of the third
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG never moved
    flat = sum(draws, [])
    assert sorted(flat[:5]) == sorted(flat[5:10]) == list(range(5))
    state = sampler.state_dict()
    assert state == {"epoch": 2, "offset": 2, "draws": 4, "size": 5, "seed": 7}
    again = ExpertSampler(5, seed=7)
    again.load_state_dict(json.loads(json.dumps(state)))
    assert again.next(4) == sampler.next(4)
    with pytest.raises(ExpertDatasetError, match="seed 8"):
        ExpertSampler(5, seed=8).load_state_dict(state)


def test_two_processes_draw_the_halves_of_one_process_batch():
    data = Dataset.from_list(expert_rows())
    one = ExpertStream(data, tiny_tokenizer(), batch_size=4, seed=0)
    ranks = [ExpertStream(data, tiny_tokenizer(), 2, 0, process_index=r, num_processes=2) for r in (0, 1)]
    for _ in range(3):
        whole = one.next_batch()
        halves = [r.next_batch() for r in ranks]
        assert one.last_indices == ranks[0].last_indices + ranks[1].last_indices
        assert sum(h["labels"].ne(-100).sum() for h in halves) == whole["labels"].ne(-100).sum()


def test_expert_rows_are_tokenised_as_sft_trainer_does(tmp_path):
    """Same ids and completion-only labels as SFTTrainer's prepared rows, row by row."""
    tok = tiny_tokenizer()
    prepared = _sft_trainer(tmp_path, "nll").train_dataset
    ours = tokenize_expert(Dataset.from_list(expert_rows(4)), tok)
    for row, (ids, mask) in zip(prepared, ours, strict=True):
        assert row["input_ids"] == ids
        assert row["labels"] == [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    batch = collate_expert(ours[:1], tok.pad_token_id)
    assert tok.decode(batch["input_ids"][0][batch["labels"][0] != -100]).startswith("0 + 3 = 3.")


def test_messages_rows_train_the_last_assistant_turn():
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "1 + 1 = 2."}]}]
    tok = tiny_tokenizer()
    batch = ExpertStream(Dataset.from_list(rows), tok, 1, 0).next_batch()
    assert tok.decode(batch["input_ids"][batch["labels"] != -100]).startswith("1 + 1 = 2.")


def test_bad_expert_datasets_are_refused(tmp_path):
    with pytest.raises(ExpertDatasetError, match="prompt \\+ completion, or messages"):
        ExpertStream(Dataset.from_list([{"text": "x"}]), tiny_tokenizer(), 1, 0)
    with pytest.raises(ExpertDatasetError, match="needs expert_dataset="):
        ChordTrainer(model=tiny_model(), reward_funcs=[varied_reward], args=chord_config(tmp_path))

    class Stage:
        config = chord_config(tmp_path)

        class method:  # noqa: N801
            name = "chord"

    with pytest.raises(ExpertDatasetError, match="--expert_dataset_name"):
        expert_trainer_kwargs(Stage())
    Stage.config.expert_dataset_name = "builtin:arith"
    dataset = expert_trainer_kwargs(Stage())["expert_dataset"]
    assert {"prompt", "completion"} <= set(dataset.column_names) and len(dataset) == 2000
    with pytest.raises(ExpertDatasetError, match="no split 'dev'"):
        load_expert_dataset("builtin:arith", split="dev")


# --- 3/4. limiting cases against TRL ------------------------------------------------------------------------------------
def _sft_trainer(tmp_path, loss_type: str):
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        output_dir=str(tmp_path / loss_type),
        loss_type=loss_type,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        bf16=False,
        shuffle_dataset=False,
        max_length=1024,
    )
    return SFTTrainer(
        model=tiny_model(),
        args=config,
        train_dataset=Dataset.from_list(expert_rows(4)),
        processing_class=tiny_tokenizer(),
    )


@pytest.mark.parametrize("variant, loss_type", [("is", "dft"), ("nll", "nll")])
def test_expert_loss_equals_trl_sft_trainer_at_temperature_one(tmp_path, variant, loss_type):
    """'is' is TRL's DFT loss and 'nll' SFTTrainer's NLL, loss and gradients, on the same 4 rows (T = 1)."""
    sft = _sft_trainer(tmp_path, loss_type)
    batch = next(iter(sft.get_train_dataloader()))
    sft.model.train()
    reference = sft.compute_loss(sft.model, dict(batch))
    reference.backward()
    ref_grads = {n: p.grad.clone() for n, p in sft.model.named_parameters() if p.grad is not None}

    chord = chord_trainer(tmp_path / "chord", expert=expert_rows(4), sft_loss_variant=variant, temperature=1.0)
    chord.model.train()
    expert = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
    loss = chord.expert_sft_loss(chord.model, expert)
    loss.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    grads = {n: p.grad for n, p in chord.model.named_parameters() if p.grad is not None}
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-5, atol=1e-7)


def test_expert_loss_runs_at_the_grpo_temperature(tmp_path):
    """At T = 2 the fused head divides the logits by 2: 'nll' is then the NLL of the tempered distribution."""
    sft = _sft_trainer(tmp_path, "nll")
    batch = next(iter(sft.get_train_dataloader()))
    chord = chord_trainer(tmp_path / "chord", expert=expert_rows(4), sft_loss_variant="nll", temperature=2.0)
    expert = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
    with torch.no_grad():
        loss = chord.expert_sft_loss(chord.model, expert)
        logits = tiny_model()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits / 2.0
    labels = batch["labels"][:, 1:]
    log_p = torch.log_softmax(logits[:, :-1].double(), -1)
    mask = labels != -100
    expected = -log_p.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[mask].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _recording_reward(store: list):
    def reward(completions, completion_ids=None, **kwargs):
        store.append([list(ids) for ids in completion_ids])
        return varied_reward(completions)

    reward.__name__ = "varied_reward"
    return reward


def test_mu_zero_is_plain_grpo_bit_for_bit(tmp_path):
    """mu = 0: same rollouts, same logged losses, same weights after 2 SGD steps as GRPOTrainer (same seed)."""
    from trl import GRPOConfig, GRPOTrainer

    seen_grpo, seen_chord = [], []
    common = dict(
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        gradient_checkpointing=False,
        loss_type="bnpo",
        **{**SGD_STEP_ARGS, "max_steps": 2, "learning_rate": 0.5},
    )
    grpo = GRPOTrainer(
        model=tiny_model(),
        reward_funcs=[_recording_reward(seen_grpo)],
        args=GRPOConfig(output_dir=str(tmp_path / "grpo"), **common),
        train_dataset=Dataset.from_list(prompt_rows()),
        processing_class=tiny_tokenizer(),
    )
    initial = {n: p.detach().clone() for n, p in grpo.model.named_parameters()}
    grpo.train()  # each trainer seeds the global RNG when built (and tiny_model too): build each just before training
    chord = ChordTrainer(
        model=tiny_model(),
        reward_funcs=[_recording_reward(seen_chord)],
        args=ChordConfig(output_dir=str(tmp_path / "chord"), mu_peak=0.0, mu_valley=0.0, **common),
        train_dataset=Dataset.from_list(prompt_rows()),
        processing_class=tiny_tokenizer(),
        expert_dataset=Dataset.from_list(expert_rows()),
    )
    chord.train()
    assert seen_grpo == seen_chord and len(seen_grpo) == 2
    assert logged(grpo, "loss") == logged(chord, "loss")
    moved = 0.0
    for (name, a), (_, b) in zip(grpo.model.named_parameters(), chord.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name
        moved = max(moved, (a - initial[name]).abs().max().item())
    assert moved > 0  # the steps did update the weights
    assert logged(chord, "chord/mu") == {1: 0.0, 2: 0.0}


def test_mu_one_trains_the_expert_term_only(tmp_path):
    """mu = 1 with 'nll': the update is the SFT NLL gradient on the expert batch (the GRPO term has no gradient)."""
    trainer = chord_trainer(
        tmp_path, mu_peak=1.0, mu_valley=1.0, sft_loss_variant="nll", expert=expert_rows(4), expert_seed=3
    )
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    stream = ExpertStream(Dataset.from_list(expert_rows(4)), tiny_tokenizer(), 4, 3)
    batch = stream.next_batch()
    model = tiny_model()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    labels = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)
    nll.backward()
    trainer.train()
    for name, p in trainer.model.named_parameters():
        expected = initial[name] - 0.1 * dict(model.named_parameters())[name].grad
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_trains_with_lora(tmp_path):
    """--use_peft: the adapters move, the base weights do not, and the expert term is logged."""
    from peft import LoraConfig

    trainer = ChordTrainer(
        model=tiny_model(),
        reward_funcs=[varied_reward],
        args=chord_config(tmp_path, mu_peak=0.5, mu_valley=0.5, learning_rate=0.5),
        train_dataset=Dataset.from_list(prompt_rows()),
        processing_class=tiny_tokenizer(),
        expert_dataset=Dataset.from_list(expert_rows()),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert logged(trainer, "chord/sft_loss")[1] > 0


# --- resume -----------------------------------------------------------------------------------------------------------
def test_resume_restores_the_expert_stream(tmp_path):
    def make(folder):
        return chord_trainer(folder, max_steps=4, save_strategy="steps", save_steps=2, logging_steps=1)

    full, cut, resumed = interrupted_and_resumed(make, tmp_path, stop_step=2)
    state = json.loads((tmp_path / "cut" / "checkpoint-2" / STATE_FILE).read_text())
    assert (state["draws"], state["epoch"], state["offset"]) == (2, 1, 0)  # 2 batches of 4 of the 8 rows
    assert resumed.expert_stream.sampler.state_dict() == full.expert_stream.sampler.state_dict()
    assert resumed.expert_stream.last_indices == full.expert_stream.last_indices
    for step in (3, 4):
        assert logged(resumed, "chord/sft_loss")[step] == pytest.approx(logged(full, "chord/sft_loss")[step], rel=1e-5)


# --- CLI ----------------------------------------------------------------------------------------------------------------
def test_cli_train_chord_on_a_tiny_model(tiny_model_dir, tmp_path, capfd):
    code = main(
        [
            "train",
            "chord",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:arith",
            "--expert_dataset_name",
            "builtin:arith",
            "--rewards",
            "chord_answer",
            "--num_generations",
            "2",
            "--per_device_train_batch_size",
            "2",
            "--max_completion_length",
            "8",
            "--max_steps",
            "2",
            "--mu_warmup_steps",
            "1",
            "--mu_decay_steps",
            "1",
            "--mu_peak",
            "0.5",
            "--mu_valley",
            "0.2",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
            "--output_dir",
            str(tmp_path / "chord"),
        ]
    )
    out = "".join(capfd.readouterr())
    assert code == 0, out[-3000:]
    assert "'chord/mu': '0'" in out and "'chord/mu': '0.5'" in out  # W = 1: step 0 is 0, step 1 the peak
    assert "chord/sft_loss" in out and "rewards/chord_answer/mean" in out
    assert (tmp_path / "chord" / "model.safetensors").exists()


def test_cli_refuses_chord_without_an_expert_dataset(tiny_model_dir, tmp_path, capfd):
    code = main(
        [
            "train",
            "chord",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:arith",
            "--rewards",
            "chord_answer",
            "--max_steps",
            "1",
            "--output_dir",
            str(tmp_path / "x"),
        ]
    )
    assert code != 0
    assert "--expert_dataset_name" in "".join(capfd.readouterr())


# --- 2 processes equal 1 (slow) ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_and_accumulation_equal_one_process(tmp_path):
    """DDP (2 x 2) and 2 accumulated micro-batches of 2 take the step of one process with the batch of 4 (card
    test 5: equal-length expert rows), GRPO and SFT terms both active (mu = 0.5)."""
    layouts = {"single": (1, 4, 1), "accumulated": (1, 2, 2), "ddp": (2, 2, 1)}
    check_same_step_in_every_layout(DISTRIBUTED_SCRIPT, tmp_path, "none", layouts=layouts, tolerance=1e-5)


@pytest.mark.slow
def test_zero3_on_two_processes_equals_one_process(tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")
    single = run_layout(DISTRIBUTED_SCRIPT, tmp_path / "single.json", 4, 1, "none")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(DISTRIBUTED_SCRIPT, tmp_path / "zero3.json", 2, 1, "zero3", nproc=2)
    assert_same_step(single, zero3, tolerance=1e-5, name="chord under ZeRO-3 on 2 processes")


def test_chord_answer_unusable_gold_scores_none_never_raises():
    from trl_ext_plugins.chord.rewards import chord_answer

    answers = ["42", None, "", "  ", "forty-two", ["42"], True, b"42", float("nan")]
    n = len(answers)
    out = chord_answer(
        prompts=["p"] * n, completions=["The answer is 42."] * n, completion_ids=[[1]] * n, answer=answers
    )
    assert out == [1.0] + [None] * (n - 1)
    # numbers given as numbers stay gold; garbage completions still score 0.0
    assert chord_answer(
        prompts=["p"] * 3, completions=["The answer is 42.", None, ""], answer=[42, "42", "1,250"]
    ) == [
        1.0,
        0.0,
        0.0,
    ]
