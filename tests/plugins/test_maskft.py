"""maskft (arXiv:2510.09885): the card's hand-computed cases, the collator's per-epoch masks, the trainer and CLI."""

from __future__ import annotations

import json
import random

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.testing import tiny_tokenizer
from trl_ext_plugins.maskft.collator import EpochToCollator, MaskedReconstructionCollator
from trl_ext_plugins.maskft.config import MaskFTConfig, MaskFTSFTConfig
from trl_ext_plugins.maskft.data import build
from trl_ext_plugins.maskft.evaluation import answer_match
from trl_ext_plugins.maskft.masking import collapse_mask_runs, mask_text, row_rng
from trl_ext_plugins.maskft.transform import mask_ft_transform

DOC = "Aldric Brannock was born in Varnholt and works as a baker."
WORDS = "a b c d e f g h"


def _pattern(text: str) -> list[bool]:
    return [w == "<mask>" for w in text.split(" ")]


# --- card test 1: t = 0 and t = 1 -------------------------------------------------------------------------------------
def test_t_zero_copies_and_t_one_masks_every_word():
    plain = MaskFTConfig(t_min=0.0, t_max=0.0, conversational=False)
    row = mask_ft_transform(Dataset.from_list([{"text": DOC}]), plain)[0]
    assert row["prompt"] == plain.template.format(masked=DOC, mask="<mask>")
    assert DOC in row["prompt"] and "<mask>" not in row["prompt"].split("\n\n", 1)[1]
    assert row["completion"] == DOC and row["maskft_t"] == 0.0 and row["maskft_masked_frac"] == 0.0
    full = MaskFTConfig(t_min=1.0, t_max=1.0, conversational=False)
    row = mask_ft_transform(Dataset.from_list([{"text": DOC}]), full)[0]
    masked = row["prompt"].split("\n\n", 1)[1].strip()
    assert masked.count("<mask>") == 11 == len(DOC.split())  # 11 words, counted by hand
    assert masked == " ".join(["<mask>"] * 11)
    assert row["completion"] == DOC  # the mask string never enters the completion


# --- card test 2: fixed seed reproduces, empirical fraction ------------------------------------------------------------
def test_fixed_seed_reproduces_the_pattern():
    cfg = MaskFTConfig()
    a = mask_text(WORDS, 0.5, random.Random(123), cfg).text
    b = mask_text(WORDS, 0.5, random.Random(123), cfg).text
    assert a == b
    # An independent implementation: one uniform draw per word, masked when below t.
    rng = random.Random(123)
    expected = " ".join("<mask>" if rng.random() < 0.5 else w for w in WORDS.split())
    assert a == expected
    assert row_rng(0, 1, 5).random() == row_rng(0, 1, 5).random() != row_rng(0, 2, 5).random()


def test_empirical_mask_fraction():
    cfg, rng = MaskFTConfig(), random.Random(0)
    masked = sum(mask_text(WORDS, 0.3, rng, cfg).masked for _ in range(10_000))
    assert abs(masked / 80_000 - 0.30) <= 0.01


def test_t_is_uniform_within_bounds():
    cfg = MaskFTConfig(t_min=0.2, t_max=0.4, conversational=False)
    ts = mask_ft_transform(Dataset.from_list([{"text": WORDS}] * 400), cfg)["maskft_t"]
    assert min(ts) >= 0.2 and max(ts) <= 0.4 and abs(sum(ts) / len(ts) - 0.3) < 0.01


# --- card test 3: labels cover only the completion --------------------------------------------------------------------
def test_labels_cover_only_the_completion():
    tok = tiny_tokenizer()
    cfg = MaskFTConfig(conversational=False, t_min=0.5, t_max=0.5)
    collator = MaskedReconstructionCollator(tok, cfg)
    batch = collator([{"text": DOC, "maskft_row": 0}, {"text": "x y", "maskft_row": 1}])
    n_doc = len(tok(DOC, add_special_tokens=False)["input_ids"])
    n_xy = len(tok("x y", add_special_tokens=False)["input_ids"])
    labelled = (batch["labels"] != -100).sum(dim=1).tolist()
    assert labelled == [n_doc + 1, n_xy + 1]  # + EOS
    # The labelled tokens are the original text then EOS, at the end of the sequence.
    ids = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert tok.decode(ids[:-1]) == DOC and ids[-1] == tok.eos_token_id


