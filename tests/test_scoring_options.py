"""`option_logprobs`: the summed log-probs of each option's tokens after its prompt, against a second simple
implementation (one unpadded forward per prompt+option, full logits, log_softmax in float64), with and without the
shared prompt / shared demo prefix, and the tokenization rules (no EOS added, the prompt's tokens never scored)."""

from __future__ import annotations

import pytest
import torch

from trl_ext.inference.scoring import option_logprobs, tokenize_option
from trl_ext.testing import tiny_model, tiny_tokenizer

PROMPTS = [
    "Review: the soup was good.\nSentiment:",
    "Review: the film was long and dull.\nSentiment:",
    "Demo: a\nAnswer: yes\n\nReview: ok\nSentiment:",
]
OPTIONS = [" positive", " negative", " quite mixed"]


def dense_option_logprob(model, tokenizer, prompt: str, option: str) -> float:
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + option)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids  # these strings split cleanly at the prompt's end
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logp[len(prompt_ids) - 1 :].sum())


@pytest.fixture(scope="module")
def tiny():
    return tiny_model().eval(), tiny_tokenizer()


@pytest.mark.parametrize("share", [True, False])
def test_matches_full_logits(tiny, share):
    model, tokenizer = tiny
    got = option_logprobs(model, tokenizer, PROMPTS, OPTIONS, batch_size=4, share_prompt=share)
    want = [[dense_option_logprob(model, tokenizer, p, o) for o in OPTIONS] for p in PROMPTS]
    assert len(tokenizer(" quite mixed")["input_ids"]) > 1  # a multi-token option: its tokens are summed
    for row, ref in zip(got, want, strict=True):
        assert row == pytest.approx(ref, abs=1e-5)


def test_shared_demo_prefix_and_per_prompt_options(tiny):
    model, tokenizer = tiny
    head = "Demo: a\nAnswer: yes\n\n"
    prompts = [head + "Review: ok\nSentiment:", head + "Review: bad\nSentiment:", "Review: x\nSentiment:"]
    options = [[" positive", " negative"], [" no"], [" yes", " no", " maybe"]]
    got = option_logprobs(model, tokenizer, prompts, options, batch_size=8, shared_prefixes=[head, head, "Review: "])
    want = [
        [dense_option_logprob(model, tokenizer, p, o) for o in opts] for p, opts in zip(prompts, options, strict=True)
    ]
    assert [len(r) for r in got] == [2, 1, 3]
    for row, ref in zip(got, want, strict=True):
        assert row == pytest.approx(ref, abs=1e-5)
    with pytest.raises(ValueError, match="does not start with"):
        option_logprobs(model, tokenizer, prompts[:1], options[:1], shared_prefixes=["Other"])


def test_tokenize_option_adds_no_eos(tiny):
    _, tokenizer = tiny
    ids, n = tokenize_option(tokenizer, "Sentiment:", " positive")
    assert ids == tokenizer("Sentiment: positive")["input_ids"] and tokenizer.eos_token_id not in ids
    assert ids[:n] == tokenizer("Sentiment:")["input_ids"]
    with pytest.raises(ValueError, match="adds no token"):
        tokenize_option(tokenizer, "Sentiment:", "")
