"""SRPPO (arXiv:2510.21090): the self-reward log π_sft(y|x) − log π_pt(y|x) and its RLOO trainer.

Card tests: (1) π_sft = π_pt gives 0; (2) per-token log-ratios [0.2, -0.1, 0.4] give 0.5 (0.1667 length-normalised);
(3) the reward from completion_ids equals the one from the text, and a second implementation (full logits,
log_softmax + gather on the jointly tokenised text); (4) after 30 SFT steps on one demo its completion scores > 0 and
a shuffled version lower; (5) the chunked path equals the naive full-logit one to 1e-5.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.testing import save_tiny_model, tiny_model, tiny_tokenizer
from trl_ext_plugins.srppo import SelfRewardConfig, SelfRewardLogRatio, SRPPOConfig, SRPPOTrainer, render_prompt

torch.set_num_threads(1)

PROMPT = [{"role": "user", "content": "What is 3 + 4?"}]
ANSWER = "3 + 4 = 7. The answer is 7."


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny models with one tokenizer (π_sft, π_pt), saved to disk."""
    root = tmp_path_factory.mktemp("srppo")
    return str(save_tiny_model(root / "sft", seed=1)), str(save_tiny_model(root / "base", seed=2))


def reward_for(sft: str, base: str, **options) -> SelfRewardLogRatio:
    return SelfRewardLogRatio.from_options(sft_model_name_or_path=sft, base_model_name_or_path=base, **options)


def completion_ids(text: str, eos: bool = True) -> list[int]:
    tok = tiny_tokenizer()
    return tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])


def naive_log_ratio(sft_path: str, base_path: str, prompt_ids: list[int], ids: list[int]) -> float:
    """A second implementation: full (1, T, V) logits of each model, log_softmax, gather the completion tokens."""
    from transformers import AutoModelForCausalLM

    total = 0.0
    sequence = torch.tensor([prompt_ids + ids])
    for path, sign in ((sft_path, 1.0), (base_path, -1.0)):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        with torch.no_grad():
            logp = torch.log_softmax(model(sequence).logits[0, :-1].double(), dim=-1)
        targets = sequence[0, 1:]
        per_token = logp.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1 :]
        assert len(per_token) == len(ids)
        total += sign * per_token.sum().item()
    return total


# --- card test 1: π_sft = π_pt -------------------------------------------------------------------------------------
@pytest.mark.parametrize("same_path", [True, False], ids=["one_path", "two_copies"])
def test_same_model_gives_exactly_zero(models, tmp_path, same_path):
    sft, _ = models
    copy = sft if same_path else str(save_tiny_model(tmp_path / "copy", seed=1))  # same weights, scored twice
    reward = reward_for(sft, copy)
    texts = [ANSWER, "x", "The answer is 48.", ""]
    logs = {}
    ids = [completion_ids(t) for t in texts]
    out = reward(prompts=[PROMPT] * 4, completions=texts, completion_ids=ids, log_metric=logs.__setitem__)
    assert out == [0.0, 0.0, 0.0, 0.0]
    if not same_path:  # the forwards ran: the log-likelihoods are real and equal
        assert logs["srppo/logp_sft"] == logs["srppo/logp_base"] < 0


def test_two_names_of_one_folder_skip_the_forwards(models, tmp_path):
    """A second name for the same weights (here a symlink; a built-in alias and its cache folder alike) is π_sft = π_pt:
    0 without scoring, so no log-likelihood metric is logged."""
    sft, _ = models
    link = tmp_path / "same-weights"
    link.symlink_to(sft, target_is_directory=True)
    logs = {}
    out = reward_for(sft, str(link))(
        prompts=[PROMPT], completions=[ANSWER], completion_ids=[completion_ids(ANSWER)], log_metric=logs.__setitem__
    )
    assert out == [0.0]
    assert "srppo/logp_sft" not in logs


