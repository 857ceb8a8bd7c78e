"""lta-thinker: the card's hand cases for the KL and InfoNCE terms, the injection into the frozen base, the limiting
case "no thoughts, no auxiliary terms = plain SFT", eval without steps, save -> load -> forward, the trainable-count
formula, the data layout, generation, the CLI, resume, and (slow) 2 processes under DDP and ZeRO-3 = 1 process."""

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from trl_ext.testing import (
    assert_same_step,
    first_batch,
    interrupted_and_resumed,
    run_layout,
    tiny_model,
    tiny_tokenizer,
)
from trl_ext_plugins.lta_thinker.config import LTAThinkerConfig
from trl_ext_plugins.lta_thinker.data import (
    LABEL_OFFSET,
    boxed_answer,
    build,
    generation_batch,
    gsm8k_row,
    lta_format,
)
from trl_ext_plugins.lta_thinker.generation import generate_answers
from trl_ext_plugins.lta_thinker.loss import reasoning_focus_infonce, semantic_alignment_kl, thought_variance
from trl_ext_plugins.lta_thinker.model import LTAThinkerModel, generator_parameter_count
from trl_ext_plugins.lta_thinker.trainer import LTAThinkerTrainer

K = 4
ROWS = [
    {"question": "Mia has 3 pens and buys 4 more. How many pens?", "steps": ["3 + 4 = 7."], "answer": "7"},
    {
        "question": "A shop has 2 boxes of 5 cards and sells 3. How many are left?",
        "steps": ["2 * 5 = 10.", "10 - 3 = 7."],
        "answer": "7",
    },
    {"question": "Leo has 12 coins and gives 5 away. How many coins?", "steps": ["12 - 5 = 7."], "answer": "7"},
    {
        "question": "Ava buys 3 packs of 4 beads and had 2. How many beads now?",
        "steps": ["3 * 4 = 12.", "12 + 2 = 14."],
        "answer": "14",
    },
]


def make_config(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        num_thought_tokens=K,
        per_device_train_batch_size=4,
        max_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        seed=0,
    )
    kwargs.update(overrides)
    return LTAThinkerConfig(**kwargs)


def make_trainer(tmp_path, rows=ROWS, **overrides):
    torch.set_num_threads(1)
    return LTAThinkerTrainer(
        tiny_model(),
        make_config(tmp_path, **overrides),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )


# --- card hand cases ---------------------------------------------------------------------------------------------------
def test_kl_hand_case():
    """Card 1: H[q] = [0, 0] -> p = [.5, .5]; thought [ln 3, 0] -> q = [.75, .25]; KL = .5 ln(.5/.75) + .5 ln(.5/.25)."""
    states = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    kl = semantic_alignment_kl(states, torch.tensor([0]), torch.tensor([1]), 1)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl.item() == pytest.approx(expected, abs=1e-6)
    assert kl.item() == pytest.approx(0.14384, abs=1e-5)


def test_kl_is_mean_over_thoughts_and_samples():
    """Two thoughts (one equal to H[q]: KL 0) in sample 1, the hand case in sample 2: mean of (0 + .14384)/2 and .14384."""
    ln3 = math.log(3.0)
    states = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [ln3, 0.0]], [[0.0, 0.0], [ln3, 0.0], [ln3, 0.0]]])
    kl = semantic_alignment_kl(states, torch.tensor([0, 0]), torch.tensor([1, 1]), 2)
    one = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl.item() == pytest.approx(((0 + one) / 2 + one) / 2, abs=1e-6)


