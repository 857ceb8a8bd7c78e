"""`trl_ext.inference.scoring`: sequence log-likelihoods equal a full-logits computation and SFTTrainer's own loss."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from trl_ext.inference.scoring import sequence_logprobs, tokenize_pair
from trl_ext.testing import tiny_model, tiny_tokenizer

USER = "Tom has 3 apples and buys 4 more. How many apples does he have?"
PAIRS = [
    ([{"role": "user", "content": USER}], "3 + 4 = 7. The answer is 7."),
    ([{"role": "user", "content": "Sum?"}], "7"),
    (
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": USER}],
        [{"role": "assistant", "content": "Tom has 3 + 4 = 7 apples. The answer is 7."}],
    ),
    ("Q: A box holds 12 pens. 5 are taken out. How many are left?\nA:", " 12 - 5 = 7. The answer is 7."),
    ("Q: 6 * 8?\nA:", " 48"),
]


def naive_logprobs(model, input_ids: list[int], completion_mask: list[int]) -> tuple[float, int]:
    """Sum and count of completion-token log-probs from the full (seq, vocab) logits of one unpadded sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([input_ids])).logits[0].double()
    log_probs = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(input_ids[1:])[:, None])[:, 0]
    mask = torch.tensor(completion_mask[1:], dtype=torch.bool)
    return float(log_probs[mask].sum()), int(mask.sum())


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_tokenize_pair_conversational_completion_is_the_assistant_turn(tokenizer):
    ids, mask = tokenize_pair(tokenizer, [{"role": "user", "content": USER}], "3 + 4 = 7.")
    completion = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert completion == "3 + 4 = 7.<|im_end|>\n"
    assert (
        tokenizer.decode(ids) == f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n3 + 4 = 7.<|im_end|>\n"
    )
    assert mask == sorted(mask)  # prompt zeros, then completion ones


def test_tokenize_pair_plain_text_appends_eos_once_and_truncates_keep_start(tokenizer):
    ids, mask = tokenize_pair(tokenizer, "Q: 6 * 8?\nA:", " 48")
    assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == " 48<|im_end|>"
    assert tokenize_pair(tokenizer, "Q: 6 * 8?\nA:", " 48<|im_end|>") == (ids, mask)
    short_ids, short_mask = tokenize_pair(tokenizer, "Q: 6 * 8?\nA:", " 48", max_length=len(ids) - 1)
    assert short_ids == ids[:-1] and short_mask == mask[:-1]


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_matches_full_logits(model, tokenizer, batch_size):
    prompts, completions = zip(*PAIRS, strict=True)
    results = sequence_logprobs(model, tokenizer, prompts, completions, batch_size=batch_size, progress=False)
    for (prompt, completion), result in zip(PAIRS, results, strict=True):
        expected_sum, expected_num = naive_logprobs(model, *tokenize_pair(tokenizer, prompt, completion))
        assert result["num_tokens"] == expected_num
        assert result["sum_logprob"] == pytest.approx(expected_sum, rel=1e-5, abs=1e-5)
        assert result["mean_logprob"] == pytest.approx(expected_sum / expected_num, abs=1e-5)


def test_padding_does_not_change_scores(model, tokenizer):
    prompts, completions = zip(*PAIRS, strict=True)
    one = sequence_logprobs(model, tokenizer, prompts, completions, batch_size=1, progress=False)
    four = sequence_logprobs(model, tokenizer, prompts, completions, batch_size=4, progress=False)
    assert len({len(tokenize_pair(tokenizer, p, c)[0]) for p, c in PAIRS}) > 2  # batches really are padded
    for a, b in zip(one, four, strict=True):
        assert a["num_tokens"] == b["num_tokens"]
        assert a["mean_logprob"] == pytest.approx(b["mean_logprob"], abs=1e-5)


def test_restores_training_mode(model, tokenizer):
    model.train()
    sequence_logprobs(model, tokenizer, ["Q:"], [" 7"], progress=False)
    assert model.training
    model.eval()


