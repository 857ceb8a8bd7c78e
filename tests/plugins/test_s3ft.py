"""s3ft: the card's tests that can fail (routing, paraphrase off, numeric judge, the always-false / always-true
limits, determinism), truncation failing the judge, the chat template shared with training, resume without
regenerating and a 2-process run equal to one, the code judge through the sandbox, the built-in data, and the real
CLI (`trl-ext transform s3ft`, `trl-ext train sft --transforms s3ft`)."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.evaluation.judges import numeric_match
from trl_ext.inference.generation import Generation
from trl_ext.testing import run_cli
from trl_ext_plugins.s3ft import make_s3ft_transform, model_fingerprint, s3ft_build, strip_preamble


class Interrupt(RuntimeError):
    pass


class MockGenerator:
    """Answers from tables keyed by the question: `own` for the first (self) generation, `rewrite` for paraphrase
    requests (recognised by their "Reference answer:" field). Counts calls and records the prompts it saw."""

    def __init__(self, own, rewrite=None, num_tokens=5, fail_after=None):
        self.own, self.rewrite = own, rewrite or {}
        self.num_tokens, self.fail_after = num_tokens, fail_after
        self.calls, self.prompts = 0, []

    def __call__(self, prompts, max_new_tokens):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise Interrupt("killed")
        self.calls += 1
        self.prompts.append(prompts)
        out = []
        for p in prompts:
            text = p[-1]["content"] if isinstance(p, list) else p
            if "Reference answer:" in text:
                question = text.split("Question:\n")[1].split("\n\nReference answer:")[0]
                answer = self.rewrite.get(question, "")
            else:
                answer = self.own.get(text, "")
            n = self.num_tokens(answer) if callable(self.num_tokens) else self.num_tokens
            out.append(Generation(answer, n))
        return out


def _rows():
    return [
        {"prompt": [{"role": "user", "content": "q1"}], "completion": [{"role": "assistant", "content": "6*7\n#### 42"}]},
        {"prompt": [{"role": "user", "content": "q2"}], "completion": [{"role": "assistant", "content": "3+4\n#### 7"}]},
        {"prompt": [{"role": "user", "content": "q3"}], "completion": [{"role": "assistant", "content": "2+3\n#### 5"}]},
    ]  # fmt: skip


def _card_generator():
    return MockGenerator(
        own={"q1": "#### 42", "q2": "I think it is 8.", "q3": "6"},
        rewrite={"q2": "Three plus four. The answer is 7.", "q3": "The answer is 4."},
    )


def _content(completion):
    return completion[-1]["content"]


# ---- the card's tests ----------------------------------------------------------------------------------------------


def test_card_routing_self_paraphrase_gold():
    gen = _card_generator()
    out, metrics = s3ft_build(Dataset.from_list(_rows()), generator=gen, batch_size=8, return_metrics=True)
    assert out["s3ft_source"] == ["self", "paraphrase", "gold"]
    assert [_content(c) for c in out["completion"]] == ["#### 42", "Three plus four. The answer is 7.", "2+3\n#### 5"]
    assert out["s3ft_self_answer"] == ["#### 42", "I think it is 8.", "6"]
    assert metrics["s3ft/frac_self"] == pytest.approx(1 / 3)
    assert metrics["s3ft/frac_paraphrase"] == pytest.approx(1 / 3)
    assert metrics["s3ft/frac_gold"] == pytest.approx(1 / 3)
    # Whitespace words without a tokenizer: "#### 42" = 2, the rewrite = 7, the gold "2+3\n#### 5" = 3.
    assert metrics["s3ft/mean_length/self"] == 2
    assert metrics["s3ft/mean_length/paraphrase"] == 7
    assert metrics["s3ft/mean_length/gold"] == 3
    assert gen.calls == 2 and len(gen.prompts[1]) == 2  # the rewrite is asked only for the two failures


def test_card_paraphrase_off_never_generates_twice():
    gen = _card_generator()
    out = s3ft_build(Dataset.from_list(_rows()), generator=gen, batch_size=8, paraphrase=False)
    assert gen.calls == 1
    assert out["s3ft_source"] == ["self", "gold", "gold"]
    assert [_content(c) for c in out["completion"]] == ["#### 42", "3+4\n#### 7", "2+3\n#### 5"]


def test_card_numeric_match():
    assert numeric_match("q", "The answer is 1,234.", "#### 1234")
    assert numeric_match("q", "12.5", "12.50")
    assert not numeric_match("q", "13", "12")


def test_card_limits_always_false_is_sft_always_true_is_self():
    rows = _rows()
    never = s3ft_build(Dataset.from_list(rows), generator=_card_generator(), judge=lambda p, c, g: False)
    # Byte-identical: S3FT = SFT.
    assert json.dumps(list(never["completion"])) == json.dumps([r["completion"] for r in rows])
    assert never["s3ft_source"] == ["gold"] * 3
    gen = _card_generator()
    always = s3ft_build(Dataset.from_list(rows), generator=gen, judge=lambda p, c, g: True)
    assert [_content(c) for c in always["completion"]] == ["#### 42", "I think it is 8.", "6"]
    assert gen.calls == 1  # nothing failed: no rewrite asked


def test_card_limit_always_true_with_a_model_is_the_greedy_generation(tiny_model_dir):
    """With a real model, the limit holds for every generation that ended by itself; a cut-off one is never trained
    on (it fails even an always-true judge)."""
    from trl_ext.inference.generation import generate_completions
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    rows = _rows()
    fn = make_s3ft_transform(model, tok, judge=lambda p, c, g: True, paraphrase=False, max_new_tokens=6, batch_size=2)
    out = fn(Dataset.from_list(rows))
    greedy = generate_completions(model, tok, [r["prompt"] for r in rows], max_new_tokens=6, batch_size=2,
                                  progress=False)  # fmt: skip
    expected = [g.text if g.num_tokens < 6 else _content(r["completion"]) for g, r in zip(greedy, rows, strict=True)]
    assert [_content(c) for c in out["completion"]] == expected
    assert out["s3ft_self_answer"] == [g.text for g in greedy]
    assert fn.summary["s3ft/self_truncated"] == sum(g.num_tokens >= 6 for g in greedy)


def test_card_determinism_two_runs_identical(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    runs = [
        make_s3ft_transform(model, tok, max_new_tokens=6, batch_size=2)(Dataset.from_list(_rows())).to_list()
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


# ---- pitfalls ------------------------------------------------------------------------------------------------------


def test_truncated_generations_fail_the_judge():
    gen = MockGenerator(own={"q1": "#### 42", "q2": "8"}, rewrite={"q1": "#### 42", "q2": "The answer is 7."},
                        num_tokens=lambda text: 8 if text == "#### 42" else 3)  # fmt: skip
    out, metrics = s3ft_build(Dataset.from_list(_rows()[:2]), generator=gen, max_new_tokens=8, return_metrics=True)
    # q1's own answer and its rewrite are right but reached max_new_tokens: gold. q2's rewrite ended by itself.
    assert out["s3ft_source"] == ["gold", "paraphrase"]
    assert metrics["s3ft/self_truncated"] == 1 and metrics["s3ft/paraphrase_truncated"] == 1


def test_generation_sees_the_training_prompt():
    rows = [{"prompt": "q1", "completion": "#### 42"}, {"prompt": "q2", "completion": "#### 7"}]
    gen = MockGenerator(own={"q1": "#### 42", "q2": "no"}, rewrite={"q2": "#### 7"})
    out = s3ft_build(Dataset.from_list(rows), generator=gen, system_prompt="Be brief.")
    system = {"role": "system", "content": "Be brief."}
    assert gen.prompts[0] == [[system, {"role": "user", "content": "q1"}], [system, {"role": "user", "content": "q2"}]]
    assert out["prompt"] == gen.prompts[0]  # the rows carry exactly the prompt the answer was generated from
    assert gen.prompts[1][0][0] == system and "Reference answer:\n#### 7" in gen.prompts[1][0][1]["content"]
    assert out["completion"] == [
        [{"role": "assistant", "content": "#### 42"}],
        [{"role": "assistant", "content": "#### 7"}],
    ]
    assert out["s3ft_source"] == ["self", "paraphrase"]
    plain = MockGenerator(own={"q1": "#### 42"})
    text = s3ft_build(Dataset.from_list(rows[:1]), generator=plain, conversational=False)
    assert plain.prompts[0] == ["q1"] and text["prompt"] == ["q1"] and text["completion"] == ["#### 42"]


def test_messages_rows_and_keep_columns():
    rows = [{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "6*7\n#### 42"}],
             "answer": "42", "kind": "x"}]  # fmt: skip
    gen = MockGenerator(own={"q1": "It is 42."})
    out = s3ft_build(Dataset.from_list(rows), generator=gen, messages_column="messages")
    assert out[0]["messages"] == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "It is 42."}]
    assert out[0]["answer"] == "42" and out[0]["s3ft_source"] == "self"
    bare = s3ft_build(Dataset.from_list(rows), generator=MockGenerator(own={"q1": "It is 42."}),
                      messages_column="messages", keep_columns=False)  # fmt: skip
    assert set(bare.column_names) == {"messages", "s3ft_source", "s3ft_self_answer"}


def test_strip_preamble():
    assert strip_preamble("Sure! Here is the rewritten answer:\nThe answer is 7.") == "The answer is 7."
    assert strip_preamble("Here's my rewrite:\n\n3 + 4 = 7.") == "3 + 4 = 7."
    assert strip_preamble("3 + 4 = 7. Note: easy.") == "3 + 4 = 7. Note: easy."


def test_code_rows_judged_by_the_sandboxed_unit_tests():
    from trl_ext.data import load_dataset

    rows = load_dataset("builtin:s3ft_problems", "code")["train"].select(range(3)).to_list()
    golds = [_content(r["completion"]) for r in rows]
    questions = [r["prompt"][0]["content"] for r in rows]
    wrong = "def nothing():\n    return None"
    gen = MockGenerator(own={questions[0]: golds[0], questions[1]: wrong, questions[2]: wrong},
                        rewrite={questions[1]: f"Here it is:\n{golds[1]}", questions[2]: wrong})  # fmt: skip
    out = s3ft_build(Dataset.from_list(rows), generator=gen, judge="python_unittest")
    assert out["s3ft_source"] == ["self", "paraphrase", "gold"]


# ---- resume and sharding -------------------------------------------------------------------------------------------


def test_interrupted_run_resumes_without_regenerating(tmp_path):
    rows = _rows() + [
        dict(r, prompt=[{"role": "user", "content": c}]) for r, c in zip(_rows(), ["q4", "q5", "q6"], strict=True)
    ]
    table = {"own": {"q1": "#### 42", "q2": "8", "q3": "6", "q4": "#### 42", "q5": "7", "q6": "0"},
             "rewrite": {"q2": "#### 7", "q3": "4", "q6": "#### 5"}}  # fmt: skip
    ref = s3ft_build(Dataset.from_list(rows), generator=MockGenerator(**table), batch_size=2,
                     curation_dir=str(tmp_path / "ref"))  # fmt: skip
    killed = MockGenerator(**table, fail_after=2)  # batch 0: self + rewrite; dies in batch 1
    with pytest.raises(Interrupt):
        s3ft_build(Dataset.from_list(rows), generator=killed, batch_size=2, curation_dir=str(tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "run" / "batches").iterdir()) == ["000000.json"]
    resumed = MockGenerator(**table)
    out = s3ft_build(Dataset.from_list(rows), generator=resumed, batch_size=2, curation_dir=str(tmp_path / "run"))
    assert out.to_list() == ref.to_list()
    assert [p[0][-1]["content"] for p in resumed.prompts if "Reference" not in p[0][-1]["content"]] == ["q3", "q5"]
    for name in ("scores.jsonl", "summary.json", "s3ft_metrics.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    again = MockGenerator(**table)
    s3ft_build(Dataset.from_list(rows), generator=again, batch_size=2, curation_dir=str(tmp_path / "run"))
    assert again.calls == 0
    # Another model (here: another generator) or other options generate afresh.
    other = MockGenerator(**table)
    s3ft_build(Dataset.from_list(rows), generator=other, batch_size=2, paraphrase=False,
               curation_dir=str(tmp_path / "run"))  # fmt: skip
    assert other.calls == 3


def test_model_fingerprint_follows_the_weights():
    import torch

    from trl_ext.testing import tiny_model

    a, b = tiny_model(), tiny_model()
    assert model_fingerprint(a) == model_fingerprint(b)
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    assert model_fingerprint(a) != model_fingerprint(b)


def _transform(model_dir: str, data: Path, out: Path, nproc: int) -> None:
    run_cli("transform", "s3ft", "--model_name_or_path", model_dir, "--dataset_name", data, "--output", out,
            "--max_new_tokens", "6", "--batch_size", "2", nproc=nproc)  # fmt: skip


@pytest.mark.slow
def test_torchrun_transform_equals_one_process(tiny_model_dir, tmp_path):
    data = tmp_path / "rows.jsonl"
    rows = [dict(r, prompt=[{"role": "user", "content": f"{c} {i}"}]) for i in range(2) for r, c in
            zip(_rows(), ["q1", "q2", "q3"], strict=True)][:5]  # fmt: skip
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))  # 5 rows: batches 2, 2, 1
    _transform(tiny_model_dir, data, tmp_path / "one" / "out.jsonl", nproc=1)
    _transform(tiny_model_dir, data, tmp_path / "two" / "out.jsonl", nproc=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "out.jsonl").read_text() == (one / "out.jsonl").read_text()
    assert len((one / "out.jsonl").read_text().splitlines()) == 5
    record = Path("out.jsonl.curation/s3ft/train")
    for name in ("scores.jsonl", "summary.json", "manifest.json", "s3ft_metrics.json"):
        assert (two / record / name).read_text() == (one / record / name).read_text(), name
    assert len(list((two / record / "batches").iterdir())) == 3


# ---- data and CLI --------------------------------------------------------------------------------------------------


def test_builtin_dataset_is_deterministic_and_consistent():
    from trl_ext.data import load_dataset
    from trl_ext.evaluation.judges import PythonUnittest

    a, b = load_dataset("builtin:s3ft_problems"), load_dataset("builtin:s3ft_problems")
    assert a["train"].to_list() == b["train"].to_list()
    assert (len(a["train"]), len(a["test"])) == (64, 32)
    assert a["train"]["kind"][:4] == ["easy", "word", "easy", "word"]
    assert len(set(map(str, list(a["train"]["prompt"]) + list(a["test"]["prompt"])))) == 96
    for row in a["train"]:
        gold = _content(row["completion"])
        assert gold.endswith(f"#### {row['answer']}") and numeric_match(None, gold, row["answer"])
    first = a["train"][0]  # independently: evaluate the easy question's expression
    expression = first["prompt"][0]["content"].split("What is ")[1].split("?")[0]
    assert str(eval(expression)) == first["answer"]  # noqa: S307 (a literal a op b written by the builder)
    code = load_dataset("builtin:s3ft_problems", "code")
    assert (len(code["train"]), len(code["test"])) == (12, 6)
    judge = PythonUnittest()
    golds = [_content(r["completion"]) for r in code["train"]]
    assert judge.batch([None] * 12, golds, code["train"]["tests"]) == [True] * 12


def test_cli_transform_resume_and_training(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "s3ft.jsonl"
    argv = ["transform", "s3ft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:s3ft_problems",
            "--split", "test", "--max_new_tokens", "6", "--batch_size", "16", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 32
    assert set(rows[0]) == {"prompt", "completion", "answer", "kind", "s3ft_source", "s3ft_self_answer"}
    assert {r["s3ft_source"] for r in rows} <= {"self", "paraphrase", "gold"}
    printed = capsys.readouterr().out
    assert "s3ft/frac_self" in printed and "s3ft/frac_gold" in printed
    record = tmp_path / "s3ft.jsonl.curation" / "s3ft" / "test"
    scores = [json.loads(line) for line in (record / "scores.jsonl").read_text().splitlines()]
    assert [s["s3ft_source"] for s in scores] == [r["s3ft_source"] for r in rows]
    assert json.loads((record / "summary.json").read_text())["kept_per_source"]["easy"] == {"kept": 16, "total": 16}
    stamps = {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()}
    first = out.read_text()
    out.unlink()
    assert main(argv) == 0 and out.read_text() == first  # resumed: nothing generated again
    assert {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()} == stamps

    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:s3ft_problems",
                 "--transforms", "s3ft:max_new_tokens=4", "--output_dir", str(tmp_path / "run"), "--max_steps", "1",
                 "--per_device_train_batch_size", "2", "--max_length", "128", "--report_to", "none",
                 "--save_strategy", "no"])  # fmt: skip
    assert code == 0
