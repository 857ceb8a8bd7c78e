"""irac_sft: every hand-computed case of the card (parsers, TV bias, IRAC validation, rendering round-trip,
per-domain sampling, accuracy/parse rate), the distillation transform on the curation runner (retry, fallback,
resume after an interruption, 2 processes == 1), the eval callback, and the real CLI (`trl-ext transform
irac_distill`, `trl-ext train --config examples/recipes/irac_sft.yaml --max_steps 1`)."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.testing import run_cli
from trl_ext_plugins.irac_sft import (
    MCQEvalCallback,
    irac_distill,
    letter_tv,
    make_irac_distill_transform,
    mcq_metrics,
    parse_answer,
    render_mcq_sft,
    render_response,
    sample_per_domain,
    shuffle_options,
    template_teacher,
    validate_irac,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD = "Issue: Is the claim barred?\nRule: Late claims are barred.\nApplication: It was late.\nConclusion: (C)."


# --- card test 1: parsers
def test_card_parsers():
    assert parse_answer('{"answer": "C", "explanation": "x"}', "json") == "C"
    assert parse_answer("**Answer:** B", "markdown") == "B"
    assert parse_answer("1. Answer: (D)", "numbered") == "D"
    assert parse_answer("I think none", "json") is None
    assert parse_answer("I think none") is None


def test_parsers_adversarial():
    assert parse_answer('Sure! {"explanation": "A is wrong", "answer": "(B)"} done', "json") == "B"
    assert parse_answer("2. Explanation: (A) fails.\n1. Answer: (D)", "numbered") == "D"  # the Answer line wins
    assert parse_answer("A court would say the answer must be C.", "markdown") == "C"  # article A is no letter
    for bad in (None, "", 5, ["C"], "{not json", "x" * 10000):
        assert parse_answer(bad, "json") is None
    assert parse_answer('{"answer": "Z"}', "json") is None


# --- card test 2: TV bias
def test_card_letter_tv():
    assert letter_tv(["A", "A", "A", "B"], ["A", "B", "C", "D"]) == pytest.approx(0.5)
    m = mcq_metrics(["A", "A", "A", "B"], ["A", "B", "C", "D"])
    assert [m[f"eval/pred_frac/{L}"] for L in "ABCD"] == pytest.approx([0.75, 0.25, 0, 0])
    assert letter_tv(["A", "B", "C", "D"], ["D", "C", "B", "A"]) == 0.0


# --- card test 3: IRAC validation
def test_card_irac_validation():
    assert validate_irac(GOOD, "C") == (True, "ok")
    ok, reason = validate_irac(GOOD.replace("Rule: Late claims are barred.\n", ""), "C")
    assert not ok and "Rule" in reason
    ok, reason = validate_irac(GOOD.replace("(C)", "(B)"), "C")
    assert not ok and "names B" in reason
    assert not validate_irac(GOOD.replace("(C).", "(B) or (C)."), "C")[0]  # two letters
    assert validate_irac(GOOD.replace("(C).", "A court picks (C)."), "C")[0]  # "A court" is not a letter
    assert validate_irac("**Issue:** x\n**Rule:** y\n**Application:** z\n**Conclusion:** answer C", "C")[0]


# --- card test 4: parse(render(answer=C)) == C for every fmt x order
@pytest.mark.parametrize("fmt", ["numbered", "markdown", "json"])
@pytest.mark.parametrize("order", ["answer_first", "explanation_first"])
def test_card_render_round_trip(fmt, order):
    explanation = 'Rule: "(A)" and (B) fail; the "answer" is not A.\nConclusion: (C).'
    text = render_response("C", explanation, fmt, order)
    assert parse_answer(text, fmt) == "C"
    if fmt == "json":
        obj = json.loads(text)  # valid JSON, keys in order
        assert list(obj) == (["answer", "explanation"] if order == "answer_first" else ["explanation", "answer"])
        assert obj["explanation"] == explanation


def _mcq(n_domains=7, per=3):
    rows = []
    for d in range(n_domains):
        for j in range(per):
            rows.append({"question": f"Q{d}-{j}?", "options": ["w", "x", "y", "z"], "answer": "ABCD"[j % 4],
                         "explanation": f"Rule {d}. Applied {j}.", "domain": f"d{d}"})  # fmt: skip
    return Dataset.from_list(rows)


# --- card test 5: sample_per_domain
def test_card_sample_per_domain():
    ds = _mcq(7, 3)
    out = sample_per_domain(ds, 2, seed=0)
    assert len(out) == 14 and all(out["domain"].count(f"d{d}") == 2 for d in range(7))
    assert out.to_list() == sample_per_domain(ds, 2, seed=0).to_list()
    assert any(sample_per_domain(ds, 2, seed=s).to_list() != out.to_list() for s in range(1, 6))
    assert sample_per_domain(ds, 5, seed=0).to_list() == ds.to_list()  # k > size: all of it


# --- card test 6: unparseable = wrong
def test_card_accuracy_and_parse_rate():
    m = mcq_metrics(["A", "B", "C", None], ["A", "B", "D", "D"], ["x", "x", "y", "y"])
    assert m["eval/mcq_acc"] == 0.5 and m["eval/parse_rate"] == 0.75
    assert m["eval/acc/x"] == 1.0 and m["eval/acc/y"] == 0.0


def test_shuffle_remaps_the_gold_letter():
    import random

    opts = ["o0", "o1", "o2", "o3"]
    for seed in range(20):
        new, gold, mapping = shuffle_options(opts, "C", random.Random(seed))
        assert new["ABCD".index(gold)] == "o2" and sorted(new) == opts
    rows = render_mcq_sft(_mcq(1, 4), fmt="numbered", use_irac=False)
    for r, src in zip(rows, _mcq(1, 4), strict=True):
        content = r["prompt"][0]["content"]
        gold_text = src["options"]["ABCD".index(src["answer"])]
        assert f"\n{r['answer']}. {gold_text}" in content
        assert parse_answer(r["completion"][0]["content"], "numbered") == r["answer"]
    shots = render_mcq_sft(_mcq(1, 4), few_shot=2)
    assert shots[0]["prompt"][0]["content"].count("Example question") == 2


class Teacher:
    """Returns scripted texts per call; counts calls."""

    def __init__(self, bad_first=(), always_bad=(), fail_after=None):
        self.calls, self.bad_first, self.always_bad, self.fail_after = 0, set(bad_first), set(always_bad), fail_after

    def __call__(self, prompt):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        q = prompt.split("Question:\n", 1)[1].split("?", 1)[0]
        if q in self.always_bad or (q in self.bad_first and not getattr(self, f"seen_{q}", False)):
            setattr(self, f"seen_{q}", True)
            return "Issue: x\nApplication: no rule section"
        return template_teacher(prompt)


def test_irac_distill_retry_and_fallback(tmp_path):
    ds = _mcq(1, 3)  # questions Q0-0, Q0-1, Q0-2
    teacher = Teacher(bad_first={"Q0-1"}, always_bad={"Q0-2"})
    fn = make_irac_distill_transform(teacher, max_retries=1, curation_dir=str(tmp_path))
    out = fn(ds)
    assert out["irac_ok"] == [True, True, False]
    assert out["irac_explanation"][2] == ds[2]["explanation"]  # fallback: the raw explanation
    assert out["irac_explanation"][0].startswith("Issue: Q0-0?") and "Conclusion" in out["irac_explanation"][0]
    assert teacher.calls == 3 + 2  # one retry each for the two invalid rows
    assert fn.summary == {"irac/rows": 3, "irac/ok": 2, "irac/fallback_raw": 1, "irac/retried": 2}
    records = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["attempts"] for r in records] == [1, 2, 2]
    assert irac_distill(ds, Teacher(always_bad={"Q0-0"}), max_retries=0)["irac_ok"] == [False, True, True]


def test_irac_distill_resumes_after_an_interruption(tmp_path):
    ds = _mcq(2, 3)  # 6 rows, batches of 2
    ref = make_irac_distill_transform(Teacher(), batch_size=2, curation_dir=str(tmp_path / "ref"))(ds)
    with pytest.raises(KeyboardInterrupt):
        make_irac_distill_transform(Teacher(fail_after=3), batch_size=2, curation_dir=str(tmp_path / "run"))(ds)
    resumed = Teacher()
    out = make_irac_distill_transform(resumed, batch_size=2, curation_dir=str(tmp_path / "run"))(ds)
    assert resumed.calls == 4, "the finished first batch is not asked again"
    assert out.to_list() == ref.to_list()
    for name in ("scores.jsonl", "summary.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text()


def test_builtin_data_and_template_teacher():
    from trl_ext.data import load_dataset

    data = load_dataset("builtin:irac_mcq")
    assert len(data["train"]) == 240 and len(data["test"]) == 60
    assert data["train"].to_list() == load_dataset("builtin:irac_mcq")["train"].to_list()
    assert sorted(set(data["train"]["domain"])) == ["civil_procedure", "contracts", "torts"]
    out = irac_distill(data["train"], template_teacher)
    assert all(out["irac_ok"])
    for row in data["train"].to_list():
        assert len(set(row["options"])) == 4 and row["answer"] in "ABCD"


def test_mcq_eval_callback_on_scripted_outputs():
    cb = MCQEvalCallback(_mcq(2, 2), fmt="json")
    texts = ['{"explanation": "x", "answer": "A"}', '{"answer": "A"}', "none", '{"answer": "B"}']
    cb.generate = lambda model, tok: texts
    m = cb.evaluate(None, None)
    # gold A, B, A, B: correct, wrong, unparseable, correct
    assert m["eval/mcq_acc"] == 0.5 and m["eval/parse_rate"] == 0.75
    assert m["eval/letter_tv"] == pytest.approx(0.5 * (abs(2 / 3 - 0.5) + abs(1 / 3 - 0.5)))
    assert m["eval/acc/d0"] == 0.5 and m["eval/temperature"] == 0.0
    assert cb.item_values["eval/mcq_acc"] == [1.0, 0.0, 0.0, 1.0]  # the items `trl-ext compare` gives an interval
    with pytest.raises(ValueError):
        MCQEvalCallback(fmt="yaml")


def test_cli_transform_and_recipe(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "irac.jsonl"
    code = main(["transform", "irac_distill", "--dataset_name", "builtin:irac_mcq", "--split", "test",
                 "--teacher", "template", "--output", str(out)])  # fmt: skip
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 60 and all(r["irac_ok"] for r in rows)
    assert "irac/ok: 60" in capsys.readouterr().out
    code = main(["train", "--config", str(ROOT / "examples/recipes/irac_sft.yaml"), "--model_name_or_path",
                 tiny_model_dir, "--max_steps", "1", "--output_dir", str(tmp_path / "run"), "--report_to", "none",
                 "--callbacks", "mcq_eval:num_samples=3:max_new_tokens=8"])  # fmt: skip
    assert code == 0
    assert "mcq_eval at step 1: eval/mcq_acc=" in capsys.readouterr().out
    adapter = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert adapter["r"] == 16 and adapter["lora_alpha"] == 32 and len(adapter["target_modules"]) >= 7


def _distill_cli(model_dir: str, data: Path, out: Path, nproc: int) -> None:
    run_cli("transform", "irac_distill", "--dataset_name", data, "--teacher", "model", "--teacher_model", model_dir,
            "--max_new_tokens", "6", "--batch_size", "2", "--output", out, nproc=nproc)  # fmt: skip


@pytest.mark.slow
def test_torchrun_model_teacher_equals_one_process(tiny_model_dir, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _mcq(1, 5).to_list()))  # 5 rows: batches 2, 2, 1
    _distill_cli(tiny_model_dir, data, tmp_path / "one" / "out.jsonl", nproc=1)
    _distill_cli(tiny_model_dir, data, tmp_path / "two" / "out.jsonl", nproc=2)
    assert (tmp_path / "two/out.jsonl").read_text() == (tmp_path / "one/out.jsonl").read_text()
    record = Path("out.jsonl.curation/irac_distill/train")
    for name in ("scores.jsonl", "summary.json"):
        assert (tmp_path / "two" / record / name).read_text() == (tmp_path / "one" / record / name).read_text()
    assert len((tmp_path / "one/out.jsonl").read_text().splitlines()) == 5
