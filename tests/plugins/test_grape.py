"""GRAPE (arXiv:2502.04194): the paper card's tests, plus formats, options and registration."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

import trl_ext_plugins.grape as grape
from trl_ext.inference.scoring import sequence_logprobs
from trl_ext.plugin.registry import Registry
from trl_ext.testing import tiny_model, tiny_tokenizer
from trl_ext_plugins.grape import grape_select, select_best, summarize_selection


def stub_scorer(token_logprobs: dict[str, list[float]]):
    """A scorer whose per-token log-probs of each candidate text are fixed by hand (the card's bigram stub)."""

    def scorer(prompts, completions):
        out = []
        for completion in completions:
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            lps = token_logprobs[text]
            out.append({"sum_logprob": sum(lps), "num_tokens": len(lps), "mean_logprob": sum(lps) / len(lps)})
        return out

    return scorer


def conv(text):
    return [{"role": "user", "content": text}]


# --- card tests 1 and 2: the selection rule ----------------------------------------------------------------------------
def test_card_1_tie_goes_to_the_shorter_then_a_better_last_token_wins():
    a, b = [-1.0, -1.0], [-0.5, -0.5, -2.0]
    assert sum(a) / 2 == sum(b) / 3 == -1.0
    assert select_best([-1.0, -1.0], [2, 3]) == [0]
    assert select_best([-1.0, -1.0], [3, 2]) == [1]  # the shorter wins wherever it sits
    assert select_best([-1.0, -1.0], [2, 2]) == [0]  # equal length: the lower index
    b_better = [-0.5, -0.5, -1.9]
    assert select_best([-1.0, sum(b_better) / 3], [2, 3]) == [1]


def test_card_1_through_grape_select():
    data = Dataset.from_list([{"prompt": conv("q"), "candidates": ["A", "B"], "candidate_sources": ["a", "b"]}])
    tie = grape_select(data, scorer=stub_scorer({"A": [-1.0, -1.0], "B": [-0.5, -0.5, -2.0]}))
    assert tie[0]["completion"] == [{"role": "assistant", "content": "A"}]
    assert tie[0]["grape_source"] == "a" and tie[0]["grape_score"] == -1.0
    b_wins = grape_select(data, scorer=stub_scorer({"A": [-1.0, -1.0], "B": [-0.5, -0.5, -1.9]}))
    assert b_wins[0]["completion"][0]["content"] == "B"
    assert b_wins[0]["grape_score"] == pytest.approx(-2.9 / 3)


def test_card_2_length_normalisation_matters():
    short, long = [-1.1, -1.1], [-1.0] * 10
    assert sum(short) > sum(long)  # a summed log-prob would pick the short one
    data = Dataset.from_list([{"prompt": "q", "candidates": ["short", "long"]}])
    out = grape_select(data, scorer=stub_scorer({"short": short, "long": long}))
    assert out[0]["completion"] == "long" and out[0]["grape_score"] == pytest.approx(-1.0)
    assert out[0]["grape_source"] == "candidate_1"


def test_unscorable_candidates_are_never_selected():
    assert select_best([-math.inf, -5.0, math.nan], [0, 4, 3]) == [1]
    assert select_best([-math.inf], [0]) == []


# --- options and output --------------------------------------------------------------------------------------------------
SCORES = {"x1": [-1.0], "x2": [-2.0, -2.0], "x3": [-0.5, -1.5], "y1": [-3.0], "y2": [-1.2, -1.2, -1.2]}


def grouped_data():
    return Dataset.from_list(
        [
            {
                "prompt": conv("x"),
                "candidates": ["x1", "x2", "x3"],
                "candidate_sources": ["s1", "s2", "s3"],
                "answer": "1",
            },
            {"prompt": conv("y"), "candidates": ["y1", "y2"], "candidate_sources": ["s1", "s2"], "answer": "2"},
        ]
    )


def test_top_k_keeps_ranked_rows():
    out = grape_select(grouped_data(), top_k=2, scorer=stub_scorer(SCORES))
    rows = [(r["prompt"][0]["content"], r["completion"][0]["content"], r["grape_rank"]) for r in out]
    # x: x1 (-1.0) and x3 (-1.0) tie, x1 is shorter; then x3. y: y2 (-1.2), then y1 (-3.0).
    assert rows == [("x", "x1", 1), ("x", "x3", 2), ("y", "y2", 1), ("y", "y1", 2)]
    assert out["grape_score"] == pytest.approx([-1.0, -1.0, -1.2, -3.0])
    assert out["answer"] == ["1", "1", "2", "2"]


def test_min_score_drops_instructions_whose_best_is_below():
    out = grape_select(grouped_data(), min_score=-1.1, scorer=stub_scorer(SCORES))
    assert [r["prompt"][0]["content"] for r in out] == ["x"]
    assert len(grape_select(grouped_data(), min_score=-0.5, scorer=stub_scorer(SCORES))) == 0


def test_output_columns():
    out = grape_select(grouped_data(), scorer=stub_scorer(SCORES))
    assert out.column_names == ["prompt", "completion", "answer", "grape_score", "grape_rank", "grape_source"]
    bare = grape_select(grouped_data(), return_scores=False, scorer=stub_scorer(SCORES))
    assert bare.column_names == ["prompt", "completion", "answer"]
    assert bare[0]["completion"] == [{"role": "assistant", "content": "x1"}]
    plain = Dataset.from_list([{"prompt": "x", "candidates": ["x1", "x2"]}])
    assert grape_select(plain, scorer=stub_scorer(SCORES))[0]["completion"] == "x1"


def test_summary_metrics():
    _, summary = grape_select(grouped_data(), scorer=stub_scorer(SCORES), return_summary=True)
    # selected: x1 (s1, -1.0), y2 (s2, -1.2); rejected: x2 (-2.0), x3 (-1.0), y1 (-3.0)
    assert summary["grape/source_frac/s1"] == 0.5 and summary["grape/source_frac/s2"] == 0.5
    assert summary["grape/source_frac/s3"] == 0.0
    assert summary["grape/score_selected"] == pytest.approx(-1.1)
    assert summary["grape/score_rejected"] == pytest.approx(-2.0)
    assert summary["grape/num_prompts"] == summary["grape/num_kept"] == summary["grape/num_selected"] == 2
    dropped = summarize_selection([["a", "b"]], [[-1.0, -2.0]], [[]])
    assert dropped["grape/num_kept"] == 0 and dropped["grape/source_frac/a"] == 0.0


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="candidates"):
        grape_select(Dataset.from_list([{"prompt": "x", "completion": "y"}]), scorer=stub_scorer(SCORES))
    with pytest.raises(ValueError, match="input_format"):
        grape_select(grouped_data(), input_format="wide", scorer=stub_scorer(SCORES))