def test_peft_model_matches_full_logits(tokenizer):
    peft = pytest.importorskip("peft")
    base = tiny_model(seed=1)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    prompt, completion = PAIRS[0]
    [result] = sequence_logprobs(lora, tokenizer, [prompt], [completion], progress=False)
    expected_sum, expected_num = naive_logprobs(lora, *tokenize_pair(tokenizer, prompt, completion))
    with lora.disable_adapter():  # the LoRA weights are random, so they must change the score
        [plain] = sequence_logprobs(lora, tokenizer, [prompt], [completion], progress=False)
    assert result["num_tokens"] == expected_num
    assert result["sum_logprob"] == pytest.approx(expected_sum, rel=1e-5, abs=1e-5)
    assert abs(plain["sum_logprob"] - result["sum_logprob"]) > 1e-3


@pytest.mark.parametrize("kind", ["PromptTuningConfig", "PrefixTuningConfig"])
def test_prompt_learning_adapters_are_scored_with_their_virtual_tokens(tokenizer, kind):
    # the backbone alone never sees a prompt-learning adapter's virtual tokens or key/value prefixes: the scores must
    # come from the PeftModel's own forward (here against its full logits, the real tokens' rows, by hand)
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = peft.get_peft_model(tiny_model(seed=2), getattr(peft, kind)(task_type="CAUSAL_LM", num_virtual_tokens=3))
    for param in model.parameters():
        if param.requires_grad:
            param.data.normal_()  # a trained-looking adapter, so it changes the scores
    prompts, completions = [p for p, _ in PAIRS[:3]], [c for _, c in PAIRS[:3]]
    results = sequence_logprobs(model, tokenizer, prompts, completions, batch_size=2, progress=False)
    for result, prompt, completion in zip(results, prompts, completions, strict=True):
        input_ids, mask = tokenize_pair(tokenizer, prompt, completion)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([input_ids])).logits[0, -len(input_ids) :].double()
        log_probs = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(input_ids[1:])[:, None])[:, 0]
        expected = float(log_probs[torch.tensor(mask[1:], dtype=torch.bool)].sum())
        assert result["sum_logprob"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    with model.disable_adapter():
        plain = sequence_logprobs(model, tokenizer, prompts[:1], completions[:1], progress=False)
    assert abs(plain[0]["sum_logprob"] - results[0]["sum_logprob"]) > 1e-3


def test_final_logit_softcapping_is_applied(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        final_logit_softcapping=0.5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config).float()
    prompt, completion = PAIRS[3]
    [result] = sequence_logprobs(model, tokenizer, [prompt], [completion], progress=False)
    expected_sum, _ = naive_logprobs(model, *tokenize_pair(tokenizer, prompt, completion))
    # With a cap of 0.5, every logit lies in (-0.5, 0.5): without the cap the score would be far from this.
    assert result["sum_logprob"] == pytest.approx(expected_sum, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize(
    "example, completion_tokens",
    [
        (
            {
                "prompt": [{"role": "user", "content": USER}],
                "completion": [{"role": "assistant", "content": "It is 7."}],
            },
            None,
        ),
        (
            {
                "prompt": "Q: A box holds 12 pens. 5 are taken out. How many are left?\nA:",
                "completion": " 12 - 5 = 7.",
            },
            None,
        ),
        (
            {
                "prompt": "Q: A box holds 12 pens. 5 are taken out. How many are left?\nA:",
                "completion": " 12 - 5 = 7. The answer is 7.",
            },
            3,
        ),  # truncated 3 tokens into the completion
    ],
    ids=["conversational", "plain", "truncated"],
)
def test_score_is_minus_sft_loss(tmp_path, tokenizer, example, completion_tokens):
    """Card test 3: the score of a single example is -(SFTTrainer's token-mean NLL) on it."""
    from trl import SFTConfig, SFTTrainer

    max_length = None
    if completion_tokens is not None:
        max_length = len(tokenizer(example["prompt"])["input_ids"]) + completion_tokens

    model = tiny_model(seed=2)
    args = SFTConfig(
        output_dir=str(tmp_path),
        report_to="none",
        max_length=max_length,
        per_device_train_batch_size=1,
        use_cpu=True,
        save_strategy="no",
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([example]), processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        trainer_loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        model_loss = float(model(input_ids=batch["input_ids"], labels=batch["labels"]).loss)  # full-logits CE
    [result] = sequence_logprobs(
        model, tokenizer, [example["prompt"]], [example["completion"]], max_length=max_length, progress=False
    )
    if max_length is not None:
        assert batch["input_ids"].shape[1] == max_length
        assert result["num_tokens"] == completion_tokens
    assert result["num_tokens"] == int((batch["labels"][0, 1:] != -100).sum())
    assert -result["mean_logprob"] == pytest.approx(trainer_loss, abs=1e-5)
    assert -result["mean_logprob"] == pytest.approx(model_loss, abs=1e-5)


@pytest.mark.parametrize("conversational", [True, False])
def test_prompt_tokens_are_excluded(model, tokenizer, conversational):
    """Card test 4: a longer prompt leaves the number of scored tokens unchanged."""
    completion = "3 + 4 = 7."
    if conversational:
        prompts = [[{"role": "user", "content": "Sum?"}], [{"role": "user", "content": USER * 3}]]
        expected = len(tokenizer.encode(completion + "<|im_end|>\n", add_special_tokens=False))
    else:
        prompts, completion = ["Q:", f"{USER}\n{USER}\nQ:"], " " + completion
        expected = len(tokenizer.encode(completion + "<|im_end|>", add_special_tokens=False))
    short, long = sequence_logprobs(model, tokenizer, prompts, [completion] * 2, progress=False)
    assert short["num_tokens"] == long["num_tokens"] == expected


def test_fully_truncated_completion_scores_minus_inf(model, tokenizer):
    prompt = [{"role": "user", "content": USER}]
    prompt_len = len(
        tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    [result] = sequence_logprobs(model, tokenizer, [prompt], ["7"], max_length=prompt_len, progress=False)
    assert result["num_tokens"] == 0 and result["sum_logprob"] == 0.0 and result["mean_logprob"] == -math.inf


def test_token_scores_at_a_temperature_equal_the_full_softmax():
    """Entropy and log-probs of softmax(z / T) from the chunked head (vocabulary chunks of 64, shared prompt prefix
    or not) against the full (seq, vocab) logits divided by T."""
    from trl_ext.inference.scoring import token_entropies, token_scores

    model = tiny_model()
    sequences = [[5, 9, 17, 3, 40, 41], [5, 9, 17, 8, 2], [7, 8, 9, 10]]
    masks = [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 1, 1, 1]]
    for temperature in (0.6, 1.3):
        for prefixes in (None, [3, 3, 1]):
            got = token_scores(
                model,
                sequences,
                masks,
                temperature=temperature,
                outputs=("log_probs", "entropy"),
                vocab_chunk_size=64,
                prefix_lengths=prefixes,
            )
            entropies = token_entropies(model, sequences, masks, temperature=temperature, prefix_lengths=prefixes)
            for i, (ids, mask) in enumerate(zip(sequences, masks, strict=True)):
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0, :-1].double() / temperature
                log_p = torch.log_softmax(logits, dim=-1)
                scored = torch.tensor(mask[1:]).bool()
                want_h = -(log_p.exp() * log_p).sum(-1)[scored]
                want_lp = log_p[torch.arange(len(ids) - 1), torch.tensor(ids[1:])][scored]
                assert got["entropy"][i] == pytest.approx(want_h.tolist(), abs=1e-5)
                assert entropies[i] == pytest.approx(want_h.tolist(), abs=1e-5)
                assert got["log_probs"][i] == pytest.approx(want_lp.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="outputs"):
        token_scores(model, sequences, masks, outputs=("logits",))
