"""trl_ext.training.token_masks: character spans of the completion -> masks over exactly the tokens SFTTrainer trains on."""

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from trl_ext.testing import tiny_model, tiny_tokenizer
from trl_ext.training.token_masks import (
    CompletionMaskCollator,
    TokenMaskError,
    add_completion_masks,
    completion_token_masks,
    render_prompt_completion,
    spans_to_token_mask,
    token_mask_to_spans,
)


def test_spans_to_token_mask_by_hand():
    offsets = [(0, 2), (2, 3), (3, 3), (3, 7), (7, 8)]
    assert spans_to_token_mask(offsets, [(2, 4)]) == [0, 1, 0, 1, 0]  # overlap, not containment; empty never
    assert spans_to_token_mask(offsets, [(7, 8), (0, 1)]) == [1, 0, 0, 0, 1]
    assert spans_to_token_mask(offsets, []) == [0] * 5
    assert token_mask_to_spans(offsets, [1, 0, 1, 1, 0]) == [(0, 2), (3, 7)]


def _marked_text(tokenizer, ids, mask):
    return [tokenizer.decode([i]) for i, m in zip(ids, mask, strict=True) if m]


def _sft_dataset(rows, **config):
    args = SFTConfig(
        output_dir="/tmp/token-masks-test", report_to="none", bf16=False, remove_unused_columns=False, **config
    )
    trainer = SFTTrainer(
        model=tiny_model(), args=args, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer()
    )
    return trainer.train_dataset


def test_masks_align_with_sft_tokens_conversational():
    # The completion's text also appears in the prompt: only the completion's copy may be marked
    code = "x = 1\ny = x + 1"
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Fix this: {code}"}],
            "completion": [{"role": "assistant", "content": code}],
        }
    ]
    prepared = _sft_dataset(rows)
    plus = code.index("+")
    masked = add_completion_masks(prepared, tiny_tokenizer(), lambda ex: {"m": [(plus, plus + 1)]}, ["m"])
    row = masked[0]
    assert len(row["m"]) == len(row["input_ids"])
    marked = [i for i, m in enumerate(row["m"]) if m]
    assert marked and all(row["labels"][i] != -100 for i in marked)  # completion tokens only
    assert "+" in "".join(_marked_text(tiny_tokenizer(), row["input_ids"], row["m"]))
    assert marked[0] > max(i for i, lab in enumerate(row["labels"]) if lab == -100)  # after the prompt's copy


def test_masks_align_plain_text_and_keep_end_truncation():
    rows = [{"prompt": "Question: 2+2? Answer:", "completion": " four"}]
    prepared = _sft_dataset(rows, max_length=7, truncation_mode="keep_end")  # ": four<eos>", 7 characters
    masked = add_completion_masks(prepared, tiny_tokenizer(), lambda ex: {"m": [(1, 5)]}, ["m"])
    row = masked[0]
    assert len(row["input_ids"]) == 7 and len(row["m"]) == 7
    assert tiny_tokenizer().decode(row["input_ids"][:1]) == ":"  # the start was cut
    assert "".join(_marked_text(tiny_tokenizer(), row["input_ids"], row["m"])) == "four"


def test_rendering_mismatch_and_bad_spans_are_errors():
    tok = tiny_tokenizer()
    example = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}]}
    rendered = render_prompt_completion(tok, example)
    assert rendered.text[rendered.completion_start :].startswith("yo")
    with pytest.raises(TokenMaskError, match="does not reproduce"):
        completion_token_masks(tok, example, {"m": [(0, 1)]}, input_ids=[1, 2, 3])
    with pytest.raises(TokenMaskError, match="outside the completion"):
        completion_token_masks(tok, example, {"m": [(0, 5)]})


def test_collator_pads_masks_like_labels():
    base = lambda examples: {"input_ids": torch.zeros(len(examples), 5, dtype=torch.long)}  # noqa: E731
    collate = CompletionMaskCollator(base, ["m"])
    batch = collate([{"input_ids": [1, 2, 3], "m": [0, 1, 1]}, {"input_ids": [1, 2, 3, 4, 5], "m": [1, 0, 0, 0, 1]}])
    assert batch["m"].dtype == torch.int8
    assert batch["m"].tolist() == [[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]]
    with pytest.raises(TokenMaskError, match="lacks the token-mask column"):
        collate([{"input_ids": [1]}])
