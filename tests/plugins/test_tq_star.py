"""tq_star (Transfer Q*): the card's hand-computed decoding-rule cases, "rescoring disabled = plain decoding" token for
token (greedy and sampled), the stub-reward limit, batching invariance, the indirect transfer, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trl_ext.cli import main
from trl_ext.testing import save_tiny_model, tiny_model, tiny_tokenizer
from trl_ext_plugins.tq_star import generate, indirect_q, transfer_scores
from trl_ext_plugins.tq_star.decoding import Step, TransferQStarProcessor
from trl_ext_plugins.tq_star.rewards import keyword_reward

PROMPTS = [
    "Tom has 3 apples",
    [{"role": "user", "content": "How many pens are in the box?"}],
    "A box",
]
CHAT_PROMPTS = [[{"role": "user", "content": t}] for t in ("Tom has 3 apples", "How many pens?", "A box")]
A = "A"  # a single token of the tiny tokenizer, and no other token contains the letter


def count_a(prompts, completions, **_):
    """The card's stub reward: occurrences of "A" in the text."""
    return [float(c.count(A)) for c in completions]


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return tiny_model(seed=0).eval(), tiny_model(seed=1).eval(), tiny_tokenizer()


def plain(model, tokenizer, prompts, max_new_tokens, **kwargs):
    """Plain `model.generate` on left-padded prompts, written here independently of the plugin: the completion ids of
    each prompt up to and including its first EOS."""
    texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) if isinstance(p, list) else p
             for p in prompts]  # fmt: skip
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kwargs)
    rows = []
    for ids in out[:, enc["input_ids"].shape[1] :].tolist():
        stop = [i for i, t in enumerate(ids) if t == tokenizer.eos_token_id]
        rows.append(tuple(ids[: stop[0] + 1] if stop else ids))
    return rows


# --- card test 4: score ordering, by hand ---------------------------------------------------------------------------
def test_score_ordering_by_hand():
    logprobs, q = torch.tensor([-0.1, -2.0]), torch.tensor([0.0, 3.0])
    assert transfer_scores(logprobs, q, 1.0).tolist() == pytest.approx([-0.1, 1.0])  # picks candidate 2
    assert int(transfer_scores(logprobs, q, 1.0).argmax()) == 1
    assert transfer_scores(logprobs, q, 0.5).tolist() == pytest.approx([-0.1, -0.5])  # picks candidate 1
    assert int(transfer_scores(logprobs, q, 0.5).argmax()) == 0


# --- card test 3: the indirect weight -------------------------------------------------------------------------------
def test_indirect_weight_by_hand():
    assert float(indirect_q(torch.tensor([2.0]), torch.tensor([1.0]), 2.0)) == pytest.approx(3.2974, abs=1e-4)
    assert float(indirect_q(torch.tensor([2.0]), torch.tensor([1.0]), 2.0)) == pytest.approx(2 * math.exp(0.5))
    r = torch.tensor([0.3, -1.5, 4.0])
    assert torch.equal(indirect_q(r, r), r.double())  # r_BL = r: the weight is exp(0) = 1, direct transfer
    huge = indirect_q(torch.tensor([1000.0]), torch.tensor([0.0]), 2.0, exponent_clip=20.0)
    assert float(huge) == pytest.approx(math.exp(20.0) * 1000.0)  # clipped, finite


def test_decoding_logprob_of_a_step_by_hand():
    step = Step(candidates=[7, 9], logprobs=[-0.1, -2.0], q=[0.0, 3.0], scores=[-0.1, 1.0])
    z = math.exp(-0.1) + math.exp(1.0)
    assert step.decoding_logprob(9) == pytest.approx(1.0 - math.log(z))
    assert step.decoding_logprob(7, temperature=0.5) == pytest.approx(-0.2 - math.log(math.exp(-0.2) + math.exp(2.0)))
    assert step.decoding_logprob(3) == -math.inf


# --- "rescoring disabled equals plain decoding", token for token ---------------------------------------------------
@pytest.mark.parametrize("disabled", [{"alpha": 0.0, "reward": count_a}, {"alpha": 5.0, "reward": None}])
def test_disabled_rescoring_is_plain_greedy_decoding(models, disabled):
    sft, baseline, tok = models
    ours = generate(sft, tok, PROMPTS, baseline_model=baseline, top_k=5, horizon=3, max_new_tokens=8, progress=False,
                    **disabled)  # fmt: skip
    assert [g.token_ids for g in ours] == plain(sft, tok, PROMPTS, 8, do_sample=False)
    assert all(g.kl >= 0 for g in ours)  # only the top-k renormalisation is left


