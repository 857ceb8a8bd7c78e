"""`pika_rm`, the pika transform's stand-in reward model as a reward: each value checked against a full-logits
float64 forward of the saved model (trl_ext.testing.full_logits_perplexities), token counts from the rendered pair."""

import math

import pytest

from trl_ext.inference.scoring import tokenize_pair
from trl_ext.models import load_model, load_tokenizer
from trl_ext.plugin.registry import registry
from trl_ext.testing import full_logits_perplexities

QUESTIONS = ["Explain CRISPR interference.", "Why do adjuvants help vaccines?"]
ANSWERS = ["It cuts DNA where a guide RNA matches.", "They activate innate receptors, so the response is stronger."]


def _expected(model_dir: str, prompts, answers, length_penalty: float) -> list[float]:
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    rows = [
        {"prompt": p, "completion": [{"role": "assistant", "content": a}]}
        for p, a in zip(prompts, answers, strict=True)
    ]
    ppl = full_logits_perplexities(model, tokenizer, rows)
    counts = [sum(tokenize_pair(tokenizer, r["prompt"], r["completion"])[1][1:]) for r in rows]
    return [-math.log(p) - length_penalty * n for p, n in zip(ppl, counts, strict=True)]


def _reward(model_dir: str, **options):
    return registry().get("reward", "pika_rm").build(model_name_or_path=model_dir, **options)


def test_mean_logprob_minus_length_penalty(tiny_model_dir):
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    reward = _reward(tiny_model_dir, length_penalty=0.01)
    got = reward(prompts=prompts, completions=[[{"role": "assistant", "content": a}] for a in ANSWERS])
    assert got == pytest.approx(_expected(tiny_model_dir, prompts, ANSWERS, 0.01), abs=1e-4)
    # without the penalty: the plain token-mean log-prob, higher by 0.01 x the token count
    plain = _reward(tiny_model_dir)(prompts=prompts, completions=ANSWERS)
    assert plain == pytest.approx(_expected(tiny_model_dir, prompts, ANSWERS, 0.0), abs=1e-4)
    assert all(p > g for p, g in zip(plain, got, strict=True))


def test_text_prompt_is_scored_as_a_user_turn(tiny_model_dir):
    as_messages = [[{"role": "user", "content": q}] for q in QUESTIONS]
    got = _reward(tiny_model_dir)(prompts=QUESTIONS, completions=ANSWERS)
    assert got == pytest.approx(_expected(tiny_model_dir, as_messages, ANSWERS, 0.0), abs=1e-4)


def test_garbage_and_missing_prompts(tiny_model_dir):
    reward = _reward(tiny_model_dir)
    assert reward(prompts=[], completions=[]) == []
    got = reward(prompts=[QUESTIONS[0], None, QUESTIONS[1]], completions=[None, ANSWERS[0], 12345])
    # not text (None, a number): 0.0, the toolkit's garbage score; no prompt to score against: not applicable
    assert got == [0.0, None, 0.0]
    assert reward.__name__ != _reward(tiny_model_dir, length_penalty=0.5).__name__
