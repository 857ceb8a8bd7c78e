"""ConMax (arXiv:2601.04973): the card's tests, with expected values computed independently of the code under test
(by hand, on fixed logits, with a dense log_softmax over separate forwards, with a brute-force per-token loop)."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

from trl_ext.cli import main
from trl_ext.inference import scoring as core_scoring
from trl_ext.testing import tiny_grpo_flags, tiny_model, tiny_tokenizer, train_argv
from trl_ext_plugins.conmax.config import ConMaxConfig
from trl_ext_plugins.conmax.data import build as build_traces
from trl_ext_plugins.conmax.rewards import ConMaxConfidenceReward
from trl_ext_plugins.conmax.scoring import build_sequence, compressed_trace, conmax_scores, query_text
from trl_ext_plugins.conmax.transforms import (
    TRUNCATION_MARK,
    build_compression_prompts,
    conmax_prompts,
    conmax_select,
    final_answer_correct,
    select_best_compressions,
)


# --- helpers -----------------------------------------------------------------------------------------------------
class CharTokenizer:
    """One token per character (id = code point), no chat template, no special tokens: token counts are obvious."""

    chat_template = None
    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def reward_with(model, tokenizer, **options) -> ConMaxConfidenceReward:
    reward = ConMaxConfidenceReward(**options)
    reward.scorer = lambda: (model, tokenizer)
    return reward


def call(reward, completions, query="Q?", trace="a long trace " * 10, answer="42", logs=None):
    n = len(completions)
    log = (lambda k, v: logs.__setitem__(k, v)) if logs is not None else None
    return reward(
        prompts=["p"] * n,
        completions=completions,
        query=[query] * n,
        trace=[trace] * n,
        answer=[answer] * n,
        log_metric=log,
    )


def dense_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1 from one plain forward and a full log_softmax (the (T, V) logits)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()


def brute_force(model, ids: list[int], positions: range) -> list[float]:
    """log p(ids[t] | ids[:t]) by one forward per scored token on the prefix alone."""
    out = []
    with torch.no_grad():
        for t in positions:
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].float()
            out.append(torch.log_softmax(logits, dim=-1)[ids[t]].item())
    return out


# --- card test 1: hand log-probs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, expected", [(0.5, -1.5), (1.0, -2.0), (0.0, -1.0)])
def test_card_1_hand_logprobs(monkeypatch, alpha, expected):
    # ẑ = "abc" (3 tokens), y = "yz" (2 tokens) with a one-token-per-character tokenizer; the aux log-probs of the
    # scored tokens are fixed: ẑ -> [-0.5, -0.5, -2] (S_think = -1), y -> [-1, -3] (S_ans = -2).
    seen = {}

    def fake_token_logprobs(model, sequences, masks, **kwargs):
        (ids,), (mask,) = sequences, masks
        seen["targets"] = "".join(chr(t) for t, m in zip(ids, mask, strict=True) if m)
        return [[-0.5, -0.5, -2.0, -1.0, -3.0]]

    monkeypatch.setattr(core_scoring, "token_logprobs", fake_token_logprobs)
    reward = reward_with(None, CharTokenizer(), alpha=alpha, think_open="<t>", think_close="</t>")
    assert call(reward, ["<compressed>abc</compressed>"], answer="yz", trace="abcdefgh") == [expected]
    assert seen["targets"] == "abcyz"  # only ẑ's and y's tokens are scored


def test_fixed_uniform_logits_give_minus_log_vocab():
    # With a zero LM head every logit is 0: each token has log p = -ln V, so S_ans = S_think = R = -ln V.
    model = tiny_model()
    torch.nn.init.zeros_(model.lm_head.weight)
    tok = tiny_tokenizer()
    (pair,) = conmax_scores(model, tok, ["What is 3 + 4?"], ["3 + 4 = 7."], ["7"], ConMaxConfig())
    v = model.config.vocab_size
    assert pair == pytest.approx((-math.log(v), -math.log(v)), abs=1e-5)
    reward = reward_with(model, tok)
    assert call(reward, ["<compressed>3 + 4 = 7.</compressed>"], trace="3 + 4 = 7. Wait, 3 + 4 is 7. Yes, 7.") == [
        pytest.approx(-math.log(v), abs=1e-5)
    ]


# --- one forward = two separate forwards --------------------------------------------------------------------------
def test_one_forward_equals_two_separate_forwards():
    model, tok = tiny_model(seed=3), tiny_tokenizer()
    cfg = ConMaxConfig(think_open="<think>\n", answer_prefix="\nThe answer is ")
    queries = ["Tom has 3 apples and buys 4 more.", [{"role": "user", "content": "A box holds 12 pens."}]]
    traces, answers = ["3 + 4 = 7.", "12 - 5 = 7, so 7 pens are left."], ["7", 7]
    got = conmax_scores(model, tok, queries, traces, answers, cfg)
    for (s_ans, s_think), query, trace, answer in zip(got, queries, traces, answers, strict=True):
        context = query_text(query, tok)
        think_seq = tok(context + cfg.think_open, add_special_tokens=False)["input_ids"]
        n_prefix = len(think_seq)
        think_seq = think_seq + tok(trace, add_special_tokens=False)["input_ids"]
        full = think_seq + tok(cfg.think_close + cfg.answer_prefix, add_special_tokens=False)["input_ids"]
        n_before_y = len(full)
        full = full + tok(str(answer), add_special_tokens=False)["input_ids"]
        think = dense_logprobs(model, think_seq)[n_prefix - 1 :]  # separate forward on the thinking sequence only
        ans = dense_logprobs(model, full)[n_before_y - 1 :]  # separate forward on the answer sequence
        assert s_think == pytest.approx(sum(think) / len(think), abs=1e-5)
        assert s_ans == pytest.approx(sum(ans) / len(ans), abs=1e-5)


# --- card test 2: masking -----------------------------------------------------------------------------------------
def bigram_model():
    """A tiny Llama whose attention and MLP outputs are zero: the logits at a position depend on its token only,
    so prepending tokens to x leaves every later conditional probability unchanged."""
    model = tiny_model(seed=5)
    for layer in model.model.layers:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    return model


def test_card_2_s_ans_ignores_prompt_and_trace_tokens():
    model, tok = bigram_model(), tiny_tokenizer()
    cfg = ConMaxConfig(aux_chat_template=False)
    short, long = "Tom has 3 apples.", "Each of 6 bags has 8 marbles. A box holds 12 pens. Tom has 3 apples."
    (a,), (b,) = (conmax_scores(model, tok, [q], ["3 + 4 = 7."], ["The answer is 7."], cfg) for q in (short, long))
    assert a[0] == pytest.approx(b[0], abs=1e-6)  # S_ans unchanged by the extra prompt tokens
    assert a[1] == pytest.approx(b[1], abs=1e-6)  # so is S_think (its first token follows think_open)
    # Against a brute-force loop over the answer's tokens (one forward per token).
    seq = build_sequence(tok, long + "\n", "3 + 4 = 7.", "The answer is 7.", cfg)
    start, end = seq.answer_span
    ans = brute_force(model, seq.input_ids, range(start, end))
    assert b[0] == pytest.approx(sum(ans) / len(ans), abs=1e-5)
    think = brute_force(model, seq.input_ids, range(*seq.think_span))
    assert b[1] == pytest.approx(sum(think) / len(think), abs=1e-5)


def test_masking_with_a_context_dependent_model_matches_brute_force():
    model, tok = tiny_model(seed=7), tiny_tokenizer()
    cfg = ConMaxConfig()
    (pair,) = conmax_scores(model, tok, ["Each of 6 bags has 8 marbles."], ["6 * 8 = 48."], ["48"], cfg)
    seq = build_sequence(tok, query_text("Each of 6 bags has 8 marbles.", tok), "6 * 8 = 48.", "48", cfg)
    ans, think = (brute_force(model, seq.input_ids, range(*span)) for span in (seq.answer_span, seq.think_span))
    assert pair == pytest.approx((sum(ans) / len(ans), sum(think) / len(think)), abs=1e-5)


# --- card test 3: chunked scorer equals dense log_softmax ---------------------------------------------------------
@pytest.mark.parametrize("chunk", [32, 128, 1000])
def test_card_3_chunked_equals_dense(chunk):
    model = tiny_model(vocab_size=128, seed=1)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 128, (n,), generator=g).tolist() for n in (64, 40, 64, 7)]
    masks = [[i % 3 != 0 for i in range(len(s))] for s in seqs]
    got = core_scoring.token_logprobs(model, seqs, masks, pad_id=0, batch_size=3, vocab_chunk_size=chunk)
    for s, m, values in zip(seqs, masks, got, strict=True):
        dense = dense_logprobs(model, s)
        expected = [lp for lp, keep in zip(dense, m[1:], strict=True) if keep]
        assert values == pytest.approx(expected, abs=1e-5)


def test_token_logprobs_validates_and_restores_training_mode():
    model = tiny_model(vocab_size=128)
    model.train()
    assert core_scoring.token_logprobs(model, [[1, 2, 3], []], [[0, 1, 1], []]) == [
        pytest.approx(dense_logprobs(model, [1, 2, 3])),
        [],
    ]
    assert model.training
    with pytest.raises(ValueError, match="mask has 2"):
        core_scoring.token_logprobs(model, [[1, 2, 3]], [[0, 1]])


# --- card test 4: the gate ----------------------------------------------------------------------------------------
def test_card_4_gate(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a gated completion must not be scored")

    monkeypatch.setattr(core_scoring, "token_logprobs", never)
    reward = reward_with(None, CharTokenizer(), invalid_reward=-10.0)
    trace = "abcdef"
    completions = [
        "<compressed>abcdefg</compressed>",  # longer than z
        "<compressed>abcdef</compressed>",  # as long as z: no compression
        "<compressed></compressed>",  # empty span
        "<compressed>   \n </compressed>",  # blank span
        "no span at all",
        "<compressed>abc",  # unclosed span
        "</compressed>abc<compressed>",  # tags in the wrong order
    ]
    logs = {}
    assert call(reward, completions, trace=trace, logs=logs) == [-10.0] * len(completions)
    assert logs["conmax/invalid_frac"] == 1.0
    # Without require_shorter, a longer ẑ is scored; without require_span the whole output is ẑ.
    calls = []
    monkeypatch.setattr(
        core_scoring, "token_logprobs", lambda m, s, masks, **k: calls.append(1) or [[-1.0] * sum(x) for x in masks]
    )
    assert call(reward_with(None, CharTokenizer(), require_shorter=False), completions[:1], trace=trace) == [-1.0]
    assert call(reward_with(None, CharTokenizer(), require_span=False), ["abc"], trace=trace) == [-1.0]
    assert compressed_trace("x <compressed> a </compressed> <compressed>b</compressed>", ConMaxConfig()) == "a"


# --- card test 5: monotonic sanity --------------------------------------------------------------------------------
def test_card_5_relevant_text_in_trace_raises_s_ans():
    # Train a tiny model to copy: "...<think>N</think>\nN" for a few N. Then, scoring y = "47", a ẑ that mentions
    # 47 must give a higher S_ans than one that mentions another number.
    tok = tiny_tokenizer()
    model = tiny_model(hidden_size=64, seed=0)
    cfg = ConMaxConfig(aux_chat_template=False)
    values = ["47", "85", "30", "63", "58", "72"]  # two tokens each: sequences of one length, batched
    batch = torch.tensor([build_sequence(tok, "Q\n", f"It is {v}.", v, cfg).input_ids for v in values])
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    (rel, irr) = conmax_scores(model, tok, ["Q", "Q"], ["It is 47.", "It is 85."], ["47", "47"], cfg)
    assert rel[0] > irr[0] + 1.0, (rel, irr)


# --- the reward as TRL calls it -----------------------------------------------------------------------------------
def test_garbage_and_adversarial_completions_never_raise():
    model, tok = tiny_model(), tiny_tokenizer()
    reward = reward_with(model, tok)
    trace = "Tom has 3 apples and buys 4 more. 3 + 4 = 7. Wait, let me verify: 3 + 4 = 7. The answer is 7."
    completions = [
        None,
        5,
        b"x",
        {"a": 1},
        [{"role": "assistant", "content": 5}],  # not text -> 0.0
        "",
        "<compressed>" * 10_000,
        "<compressed>" + "7" * 100_000 + "</compressed>",
        "<compressed>\ud800</compressed>",
        "<compressed>🙂</compressed>",
        [{"role": "assistant", "content": "<compressed>3 + 4 = 7.</compressed>"}],
        "<compressed>3 + 4 = 7.</think>\n7</compressed>",
    ]
    logs = {}
    out = call(reward, completions, query="Tom has 3 apples.", trace=trace, answer="7", logs=logs)
    assert out[:5] == [0.0] * 5
    assert out[5:8] == [-10.0] * 3
    assert all(isinstance(v, float) and math.isfinite(v) and -10.0 < v < 0 for v in out[8:]), out
    assert set(logs) >= {"conmax/S_ans", "conmax/S_think", "conmax/compression_ratio", "conmax/invalid_frac"}
    assert 0 < logs["conmax/compression_ratio"] < 1


def test_bad_rows_are_not_applicable_and_missing_columns_refused():
    from trl_ext.rewards import RewardSetupError

    reward = reward_with(tiny_model(), tiny_tokenizer())
    ok = "<compressed>3 + 4 = 7.</compressed>"
    long_trace = "3 + 4 = 7. Wait, let me verify: 3 + 4 = 7. The answer is 7."
    assert call(reward, [ok], trace=None) == [None]
    assert call(reward, [ok], trace=long_trace, answer=None) == [None]
    assert call(reward, [ok], trace=long_trace, query=5) == [None]
    assert call(reward_with(tiny_model(), tiny_tokenizer(), aux_max_length=8), [ok], trace=long_trace) == [None]
    with pytest.raises(RewardSetupError, match="'trace'"):
        reward(prompts=["p"], completions=[ok], query=["q"], answer=["7"])


def test_unusable_gold_scores_none_even_where_the_gate_would_fire(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("no row here reaches the auxiliary model")

    monkeypatch.setattr(core_scoring, "token_logprobs", never)
    reward = reward_with(None, CharTokenizer(), invalid_reward=-10.0)
    queries = ["Q?", "Q?", "Q?", 5, [{"role": "user"}], "Q?", "Q?"]
    answers = ["7", None, "  ", "7", "7", ["7"], "7"]
    traces = ["abcdef"] * 6 + [None]
    n = len(queries)
    logs = {}
    out = reward(
        prompts=["p"] * n,
        completions=["no span at all"] * n,  # gated: invalid_reward on a usable row
        completion_ids=[[1]] * n,
        query=queries,
        trace=traces,
        answer=answers,
        log_metric=logs.__setitem__,
    )
    assert out == [-10.0] + [None] * (n - 1)
    assert logs["conmax/gold_error_rate"] == pytest.approx((n - 1) / n)
    assert logs["conmax/invalid_frac"] == pytest.approx(1 / n)


def test_reward_is_picklable_named_and_loads_its_scorer_once(monkeypatch, tiny_model_dir):
    reward = ConMaxConfidenceReward.from_options(aux_model_name_or_path=tiny_model_dir, alpha=1.0)
    assert reward.__name__.startswith("conmax_confidence_")
    assert ConMaxConfidenceReward.from_options().__name__ == "conmax_confidence"
    clone = pickle.loads(pickle.dumps(reward))
    core_scoring.load_scorer.cache_clear()
    loads = []
    import trl_ext.models as models

    original = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or original(*a, **k))
    trace = "3 + 4 = 7. Wait, let me verify: 3 + 4 = 7. The answer is 7."
    first = call(clone, ["<compressed>3 + 4 = 7.</compressed>"], trace=trace, answer="7")
    second = call(reward, ["<compressed>3 + 4 = 7.</compressed>"], trace=trace, answer="7")
    assert first == second and len(loads) == 1
    model, _ = reward.scorer()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_config_validation():
    for bad in (
        {"alpha": 1.5},
        {"alpha": "x"},
        {"span_tag": "a>b"},
        {"aux_batch_size": 0},
        {"aux_dtype": "int8"},
        {"require_span": "yes"},
        {"invalid_reward": math.nan},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ConMaxConfig(**bad)
    assert ConMaxConfig().alpha == 0.5 and ConMaxConfig().invalid_reward == -10.0


# --- transforms and data ------------------------------------------------------------------------------------------
def test_prompts_are_bounded_to_the_token_budget():
    tok = tiny_tokenizer()
    rows = build_traces("traces")["train"]
    fn = conmax_prompts(tokenizer=tok, max_prompt_tokens=500)
    out = fn(rows)
    assert len(out) == len(rows)
    for row in out:
        n = len(
            tok.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True, return_dict=True)[
                "input_ids"
            ]
        )
        assert n <= 500
    assert any(r["trace"].endswith(TRUNCATION_MARK) for r in out)  # prompts are ~750 tiny-tokenizer tokens
    assert set(out.column_names) >= {"prompt", "query", "trace", "answer"}
    with pytest.raises(ValueError, match="no row fits"):  # every prompt is over 500 tokens: all dropped
        conmax_prompts(tokenizer=tok, max_prompt_tokens=500, overflow="drop")(rows.select(range(4)))
    kept = conmax_prompts(tokenizer=tok, max_prompt_tokens=2000, overflow="drop")(rows.select(range(4)))
    assert kept["trace"] == rows.select(range(4))["trace"]
    # A query that alone exceeds the budget drops its row; a trace within budget is kept verbatim.
    assert (
        build_compression_prompts(
            {"prompt": "q " * 500, "trace": "t", "answer": "1"}, tokenizer=tok, max_prompt_tokens=100
        )
        is None
    )
    kept = build_compression_prompts({"prompt": "q", "trace": "3 + 4 = 7.", "answer": "7"}, tokenizer=tok)
    assert kept["trace"] == "3 + 4 = 7." and "3 + 4 = 7." in kept["prompt"][-1]["content"]
    # Without a tokenizer the budget is in UTF-8 bytes; braces in the query are not template fields.
    row = build_compression_prompts({"prompt": "{trace}?", "trace": "é" * 2000, "answer": "1"}, max_prompt_tokens=600)
    assert sum(len(m["content"].encode()) + 8 for m in row["prompt"]) <= 600
    assert "Question: {trace}?" in row["prompt"][-1]["content"]


def test_builtin_traces_are_deterministic_and_compressible():
    a, b = build_traces("grpo"), build_traces("grpo")
    assert a["train"].to_list() == b["train"].to_list()
    assert len(a["train"]) == 64 and len(a["test"]) == 16
    row = a["train"][0]
    assert row["trace"].count("verify") >= 1 and row["trace"].endswith(f"The answer is {row['answer']}.")
    assert max(sum(len(m["content"].encode()) for m in p) for p in a["train"]["prompt"]) < 1024
    assert set(build_traces("sft")["train"].column_names) == {"prompt", "completion", "answer"}


def test_selection_rules():
    assert select_best_compressions([-3.0, -1.0, -2.0], [True, False, True]) == 2
    assert select_best_compressions([-10.0, None, -5.0], [True, True, False], invalid_reward=-10.0) is None
    assert select_best_compressions([-2.0, -2.0], [True, True]) == 0
    assert final_answer_correct("3 + 4 = 7. The answer is 7.", "7")
    assert not final_answer_correct("The answer is 7. Then 8.", "7")
    assert final_answer_correct("so it is 1,234", 1234) and final_answer_correct("Paris it is", "paris")
    assert not final_answer_correct("no number", "7") and not final_answer_correct("7", None)


def test_conmax_select_picks_the_best_correct_candidate():
    from datasets import Dataset

    model, tok = tiny_model(), tiny_tokenizer()
    trace = "Tom has 3 apples and buys 4 more. 3 + 4 = 7. Wait, let me verify: 3 + 4 = 7. The answer is 7."
    cands = [
        "<compressed>3 + 4 = 7. The answer is 7.</compressed>",
        "<compressed>3 + 4 = 8.</compressed>",
        "<compressed>Tom: 3 + 4 = 7</compressed>",
        "garbage",
    ]
    data = Dataset.from_list([{"query": "Tom has 3 apples.", "trace": trace, "answer": "7", "candidates": cands}])
    reward = reward_with(model, tok)
    scores = call(reward, cands, query="Tom has 3 apples.", trace=trace, answer="7")
    best = max((0, 2), key=lambda i: scores[i])  # candidate 1 has a wrong answer, 3 has no span
    fn = conmax_select()
    # the transform builds its own reward: point it at the tiny scorer
    import trl_ext_plugins.conmax.rewards as rewards_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rewards_module.ConMaxConfidenceReward, "scorer", lambda self: (model, tok))
        out = fn(data).to_list()
    (row,) = out
    assert row["conmax_reward"] == pytest.approx(scores[best])
    expected = compressed_trace(cands[best], ConMaxConfig())
    assert row["completion"] == [{"role": "assistant", "content": f"<think>{expected}</think>\n7"}]
    assert row["prompt"] == [{"role": "user", "content": "Tom has 3 apples."}]


# --- CLI smoke runs -----------------------------------------------------------------------------------------------
def test_cli_transform_then_grpo_on_a_tiny_policy_and_scorer(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    code = main(
        [
            "transform",
            "conmax_prompts",
            "--dataset_name",
            "builtin:conmax_traces",
            "--dataset_config",
            "traces",
            "--split",
            "train",
            "--model_name_or_path",
            tiny_model_dir,
            "--max_prompt_tokens",
            "500",
            "--output",
            str(prompts),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    assert len(rows) == 64 and all("<compressed>" in r["prompt"][-1]["content"] for r in rows)
    out = tmp_path / "grpo"
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(out),
            "--dataset_name",
            str(prompts),
            "--rewards",
            f"conmax_confidence:aux_model_name_or_path={tiny_model_dir}",
            *tiny_grpo_flags(),
        )
    )
    assert code == 0
    assert (out / "model.safetensors").exists()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as saved:  # the policy alone: the frozen scorer is not saved
        assert set(saved.keys()) == set(tiny_model().state_dict())


@pytest.mark.slow
def test_cli_recipe_grpo_then_compress_select_sft_on_smollm2(tmp_path):
    data = build_traces("grpo")["train"].select(range(3))
    path = tmp_path / "rows.jsonl"
    data.to_json(str(path))
    recipe = tmp_path / "conmax.yaml"
    recipe.write_text(
        f"""