# --- card test 5 and the real scorer on a tiny model --------------------------------------------------------------------
QUESTIONS = {
    "Tom has 3 apples and buys 4 more. How many apples does he have?": (
        "7",
        ["3 + 4 = 7. The answer is 7.", "7", "Tom has 3 apples. He buys 4 more, so 3 + 4 = 7. The answer is 7."],
    ),
    "A box holds 12 pens. 5 are taken out. How many are left?": (
        "7",
        ["12 - 5 = 7. The answer is 7.", "The answer is 7.", "There are 12 - 5 = 7 pens left."],
    ),
    "Each of 6 bags has 8 marbles. How many marbles?": ("48", ["6 * 8 = 48. The answer is 48.", "48", "6 * 8 = 48."]),
}
SOURCES = ["gold", "terse", "verbose"]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return tiny_model(seed=3), tiny_tokenizer()


def tiny_grouped():
    return Dataset.from_list(
        [
            {"prompt": conv(q), "candidates": cands, "candidate_sources": SOURCES, "answer": answer}
            for q, (answer, cands) in QUESTIONS.items()
        ]
    )


def tiny_long(with_prompt_id: bool):
    rows = [
        {"prompt_id": i, "prompt": conv(q), "completion": c, "source": s, "answer": answer}
        for i, (q, (answer, cands)) in enumerate(QUESTIONS.items())
        for c, s in zip(cands, SOURCES, strict=True)
    ]
    rows = rows[::2] + rows[1::2]  # interleaved: grouping must not rely on adjacent rows
    if not with_prompt_id:
        rows = [{k: v for k, v in r.items() if k != "prompt_id"} for r in rows]
    return Dataset.from_list(rows)