def test_infonce_hand_case():
    """Card 2: z1 = [1, 0], z2 = [0, 1], u = [.9, .1] -> positive step 1; H[q] = [1, 0] -> logits [10, 0];
    L_con = -log(e^10 / (e^10 + 1)) = 4.54e-5."""
    states = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    loss, correct = reasoning_focus_infonce(
        states, torch.tensor([0]), torch.tensor([[1, 2]]), torch.tensor([[0.9, 0.1]]), 0.1
    )
    # float32: the log-sum-exp near 10 carries ~1e-6 absolute error, so the 4.5e-5 loss matches to ~1e-7
    assert loss.item() == pytest.approx(-math.log(math.exp(10) / (math.exp(10) + 1)), abs=1e-7)
    assert loss.item() == pytest.approx(4.54e-5, rel=1e-2)
    assert correct.tolist() == [True]


def test_padding_steps_never_positive_nor_in_softmax():
    """Card 5: a padded step (index 0 = the question row, cos 1 with both u and H[q]) would win both the positive and
    the softmax; masked, the positive is step 1 (cos .6 with u) and the loss is -log softmax([6, 0])[0]."""
    states = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]], requires_grad=True)
    loss, correct = reasoning_focus_infonce(
        states, torch.tensor([0]), torch.tensor([[1, 2, 0]]), torch.tensor([[1.0, 0.0]]), 0.1
    )
    assert loss.item() == pytest.approx(-math.log(math.exp(6) / (math.exp(6) + 1)), abs=1e-6)  # float32 cosines
    assert correct.tolist() == [True]
    # a sample whose steps are all padding takes no part
    loss2, _ = reasoning_focus_infonce(
        states.expand(2, -1, -1), torch.tensor([0, 0]), torch.tensor([[1, 2, 0], [0, 0, 0]]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0]]), 0.1,
    )  # fmt: skip
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)


def test_thought_variance_by_hand():
    """Thoughts [1, 0] and [3, 2]: per-dim population variances 1 and 1 -> 1."""
    states = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [3.0, 2.0]]])
    assert thought_variance(states, torch.tensor([1]), 2).item() == pytest.approx(1.0)


# --- the model ---------------------------------------------------------------------------------------------------------
def test_trainable_count_matches_the_formula():
    """5d^2 + 2df + f + 8d: tiny (d=32, f=64): 5120 + 4096 + 64 + 256 = 9536; SmolLM2-135M (d=576, f=1536):
    1,658,880 + 1,769,472 + 1,536 + 4,608 = 3,434,496."""
    model = LTAThinkerModel.wrap(tiny_model(), num_thought_tokens=K)
    assert model.num_trainable_parameters() == 9536 == generator_parameter_count(32, 64)
    assert generator_parameter_count(576, 1536) == 3_434_496
    assert all(not p.requires_grad for p in model.base.parameters())


def test_injection_frozen_base_and_gradients(tmp_path):
    """Card 3: the base receives inputs_embeds whose rows b0..b1 are H rows a0..a1 and whose other rows are E(x)
    exactly; after backward the base has no gradient, T and P all have one."""
    trainer = make_trainer(tmp_path)
    batch = first_batch(trainer)
    model = trainer.model
    seen = {}
    handle = model.base.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"].detach().clone()), with_kwargs=True
    )
    model.train()
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=(batch["labels"][:, 1:] != -100).sum())
    handle.remove()
    loss.backward()
    with torch.no_grad():
        states = model.thought_states(batch["assistant_input_ids"], batch["assistant_attention_mask"])
        plain = model.base.get_input_embeddings()(batch["input_ids"].clamp(max=model.spec.vocab_rows - 1))
    for b, (b0, b1, a0, a1) in enumerate(batch["thought_index"].tolist()):
        assert b1 - b0 == a1 - a0 == K
        assert torch.allclose(seen["embeds"][b, b0:b1], states[b, a0:a1], atol=1e-6)
        others = [t for t in range(seen["embeds"].size(1)) if not b0 <= t < b1]
        assert torch.equal(seen["embeds"][b, others], plain[b, others])
    assert all(p.grad is None for p in model.base.parameters())
    grads = {n: p.grad for n, p in model.generator.named_parameters()}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