# --- card test 4: re-sampling per epoch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("resample", [True, False])
def test_masks_resampled_per_epoch(resample):
    tok = tiny_tokenizer()
    cfg = MaskFTConfig(conversational=False, resample_each_epoch=resample, t_min=0.5, t_max=0.5)
    collator = MaskedReconstructionCollator(tok, cfg)
    rows = [{"text": DOC, "maskft_row": i} for i in range(4)]
    first = collator(rows)["input_ids"]
    again = collator(rows)["input_ids"]
    assert first.equal(again)  # same epoch: the same masks (resume-safe)
    callback = EpochToCollator(collator)

    class State:
        epoch = 1.0

    callback.on_epoch_begin(None, State(), None)
    assert collator.epoch == 1
    second = collator(rows)["input_ids"]
    assert second.shape != first.shape or not second.equal(first) if resample else second.equal(first)


# --- card test 5: SFT mode with p_plain = 1 ---------------------------------------------------------------------------
def test_sft_mode_p_plain_one_is_plain_sft():
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "completion": [{"role": "assistant", "content": f"a {i} b"}]}
            for i in range(20)]  # fmt: skip
    out = mask_ft_transform(Dataset.from_list(rows), MaskFTConfig(mode="sft", p_plain=1.0))
    assert out["prompt"] == [r["prompt"] for r in rows] and out["completion"] == [r["completion"] for r in rows]
    hinted = mask_ft_transform(Dataset.from_list(rows), MaskFTConfig(mode="sft", p_plain=0.0, t_min=1, t_max=1))[0]
    assert (
        hinted["prompt"][0]["content"]
        == "q0\n\nHint: the answer with some words hidden as <mask>:\n<mask> <mask> <mask>"
    )
    assert hinted["completion"] == rows[0]["completion"]


# --- card test 6: collapse_runs ---------------------------------------------------------------------------------------
def test_collapse_runs():
    assert collapse_mask_runs("x <mask> <mask> y") == "x <mask> y"
    assert collapse_mask_runs("<mask> <mask>\n<mask> z <mask>") == "<mask> z <mask>"
    cfg = MaskFTConfig(collapse_runs=True)
    assert mask_text("x a b y", 1.0, random.Random(0), cfg).text == "<mask>"
    # Word masks 0,1,1,0 ("a" and "b" masked) by an rng returning those draws:
    draws = iter([0.9, 0.1, 0.1, 0.9])

    class Fixed(random.Random):
        def random(self):
            return next(draws)

    assert mask_text("x a b y", 0.5, Fixed(), cfg).text == "x <mask> y"


def test_token_unit_never_splits_characters():
    tok = tiny_tokenizer()
    text = "Zoë naïve café 東京"
    cfg = MaskFTConfig(unit="token")
    for seed in range(20):
        masked = mask_text(text, 0.5, random.Random(seed), cfg, tok).text
        assert "\ufffd" not in masked
        kept = masked.replace("<mask>", "")
        assert all(ch in text for ch in kept)
    assert mask_text(text, 0.0, random.Random(0), cfg, tok).text == text
    full = mask_text(text, 1.0, random.Random(0), cfg, tok)
    assert set(full.text.replace("<mask>", "")) <= {" "}


def test_config_validation():
    with pytest.raises(ValueError, match="t_min"):
        MaskFTConfig(t_min=0.6, t_max=0.5)
    with pytest.raises(ValueError, match="unit"):
        MaskFTConfig(unit="char")
    with pytest.raises(ValueError, match="masked"):
        MaskFTConfig(template="no placeholder")


def test_answer_match_and_builtin_data():
    assert answer_match("Varnholt.", "Varnholt") and answer_match("He was born in Varnholt, a town", "Varnholt")
    assert not answer_match("Varnholtia", "Varnholt") and not answer_match("", "Varnholt")
    assert not answer_match("Somewhere\nVarnholt", "Varnholt")  # only the first line counts
    docs, qa = build()["train"], build("qa")["test"]
    assert len(docs) == 200 and len(qa) == 400
    assert len({(r["answer"]) for r in qa if r["direction"] == "backward"}) == 200
    cities_jobs = {r["question"] for r in qa if r["direction"] == "backward"}
    assert len(cities_jobs) == 200  # each backward question has one answer
    assert build()["train"]["text"] == docs["text"]  # deterministic