def test_disabled_rescoring_is_plain_sampled_decoding(models):
    sft, baseline, tok = models
    torch.manual_seed(123)
    ours = generate(sft, tok, PROMPTS, baseline_model=baseline, reward=count_a, alpha=0.0, top_k=7, mode="sample",
                    temperature=0.7, max_new_tokens=8, progress=False)  # fmt: skip
    torch.manual_seed(123)
    reference = plain(sft, tok, PROMPTS, 8, do_sample=True, top_k=7, top_p=1.0, temperature=0.7)
    assert [g.token_ids for g in ours] == reference
    torch.manual_seed(124)
    assert plain(sft, tok, PROMPTS, 8, do_sample=True, top_k=7, top_p=1.0, temperature=0.7) != reference


# --- card tests 1 and 2: the stub reward --------------------------------------------------------------------------
def test_large_alpha_with_the_stub_reward_emits_only_a(models):
    """H = 0: a rollout that writes an "A" itself would tie a non-"A" candidate with z = "A" (the tiny baseline does)."""
    sft, baseline, tok = models
    a_id = tok.convert_tokens_to_ids(A)
    vocab = len(tok)  # k = the vocabulary: "A" is always a candidate
    ours = generate(sft, tok, PROMPTS, baseline_model=baseline, reward=count_a, alpha=100.0, top_k=vocab, horizon=0,
                    max_new_tokens=5, batch_candidates=vocab, progress=False)  # fmt: skip
    assert [g.token_ids for g in ours] == [(a_id,) * 5] * len(PROMPTS)
    assert all(g.text == A * 5 for g in ours)
    step = ours[0].trace[0]
    assert step["token"] == a_id and step["q"][step["candidates"].index(a_id)] >= 1.0


def test_greedy_picks_argmax_of_l_plus_alpha_q_from_the_trace(models):
    sft, baseline, tok = models
    (out,) = generate(sft, tok, PROMPTS[:1], baseline_model=baseline, reward=count_a, alpha=1.5, top_k=6, horizon=3,
                      max_new_tokens=6, progress=False)  # fmt: skip
    assert len(out.trace) == out.num_tokens
    for step in out.trace:
        scores = [lp + 1.5 * q for lp, q in zip(step["logprobs"], step["q"], strict=True)]
        assert step["scores"] == pytest.approx(scores)
        assert step["token"] == step["candidates"][max(range(len(scores)), key=scores.__getitem__)]


def test_q_is_the_reward_of_prefix_candidate_and_baseline_rollout(models):
    """Qhat(s_t, z) recomputed independently: the baseline's own greedy continuation of [prompt, z], decoded."""
    sft, baseline, tok = models
    (out,) = generate(sft, tok, PROMPTS[:1], baseline_model=baseline, reward=lambda prompts, completions: [
        float(len(c)) for c in completions], alpha=0.01, top_k=3, horizon=4, max_new_tokens=1, progress=False)  # fmt: skip
    prompt_ids = tok(PROMPTS[0], return_tensors="pt", add_special_tokens=False)["input_ids"]
    for z, q in zip(out.trace[0]["candidates"], out.trace[0]["q"], strict=True):
        ids = torch.cat([prompt_ids, torch.tensor([[z]])], dim=1)
        with torch.no_grad():
            rollout = baseline.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                                        pad_token_id=tok.pad_token_id)  # fmt: skip
        response = rollout[0, prompt_ids.shape[1] :].tolist()
        if tok.eos_token_id in response:
            response = response[: response.index(tok.eos_token_id) + 1]
        assert q == len(tok.decode(response, skip_special_tokens=True))


# --- card test 5: batching ------------------------------------------------------------------------------------------
def test_candidate_chunks_of_5_and_10_give_identical_outputs(models):
    sft, baseline, tok = models
    runs = [
        generate(
            sft,
            tok,
            PROMPTS,
            baseline_model=baseline,
            reward=count_a,
            alpha=2.0,
            top_k=10,
            horizon=3,
            max_new_tokens=5,
            batch_candidates=chunk,
            progress=False,
        )  # fmt: skip
        for chunk in (5, 10)
    ]
    assert [g.token_ids for g in runs[0]] == [g.token_ids for g in runs[1]]
    assert [g.trace for g in runs[0]] == [g.trace for g in runs[1]]


def test_prompt_batches_do_not_change_outputs(models):
    sft, baseline, tok = models
    kwargs = dict(baseline_model=baseline, reward=count_a, alpha=2.0, top_k=4, horizon=2, max_new_tokens=4,
                  progress=False)  # fmt: skip
    one = generate(sft, tok, PROMPTS, batch_size=1, **kwargs)
    three = generate(sft, tok, PROMPTS, batch_size=3, **kwargs)
    assert [g.token_ids for g in one] == [g.token_ids for g in three]


# --- indirect transfer ----------------------------------------------------------------------------------------------
def test_indirect_with_r_bl_equal_to_r_is_direct(models):
    sft, baseline, tok = models
    kwargs = dict(baseline_model=baseline, reward=count_a, alpha=3.0, top_k=8, horizon=3, max_new_tokens=5,
                  progress=False)  # fmt: skip
    direct = generate(sft, tok, PROMPTS, **kwargs)
    indirect = generate(sft, tok, PROMPTS, transfer="indirect", baseline_reward=count_a, **kwargs)
    assert [g.token_ids for g in direct] == [g.token_ids for g in indirect]
    assert [g.trace for g in direct] == [g.trace for g in indirect]