@pytest.mark.parametrize("normalization", ["official", "trl"])
def test_no_thoughts_no_aux_equals_plain_sft(tmp_path, normalization):
    """Card 4: K = 0 and w_kl = w_con = 0 (w_sft = 1): the loss is SFTTrainer's on the same tokens."""
    from trl import SFTConfig, SFTTrainer

    lta = make_trainer(
        tmp_path, num_thought_tokens=0, kl_weight=0.0, con_weight=0.0, sft_weight=1.0, sft_normalization=normalization
    )
    batch = first_batch(lta)
    n = (batch["labels"][:, 1:] != -100).sum()
    lta.model.train()
    loss = lta.compute_loss(lta.model, dict(batch), num_items_in_batch=n)
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in lta.train_dataset]
    sft = SFTTrainer(
        tiny_model(),
        SFTConfig(output_dir=str(tmp_path / "sft"), use_cpu=True, bf16=False, report_to="none"),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer(),
    )
    sft.model.train()
    plain = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    expected = sft.compute_loss(sft.model, plain, num_items_in_batch=n)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_no_aux_loss_is_the_base_loss_on_the_thought_filled_embeddings(tmp_path):
    """w_kl = w_con = 0 with K = 4 thoughts: w_sft times the base's own (full-logits) loss on the same injected
    embeddings, a second computation independent of the fused head."""
    trainer = make_trainer(tmp_path, kl_weight=0.0, con_weight=0.0)
    batch = first_batch(trainer)
    model = trainer.model
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        embeds = model.inject(
            model.embed(batch["input_ids"]),
            model.thought_states(batch["assistant_input_ids"], batch["assistant_attention_mask"]),
            batch["thought_index"],
        )
        logits = model.base(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), batch["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    assert loss.item() == pytest.approx(0.33 * expected.item(), rel=1e-5)


def test_eval_needs_no_steps_and_has_no_aux_terms(tmp_path):
    """Card 6: an eval set without `steps` is formatted in the inference layout; eval logs L_kl = L_con = 0."""
    trainer = LTAThinkerTrainer(
        tiny_model(),
        make_config(tmp_path, per_device_eval_batch_size=2),
        train_dataset=Dataset.from_list(ROWS),
        eval_dataset=Dataset.from_list([{"question": r["question"], "answer": r["answer"]} for r in ROWS]),
        processing_class=tiny_tokenizer(),
    )
    assert all(len(r["q_and_step_index"]) == 1 for r in trainer.eval_dataset)
    metrics = trainer.evaluate()
    assert metrics["eval_lta/kl_loss"] == 0.0 and metrics["eval_lta/con_loss"] == 0.0
    assert metrics["eval_lta/sft_loss"] > 0 and math.isfinite(metrics["eval_loss"])
    assert metrics["eval_loss"] == pytest.approx(0.33 * metrics["eval_lta/sft_loss"], rel=1e-5)


def test_train_logs_the_card_metrics(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train()
    log = next(e for e in trainer.state.log_history if "loss" in e)
    for key in ("lta/sft_loss", "lta/kl_loss", "lta/con_loss", "lta/thought_var", "lta/con_acc"):
        assert key in log and math.isfinite(log[key])
    assert log["lta/kl_loss"] > 0 and log["lta/con_loss"] > 0
    expected = 0.33 * (log["lta/sft_loss"] + log["lta/kl_loss"] + log["lta/con_loss"])
    assert log["loss"] == pytest.approx(expected, rel=1e-3)


def test_save_load_forward_identical(tmp_path):
    """Train a step (the generator leaves its init), save, load onto a fresh copy of the base: same outputs."""
    trainer = make_trainer(tmp_path, learning_rate=1e-2)
    trainer.train()
    trainer.save_model(str(tmp_path / "saved"))
    files = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"thought_generator.safetensors", "lta_thinker.json"} <= files
    assert not any(name.startswith("model") for name in files)  # the frozen base is not saved
    batch = first_batch(trainer)
    batch.pop("q_and_step_index")
    model = trainer.model.eval()
    loaded = LTAThinkerModel.from_pretrained(tmp_path / "saved", base=tiny_model()).eval()
    with torch.no_grad():
        a = model(**batch, fused_lm_head=True)
        b = loaded(**batch, fused_lm_head=True)
        la = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        lb = loaded(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.equal(a.thought_states, b.thought_states)
    assert torch.equal(a.log_probs, b.log_probs) and torch.equal(la, lb)
    initial = LTAThinkerModel.wrap(tiny_model(), num_thought_tokens=K)
    assert not torch.equal(initial.generator.proj.weight, loaded.generator.proj.weight)  # the step was saved
    assert torch.equal(initial.thought_prior, loaded.thought_prior)  # fixed priors, from the seed


def test_base_lora_is_the_official_one_trained_and_saved(tmp_path):
    """`train_base_lora` (official optional flag): LoRA r=16 on q_proj and v_proj of the base, trained with the
    generator. Tiny model (d=32, 4 heads of 8, 2 kv heads: q 32->32, v 32->16, 2 layers): 16 (32+32) + 16 (32+16) =
    1792 per layer, 3584 in all, beside the generator's 9536. One step moves the LoRA's B (initialised to zero) and
    leaves every base weight as it was; the saved folder loads back to the same outputs."""
    trainer = make_trainer(tmp_path, learning_rate=1e-2, train_base_lora=True)
    model = trainer.model
    assert model.num_trainable_parameters() == 9536 + 3584
    trainable = {n for n, p in model.base.named_parameters() if p.requires_grad}
    assert len(trainable) == 2 * 2 * 2 and all(".q_proj.lora_" in n or ".v_proj.lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in model.base.named_parameters() if not p.requires_grad}
    trainer.train()
    assert all(torch.equal(p, frozen[n]) for n, p in model.base.named_parameters() if n in frozen)
    b = [p for n, p in model.base.named_parameters() if ".lora_B." in n]
    assert b and all(p.abs().sum() > 0 for p in b)

    trainer.save_model(str(tmp_path / "saved"))
    assert json.loads((tmp_path / "saved" / "lta_thinker.json").read_text())["base_lora"]["r"] == 16
    batch = first_batch(trainer)
    batch.pop("q_and_step_index")
    loaded = LTAThinkerModel.from_pretrained(tmp_path / "saved", base=tiny_model()).eval()
    with torch.no_grad():
        assert torch.equal(
            model.eval()(**batch, fused_lm_head=True).log_probs, loaded(**batch, fused_lm_head=True).log_probs
        )
    without = LTAThinkerModel.wrap(tiny_model(), num_thought_tokens=K).eval()
    without.generator.load_state_dict(loaded.generator.state_dict())
    with torch.no_grad():  # the LoRA is part of the saved result: the generator alone gives other outputs
        assert not torch.equal(
            without(**batch, fused_lm_head=True).log_probs, loaded(**batch, fused_lm_head=True).log_probs
        )


def test_base_lora_survives_resume(tmp_path):
    def make(folder):
        config = make_config(
            tmp_path, output_dir=str(folder), max_steps=2, per_device_train_batch_size=2, save_strategy="steps",
            save_steps=1, learning_rate=1e-2, shuffle_dataset=False, train_base_lora=True,
        )  # fmt: skip
        return LTAThinkerTrainer(
            tiny_model(), config, train_dataset=Dataset.from_list(ROWS), processing_class=tiny_tokenizer()
        )

    full, _, resumed = interrupted_and_resumed(make, tmp_path, 1)
    a, b = full.model.trainable_state(), resumed.model.trainable_state()
    assert a.keys() == b.keys() and any(k.startswith("base.") for k in a)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-7), name


# --- data ----------------------------------------------------------------------------------------------------------------
def test_layout_indices_in_training_and_inference():
    """The placeholder spans and turn ends are recomputed per layout (card pitfall): thought ids sit at [b0, b1) of x
    and [a0, a1) of a in both; labels start at b1 + 2; q and s_i end the question and step turns."""
    tok = tiny_tokenizer()
    ids = list(range(1000, 1000 + K))
    train = lta_format(ROWS[1], tok, ids, with_steps=True)
    infer = lta_format(ROWS[1], tok, ids, with_steps=False, with_answer=False)
    for row in (train, infer):
        b0, b1, a0, a1 = row["thought_index"]
        assert row["input_ids"][b0:b1] == ids and row["assistant_input_ids"][a0:a1] == ids
        assert ids[0] not in row["input_ids"][:b0] + row["input_ids"][b1:]
    assert train["labels"][: train["thought_index"][1] + LABEL_OFFSET] == [-100] * (train["thought_index"][1] + 2)
    assert train["labels"][train["thought_index"][1] + 2 :] == train["input_ids"][train["thought_index"][1] + 2 :]
    assert "labels" not in infer and len(infer["q_and_step_index"]) == 1 and len(train["q_and_step_index"]) == 3
    a = train["assistant_input_ids"]
    q, s1, s2 = train["q_and_step_index"]
    assert tok.decode(a[: q + 1]).endswith(ROWS[1]["question"] + "<|im_end|>\n")
    assert tok.decode(a[: s1 + 1]).endswith("## Step 1: 2 * 5 = 10.<|im_end|>\n")
    assert tok.decode(a[: s2 + 1]).endswith("## Step 2: 10 - 3 = 7.<|im_end|>\n")
    assert tok.decode(train["input_ids"]).rstrip().endswith("Therefore, the final answer is: $\\boxed{7}$.<|im_end|>")
    assert tok.decode(infer["input_ids"]).endswith("<|im_start|>assistant\n")


def test_collator_pads_the_extra_columns(tmp_path):
    trainer = make_trainer(tmp_path)
    batch = first_batch(trainer)
    steps = batch["q_and_step_index"]
    assert steps.shape == (4, 3) and sorted((steps > 0).sum(1).tolist()) == [2, 2, 3, 3]  # q + 1 or 2 steps
    assert (steps[:, 0] > 0).all() and ((steps[:, 2] == 0) <= (steps[:, 1] > 0)).all()
    assert batch["thought_index"].shape == (4, 4)
    lengths = sorted(len(r) for r in trainer.train_dataset["assistant_input_ids"])  # the batch is shuffled
    assert sorted(batch["assistant_attention_mask"].sum(1).tolist()) == lengths
    answers = sorted(len(r) for r in trainer.train_dataset["ans_ids"])
    assert sorted(batch["ans_attention_mask"].sum(1).tolist()) == answers


def test_gsm8k_rows_and_boxed_answers():
    row = gsm8k_row({"question": "Q?", "answer": "She has 2*3=<<2*3=6>>6 eggs.\nThen 6+1=<<6+1=7>>7.\n#### 7"})
    assert row == {"question": "Q?", "steps": ["She has 2*3=6 eggs.", "Then 6+1=7."], "answer": "7"}
    assert boxed_answer("so $\\boxed{12}$ and then $\\boxed{ 7 }$.") == "7" and boxed_answer("7") is None


def test_builtin_dataset_has_both_layouts():
    data = build(n_train=6, n_test=2)
    row = data["train"][0]
    assert set(row) == {"question", "steps", "answer", "prompt", "completion"} and len(data["test"]) == 2
    assert row["completion"][0]["content"].endswith(f"$\\boxed{{{row['answer']}}}$.")


# --- generation, CLI, resume -----------------------------------------------------------------------------------------
def test_batched_generation_equals_one_by_one():
    """Left padding shifts the thought span; greedy answers of a batch equal those of each prompt alone."""
    torch.manual_seed(0)
    model = LTAThinkerModel.wrap(tiny_model(), num_thought_tokens=K)
    tok = tiny_tokenizer()
    questions = [ROWS[0]["question"], ROWS[1]["question"]]
    together = generate_answers(model, tok, questions, max_new_tokens=6, batch_size=2)
    alone = [generate_answers(model, tok, [q], max_new_tokens=6)[0] for q in questions]
    assert together == alone
    rows = [lta_format({"question": q, "answer": ""}, tok, model.thought_token_ids, False, False) for q in questions]
    batch = generation_batch(rows, tok.pad_token_id)
    short = min(range(2), key=lambda i: len(rows[i]["input_ids"]))
    pad = batch["input_ids"].size(1) - len(rows[short]["input_ids"])
    assert batch["thought_index"][short, 0] == rows[short]["thought_index"][0] + pad


def test_cli_train_then_load(tiny_model_dir, tmp_path):
    from trl_ext.cli import main

    out = tmp_path / "run"
    code = main(
        ["train", "lta-thinker", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:lta_steps",
         "--num_thought_tokens", "2", "--max_steps", "1", "--per_device_train_batch_size", "2",
         "--output_dir", str(out), "--report_to", "none", "--save_strategy", "no"]
    )  # fmt: skip
    assert code in (0, None)
    spec = json.loads((out / "lta_thinker.json").read_text())
    assert spec["num_thought_tokens"] == 2 and Path(spec["base_model_name_or_path"]).name == "model"
    model = LTAThinkerModel.from_pretrained(out)
    assert model.num_thought_tokens == 2
    # `trl-ext generate` reads the folder through the method's loader and fills the thoughts
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": [{"role": "user", "content": ROWS[0]["question"]}]}) + "\n")
    written = tmp_path / "out.jsonl"
    argv = ["generate", "--model_name_or_path", str(out), "--dataset_name", str(rows), "--max_new_tokens", "4"]
    assert main([*argv, "--output", str(written)]) == 0
    completion = json.loads(written.read_text().splitlines()[0])["completion"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert completion == generate_answers(model, tokenizer, [ROWS[0]["question"]], max_new_tokens=4)[0]


def test_resume_equals_unbroken(tmp_path):
    def make(folder):
        return LTAThinkerTrainer(
            tiny_model(),
            make_config(
                tmp_path, output_dir=str(folder), max_steps=2, per_device_train_batch_size=2, save_strategy="steps",
                save_steps=1, learning_rate=1e-2, shuffle_dataset=False,
            ),
            train_dataset=Dataset.from_list(ROWS),
            processing_class=tiny_tokenizer(),
        )  # fmt: skip

    full, _, resumed = interrupted_and_resumed(make, tmp_path, 1)
    for (name, a), b in zip(
        full.model.generator.named_parameters(), resumed.model.generator.parameters(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-7), name


def test_config_refusals():
    with pytest.raises(ValueError, match="thought_token_ids"):
        LTAThinkerConfig(output_dir="/tmp/x", use_cpu=True, bf16=False, num_thought_tokens=2, thought_token_ids=[5, 5])
    with pytest.raises(ValueError, match="packing"):
        LTAThinkerConfig(output_dir="/tmp/x", use_cpu=True, bf16=False, packing=True)
    with pytest.raises(ValueError, match="temperature"):
        LTAThinkerConfig(output_dir="/tmp/x", use_cpu=True, bf16=False, temperature=0.0)
    with pytest.raises(ValueError, match="use_peft"):
        from peft import LoraConfig

        LTAThinkerTrainer(tiny_model(), LTAThinkerConfig(output_dir="/tmp/x", use_cpu=True, bf16=False),
                          peft_config=LoraConfig())  # fmt: skip


SCRIPT = Path(__file__).parents[1] / "distributed" / "lta_thinker_step.py"


@pytest.mark.slow
def test_two_processes_ddp_and_zero3_equal_one(tmp_path, monkeypatch):
    reference = run_layout(SCRIPT, tmp_path / "accumulated.json", 2, 2, "none")
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 2, 1, "none", nproc=2)
    assert_same_step(reference, ddp, name="lta-thinker on 2 processes (ddp)")
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(SCRIPT, tmp_path / "zero3.json", 2, 1, "zero3", nproc=2)
    assert_same_step(reference, zero3, name="lta-thinker on 2 processes (zero3)")


@pytest.mark.slow
def test_base_lora_on_two_processes_ddp_and_zero3_equals_one(tmp_path, monkeypatch):
    """`--train_base_lora`: the generator and the base's LoRA take the same step on 2 processes (DDP, ZeRO-3) as on one
    accumulating process; the LoRA's B matrices are in the compared update and moved."""
    reference = run_layout(SCRIPT, tmp_path / "accumulated.json", 2, 2, "none", "base_lora")
    lora = [name for name in reference["update"] if "lora_B" in name]
    assert len(lora) == 4  # q_proj and v_proj of the tiny model's 2 layers
    assert all(max(abs(v) for v in reference["update"][name]) > 0 for name in lora)
    ddp = run_layout(SCRIPT, tmp_path / "ddp.json", 2, 1, "none", "base_lora", nproc=2)
    assert_same_step(reference, ddp, name="lta-thinker with base LoRA on 2 processes (ddp)")
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    zero3 = run_layout(SCRIPT, tmp_path / "zero3.json", 2, 1, "zero3", "base_lora", nproc=2)
    assert_same_step(reference, zero3, name="lta-thinker with base LoRA on 2 processes (zero3)")


def test_the_core_generates_through_the_wrapper_protocol():
    """`trl_ext.inference.generate` on an LTAThinkerModel fills the thoughts: the same texts as the plugin's own
    `generate_answers` on each prompt's question (conversational prompts: the last user turn)."""
    from trl_ext.inference.generation import generate

    torch.manual_seed(0)
    model = LTAThinkerModel.wrap(tiny_model(), num_thought_tokens=K)
    tok = tiny_tokenizer()
    questions = [ROWS[0]["question"], ROWS[1]["question"]]
    prompts = [[{"role": "user", "content": q}] for q in questions]
    assert generate(model, tok, prompts, max_new_tokens=6) == generate_answers(model, tok, questions, 6)
    assert generate(model, tok, questions, max_new_tokens=6) == generate_answers(model, tok, questions, 6)


def test_compare_loads_and_measures_an_lta_arm(tiny_model_dir, tmp_path):
    """An lta-thinker arm beside plain SFT in `trl-ext compare`: its folder (generator only) is loaded through the
    method's `load_output` and measured with the thoughts filled; the final figure equals a measurement by hand."""
    from trl_ext.cli import main
    from trl_ext.compare.comparison import Comparison
    from trl_ext.compare.evaluation import eval_rows
    from trl_ext.compare.metrics import measure, parse_metric
    from trl_ext.models import load_tokenizer, load_trained

    out = tmp_path / "cmp"
    code = main(
        ["compare", "sft", "lta-thinker:num_thought_tokens=2", "--model_name_or_path", tiny_model_dir,
         "--dataset_name", "builtin:lta_steps", "--max_steps", "1", "--per_device_train_batch_size", "2",
         "--report_to", "none", "--save_strategy", "no", "--eval", "numeric_match", "--eval_rows", "3",
         "--eval_max_new_tokens", "4", "--output_dir", str(out)]
    )  # fmt: skip
    assert code == 0
    loaded = load_trained(out / "lta-thinker")
    assert isinstance(loaded, LTAThinkerModel) and loaded.num_thought_tokens == 2
    report = json.loads((out / "compare.json").read_text())
    assert [arm["arm"] for arm in report["arms"]] == ["sft", "lta-thinker"]
    metric = parse_metric("numeric_match")
    rows = eval_rows(Comparison(arms=[], metric=metric, eval_rows=3), "builtin:lta_steps")
    values, _ = measure(metric, loaded, load_tokenizer(str(out / "lta-thinker")), rows, max_new_tokens=4)
    assert report["arms"][1]["per_row"] == values