# --- the trainer: the masks change between epochs inside a real run ------------------------------------------------------
def test_trainer_resamples_between_epochs(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_ext_plugins.maskft.trainer import MaskFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    seen: dict[tuple[int, int], list[int]] = {}
    args = MaskFTSFTConfig(output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=2,
                           report_to="none", save_strategy="no", logging_steps=1, maskft_conversational=False, bf16=False,
                           maskft_t_min=0.5, maskft_t_max=0.5)  # fmt: skip
    data = Dataset.from_list([{"text": DOC}, {"text": "x y z w v u"}])
    trainer = MaskFTTrainer(model, args=args, train_dataset=data, processing_class=tok)
    collator = trainer.maskft_collator
    inner = collator.example

    def record(row):
        out = inner(row)
        seen[(collator.epoch, row["maskft_row"])] = out["input_ids"]
        return out

    collator.example = record
    trainer.train()
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert seen[(0, 0)] != seen[(1, 0)] and seen[(0, 1)] != seen[(1, 1)]  # each row: a new mask in epoch 1
    logged = [e for e in trainer.state.log_history if "maskft/mean_t" in e]
    assert logged and all(abs(e["maskft/mean_t"] - 0.5) < 1e-9 for e in logged)


# --- CLI ------------------------------------------------------------------------------------------------------------
def test_cli_transform_and_train(tiny_model_dir, tmp_path):
    out = tmp_path / "masked.jsonl"
    assert main(["transform", "maskft", "--model_name_or_path", tiny_model_dir, "--dataset_name",
                 "builtin:maskft_bios", "--split", "train", "--n_copies", "2", "--output", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 400 and rows[0]["completion"][0]["content"] == rows[1]["completion"][0]["content"]
    assert rows[0]["prompt"] != rows[1]["prompt"] or rows[0]["maskft_t"] == rows[1]["maskft_t"]
    common = ["--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:maskft_bios", "--max_steps", "2",
              "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]  # fmt: skip
    assert main(["train", "maskft", *common, "--output_dir", str(tmp_path / "m"), "--maskft_t_max", "0.5"]) == 0
    assert (tmp_path / "m" / "model.safetensors").exists()
    assert (
        main(["train", "sft", *common, "--output_dir", str(tmp_path / "s"), "--transforms", "maskft:n_copies=1"]) == 0
    )


def test_cli_sft_mode_on_instruction_data(tiny_model_dir, tmp_path):
    code = main(["train", "maskft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith",
                 "--maskft_mode", "sft", "--maskft_p_plain", "0.5", "--max_steps", "1", "--max_length", "512",
                 "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no",
                 "--output_dir", str(tmp_path / "sft")])  # fmt: skip
    assert code == 0


def test_method_refuses_missing_column(tiny_model_dir, tmp_path, no_model_load):
    code = main(["train", "maskft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:arith",
                 "--max_steps", "1", "--output_dir", str(tmp_path / "x")])  # fmt: skip
    assert code != 0  # knowledge mode needs `text`; refused before the model loads


def test_qa_callback_logs_both_directions(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerState

    from trl_ext import get

    callback = get("callback", "maskft_qa_eval").build(n=4, max_new_tokens=4)
    assert callback.qa["direction"] == ["forward", "backward", "forward", "backward"]
    state = TrainerState()
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    callback.on_train_end(None, state, None, model=model, processing_class=tok)
    assert set(state.log_history[-1]) == {"eval/qa_acc_forward", "eval/qa_acc_backward", "step"}
    # the per-question verdicts behind each figure are kept (compare's interval over the questions)
    from trl_ext.inference.generation import generate
    from trl_ext_plugins.maskft.evaluation import answer_match, qa_prompts

    for direction in ("forward", "backward"):
        part = qa_prompts(callback.qa).filter(lambda r, d=direction: r["direction"] == d)
        answers = generate(model, tok, part["prompt"], 4, 16)
        expected = [float(answer_match(a, g)) for a, g in zip(answers, part["answer"], strict=True)]
        assert callback.item_values[f"eval/qa_acc_{direction}"] == expected
        assert state.log_history[-1][f"eval/qa_acc_{direction}"] == sum(expected) / 2