model_name_or_path: smollm2-135m
output_dir: {tmp_path / "run"}
report_to: none
save_strategy: "no"
per_device_train_batch_size: 2
logging_steps: 1
max_steps: 1
stages:
  - method: grpo
    dataset_name: {path}
    rewards: conmax_confidence
    num_generations: 2
    max_completion_length: 16
  - method: sft
    model_name_or_path: smollm2-135m
    dataset_name: {path}
    max_length: 256
    transforms:
      - {{name: conmax_compress, compressor: {tmp_path / "run" / "stage-1-grpo"}, num_candidates: 2, max_new_tokens: 24}}
      - {{name: conmax_select, fallback: original}}
"""
    )
    assert main(["train", "--config", str(recipe)]) == 0
    assert (tmp_path / "run" / "stage-2-sft" / "model.safetensors").exists()


def test_example_recipe_parses_into_grpo_then_sft_with_the_conmax_transforms():
    from pathlib import Path

    from trl_ext.run.arguments import parse_stage
    from trl_ext.run.recipe import load_recipe, stages

    recipe = Path(__file__).parents[2] / "examples" / "recipes" / "conmax.yaml"
    plan = [dict(values) for values in stages(load_recipe(recipe))]
    parsed = [parse_stage(values.pop("method"), [], values, first=i == 0) for i, values in enumerate(plan)]
    assert [stage.method.name for stage in parsed] == ["grpo", "sft"]
    assert [record.name for record, _ in parsed[0].rewards] == ["conmax_confidence"]
    assert [record.name for record, _ in parsed[1].transforms] == ["conmax_compress", "conmax_select"]
    assert parsed[1].transforms[0][1]["compressor"] == "outputs/conmax/stage-1-grpo"