# --- card test 2: hand-set logits ------------------------------------------------------------------------------------
def constant_logit_model(logits: torch.Tensor):
    """A tiny model whose every position predicts softmax(`logits`): a zero LM head with `logits` as its bias."""
    model = tiny_model()
    head = torch.nn.Linear(model.config.hidden_size, len(logits), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(logits)
    model.lm_head = head
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("length_normalize, expected", [(False, 0.5), (True, 0.5 / 3)])
def test_per_token_log_ratios_add_up(length_normalize, expected):
    tok = tiny_tokenizer()
    vocab = len(tok)
    targets = completion_ids("ab", eos=False)[:2] + [tok.eos_token_id]
    assert len(set(targets)) == 3
    ratios = [0.2, -0.1, 0.4]  # the card's per-token log π_sft − log π_pt
    # π_pt uniform: log p = -log V everywhere; π_sft puts e^d / V on each target, the rest spread evenly.
    p_sft = torch.empty(vocab, dtype=torch.float64)
    mass = [math.exp(d) / vocab for d in ratios]
    p_sft.fill_((1 - sum(mass)) / (vocab - 3))
    for t, m in zip(targets, mass, strict=True):
        p_sft[t] = m
    sft, base = constant_logit_model(p_sft.log().float()), constant_logit_model(torch.zeros(vocab))
    reward = SelfRewardLogRatio(SelfRewardConfig("sft", "base", length_normalize=length_normalize), tokenizer=tok)
    reward.scorers = lambda: ((sft, tok), (base, tok))
    out = reward(prompts=["Q"], completions=["ab"], completion_ids=[targets])
    assert out[0] == pytest.approx(expected, abs=1e-5)


def test_scale_and_clip():
    tok = tiny_tokenizer()
    vocab = len(tok)
    target = tok.eos_token_id
    p_sft = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
    p_sft[target] = 4.0 / vocab  # one token, log-ratio log 4
    p_sft[[i for i in range(vocab) if i != target]] = (1 - 4.0 / vocab) / (vocab - 1)
    sft, base = constant_logit_model(p_sft.log().float()), constant_logit_model(torch.zeros(vocab))
    for options, expected in [({"reward_scale": 2.0}, 2 * math.log(4)), ({"reward_clip": 1.0}, 1.0)]:
        reward = SelfRewardLogRatio(SelfRewardConfig("sft", "base", **options), tokenizer=tok)
        reward.scorers = lambda: ((sft, tok), (base, tok))
        assert reward(prompts=["Q"], completions=[""], completion_ids=[[target]])[0] == pytest.approx(expected, 1e-5)


# --- card tests 3 and 5: token ids, text, and the naive full-logit implementation ------------------------------------
@pytest.mark.parametrize("prompt", [PROMPT, "Question: what is 3 + 4?\nAnswer:"], ids=["chat", "plain"])
def test_reward_equals_full_logit_implementation_and_text_path(models, prompt):
    sft, base = models
    tok = tiny_tokenizer()
    texts = [ANSWER, " 7", "The answer is 48."]
    ids = [completion_ids(t) for t in texts]
    reward = reward_for(sft, base)
    from_ids = reward(prompts=[prompt] * 3, completions=texts, completion_ids=ids)
    from_text = reward(prompts=[prompt] * 3, completions=texts)
    if isinstance(prompt, str):  # the prompt and the completion tokenised jointly, as plain text
        joint = [tok(prompt + t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in texts]
        prompt_ids = tok(prompt)["input_ids"]
    else:  # the chat template's generation prompt, then the completion
        prompt_ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        joint = [list(prompt_ids) + i for i in ids]
    expected = []
    for j in joint:
        assert j[: len(prompt_ids)] == list(prompt_ids)  # ASCII: no token straddles the boundary
        expected.append(naive_log_ratio(sft, base, list(prompt_ids), j[len(prompt_ids) :]))
    assert from_ids == pytest.approx(expected, abs=1e-5)
    assert from_text == pytest.approx(expected, abs=1e-5)
    assert len(set(from_ids)) == 3 and all(v != 0.0 for v in from_ids)


# --- card test 4: 30 SFT steps on one demo ---------------------------------------------------------------------------
def test_sft_on_one_demo_makes_its_completion_score_positive_and_a_shuffle_lower(tmp_path):
    tok = tiny_tokenizer()
    base_path = save_tiny_model(tmp_path / "base", seed=3)
    model = tiny_model(seed=3).train()
    prompt_ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]
    ids = completion_ids(ANSWER)
    sequence = torch.tensor([list(prompt_ids) + ids])
    labels = sequence.clone()
    labels[0, : len(prompt_ids)] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = model(input_ids=sequence, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    shuffled = ids[:-1]
    random.Random(0).shuffle(shuffled)
    shuffled.append(tok.eos_token_id)
    assert shuffled != ids
    reward = reward_for(str(tmp_path / "sft"), str(base_path))
    demo, other = reward(prompts=[PROMPT] * 2, completions=[ANSWER, "x"], completion_ids=[ids, shuffled])
    assert demo > 0
    assert other < demo


# --- truncation, garbage, limits ------------------------------------------------------------------------------------
def test_truncated_completions_scored_by_default_or_given_no_eos_reward(models):
    sft, base = models
    full, cut = completion_ids(ANSWER), completion_ids(ANSWER, eos=False)
    logs = {}
    out = reward_for(sft, base)(
        prompts=[PROMPT] * 2, completions=[ANSWER] * 2, completion_ids=[full, cut], log_metric=logs.__setitem__
    )
    prompt_ids = render_prompt(tiny_tokenizer(), PROMPT)
    assert out[1] == pytest.approx(naive_log_ratio(sft, base, prompt_ids, cut), abs=1e-5)
    assert logs["srppo/no_eos_frac"] == 0.5
    assert logs["srppo/reward_mean"] == pytest.approx(sum(out) / 2, abs=1e-6)
    out = reward_for(sft, base, no_eos_reward=-3.0)(
        prompts=[PROMPT] * 2, completions=[ANSWER] * 2, completion_ids=[full, cut]
    )
    assert out[1] == -3.0 and out[0] == pytest.approx(naive_log_ratio(sft, base, prompt_ids, full), abs=1e-5)


def test_garbage_scores_zero_or_none_and_never_raises(models):
    sft, base = models
    reward = reward_for(sft, base, reward_max_length=40)
    good = completion_ids(ANSWER)
    out = reward(
        prompts=[PROMPT, None, 5, PROMPT, PROMPT, PROMPT],
        completions=[None, ANSWER, ANSWER, ANSWER, ANSWER * 20, ANSWER],
        completion_ids=[good, good, good, [], good * 20, [-1, 10**9]],
    )
    assert out[:4] == [0.0, 0.0, 0.0, 0.0]  # no text / unrenderable prompts / nothing generated
    assert out[4] is None  # longer than reward_max_length: not applicable
    assert out[5] == pytest.approx(out_of_text := reward(prompts=[PROMPT], completions=[ANSWER])[0])
    assert out_of_text != 0.0  # invalid ids: the text is scored instead
    assert reward(prompts=[], completions=[]) == []


def test_vocabulary_mismatch_is_a_setup_error(models, tmp_path):
    from trl_ext.rewards import RewardSetupError

    other = str(save_tiny_model(tmp_path / "wide", vocab_size=400))
    with pytest.raises(RewardSetupError, match="one vocabulary"):
        reward_for(models[0], other)(prompts=[PROMPT], completions=[ANSWER])


@pytest.mark.parametrize(
    "field, value",
    [("base_model_name_or_path", ""), ("reward_clip", 0.0), ("reward_batch_size", 0), ("reward_dtype", "int8")],
)
def test_configs_refuse_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SelfRewardConfig(**{"sft_model_name_or_path": "a", "base_model_name_or_path": "b", field: value})
    if field != "base_model_name_or_path":
        with pytest.raises(ValueError, match=field):
            SRPPOConfig(output_dir="/tmp/x", base_model_name_or_path="b", use_cpu=True, **{field: value})


def test_srppo_config_defaults_follow_the_card():
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        SRPPOConfig(output_dir="/tmp/x", use_cpu=True)
    cfg = SRPPOConfig(output_dir="/tmp/x", base_model_name_or_path="b", use_cpu=True)
    assert cfg.beta == 0.05 and cfg.length_normalize is False and cfg.no_eos_reward is None
    assert cfg.reward_config("policy").sft_model_name_or_path == "policy"


# --- the trainer ----------------------------------------------------------------------------------------------------
def record_generation(model) -> list[list[int]]:
    """Wrap `model.generate` (public API) to record the unpadded prompt ids the trainer generates from."""
    seen: list[list[int]] = []
    generate = model.generate

    def recording(*args, **kwargs):
        for ids, mask in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist(), strict=True):
            seen.append([t for t, m in zip(ids, mask, strict=True) if m])
        return generate(*args, **kwargs)

    model.generate = recording
    return seen


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "plain"])
def test_trainer_step_renders_prompts_as_the_trainer_tokenised_them(models, tmp_path, chat):
    sft, base = models
    from transformers import AutoModelForCausalLM

    prompts = [[{"role": "user", "content": f"What is {a} + 2?"}] if chat else f"{a} + 2 =" for a in (3, 40)]
    config = SRPPOConfig(
        output_dir=str(tmp_path),
        base_model_name_or_path=base,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        chat_template_kwargs={"unused_flag": True} if chat else None,
    )
    policy = AutoModelForCausalLM.from_pretrained(sft)
    seen = record_generation(policy)
    trainer = SRPPOTrainer(
        model=policy,
        args=config,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tiny_tokenizer(),
    )
    initial = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer.train()
    reward = trainer.self_reward
    rendered = [render_prompt(reward.tokenizer, p, reward.chat_template_kwargs) for p in prompts]
    assert seen and all(ids in rendered for ids in seen)
    assert {tuple(ids) for ids in seen} == {tuple(ids) for ids in rendered}
    log = next(e for e in trainer.state.log_history if "srppo/reward_mean" in e)
    assert "rewards/self_reward_log_ratio/mean" in log and "srppo/no_eos_frac" in log
    assert trainer.reward_func_names[0] == "self_reward_log_ratio"
    assert any(not torch.equal(initial[n], p) for n, p in policy.named_parameters())