@pytest.mark.parametrize("with_prompt_id", [True, False])
def test_card_5_long_and_grouped_select_the_same(model_and_tokenizer, with_prompt_id):
    model, tokenizer = model_and_tokenizer
    grouped = grape_select(tiny_grouped(), model, tokenizer, top_k=2, batch_size=4, progress=False)
    long = grape_select(
        tiny_long(with_prompt_id), model, tokenizer, input_format="long", top_k=2, batch_size=3, progress=False
    )
    keys = ["prompt", "completion", "answer", "grape_rank", "grape_source"]
    assert [{k: r[k] for k in keys} for r in long] == [{k: r[k] for k in keys} for r in grouped]
    assert long["grape_score"] == pytest.approx(grouped["grape_score"], abs=1e-5)
    assert ("prompt_id" in long.column_names) == with_prompt_id


def test_selects_the_argmax_of_the_mean_token_logprob(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    out = grape_select(tiny_grouped(), model, tokenizer, progress=False)
    for row, (q, (_, cands)) in zip(out, QUESTIONS.items(), strict=True):
        scores = sequence_logprobs(model, tokenizer, [conv(q)] * len(cands), cands, progress=False)
        means = [s["mean_logprob"] for s in scores]
        best = max(range(len(cands)), key=lambda j: means[j])
        assert len(set(means)) == len(means)  # no tie: the argmax alone decides
        assert row["completion"][0]["content"] == cands[best]
        assert row["grape_score"] == pytest.approx(means[best], abs=1e-6)


def test_truncation_applies_to_scoring(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompt = conv("Each of 6 bags has 8 marbles. How many marbles?")
    prompt_len = len(
        tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    data = Dataset.from_list([{"prompt": prompt, "candidates": ["6 * 8 = 48. The answer is 48.", "48"]}])
    # Only the first 2 completion tokens survive: both candidates are scored on at most 2 tokens.
    truncated = grape_select(data, model, tokenizer, max_length=prompt_len + 2, progress=False)
    first_two = sequence_logprobs(
        model, tokenizer, [prompt] * 2, data[0]["candidates"], max_length=prompt_len + 2, progress=False
    )
    assert {s["num_tokens"] for s in first_two} == {2}
    assert truncated[0]["grape_score"] == pytest.approx(max(s["mean_logprob"] for s in first_two), abs=1e-6)
    # With no completion token left, SFT would drop the example: so does GRAPE.
    assert len(grape_select(data, model, tokenizer, max_length=prompt_len, progress=False)) == 0


# --- registration -------------------------------------------------------------------------------------------------------
def test_registry_exposes_grape(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    registry = Registry()
    info = registry.add_plugin(grape, "grape")
    assert info.status == "ok", info.error
    transform = registry.get("transform", "grape")
    assert transform.needs_model and transform.family == "data" and transform.paper.arxiv == "2502.04194"
    assert "top_k" in transform.options
    assert transform.columns_for() == ["prompt", "candidates"]  # the grouped form, by default
    assert transform.columns_for({"input_format": "long", "prompt_column": "q"}) == ["q", "completion"]
    fn = transform.build(model=model, tokenizer=tokenizer, top_k="2", max_length="none", progress="false")
    out = fn(tiny_grouped())
    assert len(out) == 2 * len(QUESTIONS) and out["grape_rank"] == [1, 2] * len(QUESTIONS)
    assert fn.summary["grape/num_selected"] == 2 * len(QUESTIONS)
    assert sum(v for k, v in fn.summary.items() if k.startswith("grape/source_frac/")) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="top_k"):
        transform.build(model=model, tokenizer=tokenizer, top_k=0)
    with pytest.raises(ValueError, match="model"):
        transform.build()