def test_implicit_dpo_reward_of_the_sft_model_itself_is_zero(models):
    """rho_BL = pi_sft makes r_BL = beta * log(rho/pi) = 0, so Qhat = exp(r / beta_w) * r: the same decoding as direct
    transfer with that reward."""
    sft, _, tok = models
    kwargs = dict(baseline_model=sft, alpha=0.5, top_k=6, horizon=2, max_new_tokens=4, progress=False)
    indirect = generate(sft, tok, PROMPTS, reward=count_a, transfer="indirect", dpo_beta=0.1, **kwargs)

    def weighted(prompts, completions):
        return [math.exp(r / 2.0) * r for r in count_a(prompts, completions)]

    direct = generate(sft, tok, PROMPTS, reward=weighted, **kwargs)
    assert [g.token_ids for g in indirect] == [g.token_ids for g in direct]
    q_ind = [q for g in indirect for s in g.trace for q in s["q"]]
    q_dir = [q for g in direct for s in g.trace for q in s["q"]]
    assert q_ind == pytest.approx(q_dir, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": -1.0}, "alpha must be >= 0"),
        ({"top_k": 0}, "top_k must be >= 1"),
        ({"transfer": "sideways"}, "transfer must be one of"),
        ({"transfer": "indirect"}, "needs r_BL"),
        ({"batch_candidates": 0}, "batch_candidates must be >= 1"),
    ],
)
def test_bad_settings_are_refused(models, kwargs, message):
    sft, baseline, tok = models
    with pytest.raises(ValueError, match=message):
        TransferQStarProcessor(baseline, count_a, tok, **kwargs)


# --- the demo reward ------------------------------------------------------------------------------------------------
def test_keyword_reward_counts_whole_words():
    assert keyword_reward(completions=["Thank you, please! Thanks.", "thanksgiving", ""]) == [3.0, 0.0, 0.0]
    custom = keyword_reward.from_options(keywords="foo,bar")
    assert custom(completions=["foo bar foo", "please"]) == [3.0, 0.0]


# --- trl-ext generate -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tq_star")
    data = root / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in CHAT_PROMPTS))
    return str(save_tiny_model(root / "sft")), str(save_tiny_model(root / "baseline", seed=1)), str(data)


def run_generate(sft_dir, data, out, *processors):
    args = ["generate", "--model_name_or_path", sft_dir, "--dataset_name", data, "--max_new_tokens", "5",
            "--batch_size", "2", "--output", str(out)]  # fmt: skip
    assert main(args + (["--logits_processors", *processors] if processors else [])) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_cli_without_rescoring_equals_plain_generate(tiny_dirs, tmp_path):
    sft_dir, baseline_dir, data = tiny_dirs
    reference = run_generate(sft_dir, data, tmp_path / "plain.jsonl")
    ours = run_generate(sft_dir, data, tmp_path / "tq.jsonl",
                        f"tq_star:baseline_model={baseline_dir}:reward=tq_star_keyword_reward:alpha=0:top_k=4:horizon=2")  # fmt: skip
    assert [r["completion"] for r in ours] == [r["completion"] for r in reference]


def test_cli_rescores_with_a_reward_model_folder_as_the_python_api(tiny_dirs, tmp_path):
    """A reward model loaded through the core (`load_reward_model`) by folder; the CLI's completions are the Python
    API's on the same models and settings."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    sft_dir, baseline_dir, data = tiny_dirs
    tok = tiny_tokenizer()
    config = LlamaConfig.from_pretrained(sft_dir)
    config.num_labels = 1
    torch.manual_seed(3)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    spec = f"tq_star:baseline_model={baseline_dir}:reward={tmp_path / 'rm'}:alpha=20:top_k=4:horizon=2"
    ours = run_generate(sft_dir, data, tmp_path / "tq.jsonl", spec)

    from trl_ext.models import load_model, load_reward_model

    sft = load_model(sft_dir).eval()
    api = generate(sft, tok, CHAT_PROMPTS, baseline_model=load_model(baseline_dir).eval(), reward=str(tmp_path / "rm"),
                   alpha=20.0, top_k=4, horizon=2, max_new_tokens=5, batch_size=2, progress=False)  # fmt: skip
    assert [r["completion"] for r in ours] == [g.text for g in api]
    assert [g.token_ids for g in api] != plain(
        sft, tok, CHAT_PROMPTS, 5, do_sample=False
    )  # the reward moved something
    load_reward_model.cache_clear()


def test_cli_refuses_model_as_an_option(tiny_dirs, capsys):
    sft_dir, _, data = tiny_dirs
    code = main(["generate", "--model_name_or_path", sft_dir, "--dataset_name", data, "--logits_processors",
                 "tq_star:model=x"])  # fmt: skip
    assert code != 0 and "the model is --model_name_or_path" in capsys.readouterr().err
