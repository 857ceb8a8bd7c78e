"""`trl-ext generate` through the CLI, and the `logits_processor` record kind it looks processors up in."""

from __future__ import annotations

import json

import pytest

from trl_ext import LogitsProcessor, hookimpl
from trl_ext.cli import main
from trl_ext.plugin.registry import Registry

PROMPTS = [
    {"prompt": [{"role": "user", "content": "Ann has 3 apples. How many?"}], "answer": "3"},
    {"prompt": [{"role": "user", "content": "Tom has 5 pens and"}], "answer": "5"},
]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS))
    return str(path)


@pytest.fixture
def refuse_model_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trl_ext.models.load_model", refuse)


def generate(*args: str) -> int:
    return main(["generate", *args])


def test_generate_writes_prompts_and_completions(tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "out.jsonl"
    code = generate(
        "--model_name_or_path", tiny_model_dir, "--dataset_name", data_file, "--max_new_tokens", "4",
        "--batch_size", "2", "--output", str(out),
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [p["prompt"] for p in PROMPTS]
    assert [r["answer"] for r in rows] == ["3", "5"]  # the other columns come along
    assert all(isinstance(r["completion"], str) and 1 <= r["num_completion_tokens"] <= 4 for r in rows)


def test_generate_applies_logits_processors_by_name(tiny_model_dir, data_file, tmp_path, capsys):
    from trl_ext.testing import tiny_tokenizer

    token = tiny_tokenizer().convert_tokens_to_ids("a")
    code = generate(
        "--model_name_or_path", tiny_model_dir, "--dataset_name", data_file, "--num_samples", "1",
        "--max_new_tokens", "3", "--logits_processors", f"budget_forcing:budget=0:end_think_token_id={token}",
    )  # fmt: skip
    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()  # standard output by default; --num_samples 1
    assert json.loads(line)["completion"].startswith("a")  # forced as the first token


@pytest.mark.parametrize(
    "args, message",
    [
        (["--logits_processors", "no_such_processor"], "Unknown logits_processor 'no_such_processor'"),
        (["--logits_processors", "budget_forcing:budgt=3"], "has no option(s) budgt"),
        (["--logits_processors", "budget_forcing:tokenizer=x"], "the tokenizer is the model's"),
        (["--dataset_split", "test"], "has no split 'test'"),
        (["--num_samples", "0"], "--num_samples must be at least 1"),
    ],
)
def test_generate_refuses_bad_input_before_the_model_loads(args, message, data_file, refuse_model_load, capsys):
    assert generate("--model_name_or_path", "m", "--dataset_name", data_file, *args) != 0
    assert message in capsys.readouterr().err


def test_generate_needs_a_prompt_column(tmp_path, refuse_model_load, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q"}\n')
    assert generate("--model_name_or_path", "m", "--dataset_name", str(path)) != 0
    assert "reads the 'prompt' column" in capsys.readouterr().err


def test_logits_processor_records_register_and_build():
    class Plugin:
        @hookimpl
        def register_logits_processors(self, register):
            register(LogitsProcessor(name="identity", factory=lambda tokenizer=None: lambda ids, scores: scores))

    class Wrong:
        @hookimpl
        def register_logits_processors(self, register):
            from trl_ext import Reward

            register(Reward(name="r", factory=len))

    registry = Registry()
    registry.add_plugin(Plugin(), "p")
    registry.add_plugin(Wrong(), "w")
    processor = registry.get("logits_processor", "identity").build(tokenizer=None)
    assert processor(None, 5) == 5
    assert registry.get("logits_processor", "identity").kind == "logits_processor"
    assert "must register LogitsProcessor records" in str(registry.plugins["w"].error)


@pytest.mark.slow
def test_generate_on_smollm2_with_temperature_scaling(tmp_path):
    """The real built-in model, two prompts of builtin:tldr_arith, a few tokens, through TLDR's processor."""
    out = tmp_path / "gen.jsonl"
    code = generate(
        "--model_name_or_path", "smollm2-135m", "--dataset_name", "builtin:tldr_arith", "--dataset_split", "test",
        "--num_samples", "2", "--max_new_tokens", "6", "--logits_processors",
        "think_stop_temperature:tau_stop=0.25", "--output", str(out),
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["num_completion_tokens"] == 6 for r in rows)
    # τ_stop = 0.25 quadruples a positive "</" logit: the untrained model closes the thinking block at once
    assert all(r["completion"].startswith("</think>") for r in rows)


def test_generations_carry_the_token_ids_they_were_decoded_from():
    """`Generation.prompt_ids` are the chat-templated prompt's tokens without padding, `token_ids` the
    `num_tokens` sampled tokens (EOS included); with n return sequences each row keeps its own prompt's ids."""
    import torch

    from trl_ext.inference.generation import generate_completions
    from trl_ext.testing import tiny_model, tiny_tokenizer

    model, tokenizer = tiny_model(), tiny_tokenizer()
    prompts = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a much longer question here"}]]
    torch.manual_seed(0)
    out = generate_completions(
        model, tokenizer, prompts, max_new_tokens=5, do_sample=True, temperature=1.0, num_return_sequences=2
    )
    assert len(out) == 4
    for row, g in enumerate(out):
        text = tokenizer.apply_chat_template(prompts[row // 2], add_generation_prompt=True, tokenize=False)
        assert list(g.prompt_ids) == tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(g.token_ids) == g.num_tokens
        assert tokenizer.decode(list(g.token_ids), skip_special_tokens=True) == g.text