def test_cli_train_srppo_on_a_tiny_model(models, tmp_path, capfd):
    sft, base = models
    args = ["train", "srppo", "--model_name_or_path", sft, "--base_model_name_or_path", base]
    args += ["--dataset_name", "builtin:arith", "--num_generations", "2", "--per_device_train_batch_size", "2"]
    args += ["--max_completion_length", "8", "--max_steps", "2", "--report_to", "none", "--save_strategy", "no"]
    args += ["--logging_steps", "1", "--output_dir", str(tmp_path / "srppo")]
    assert main(args) == 0
    out = "".join(capfd.readouterr())
    assert "srppo/reward_mean" in out and "srppo/logp_base" in out
    assert (tmp_path / "srppo" / "model.safetensors").exists()


def test_cli_refuses_srppo_without_base_model(models, tmp_path, capfd):
    code = main(["train", "srppo", "--model_name_or_path", models[0], "--output_dir", str(tmp_path / "x")])
    assert code != 0
    assert "base_model_name_or_path" in "".join(capfd.readouterr())


def test_cli_reward_weights_count_the_self_reward_first(models, tmp_path, capfd):
    sft, base = models
    args = ["train", "srppo", "--model_name_or_path", sft, "--base_model_name_or_path", base]
    code = main([*args, "--reward_weights", "1.0", "--output_dir", str(tmp_path / "x"), "--rewards", "json_validity"])
    assert code != 0
    assert "srppo's own, json_validity" in "".join(capfd.readouterr())
