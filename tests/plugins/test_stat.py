"""stat: every hand-computed case of the card (MSP, Sel reweighting, consistency filter, empty MSP, subsampling, the
mocked pipeline's teacher-call count), the pitfalls (catalogue-only labels, no validation leakage, cached teacher),
resume after an interruption and a 2-process torchrun run equal to one process, and the real CLI."""

import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from trl_ext.cli import main
from trl_ext.data import load_dataset
from trl_ext.testing import run_cli
from trl_ext_plugins.stat import (
    ArithTeacher,
    CachedTeacher,
    StatEmptyError,
    build_msp,
    consistency_filter,
    normalize_skill,
    parse_skills,
    sel_draw,
    stat_build,
    subsample,
)
from trl_ext_plugins.stat.data import SKILLS, skills_of, solve


# --- card test 1: missing skills [{a,b},{a},{a,c}] -> MSP {a:3, b:1, c:1}
def test_card_msp():
    assert build_msp([{"a", "b"}, {"a"}, {"a", "c"}]) == {"a": 3, "b": 1, "c": 1}
    assert build_msp([["a", "a"], ["B "]]) == {"a": 1, "b": 1}  # a skill counts once per question; names normalised
    assert build_msp([]) == {}


# --- card test 2: per_skill 5 and that MSP -> 25 drawn questions: 15 tagged a, 5 b, 5 c
def test_card_sel_reweighting():
    pool = [["a"]] * 8 + [["b"]] * 6 + [["c"]] * 7 + [["d"]] * 5  # each question exactly one skill
    tag = {i: pool[i][0] for i in range(len(pool))}
    draw = sel_draw({"a": 3, "b": 1, "c": 1}, pool, per_skill=5, seed=0)
    assert len(draw) == 25
    assert Counter(tag[i] for i, _ in draw) == {"a": 15, "b": 5, "c": 5}
    assert all(tag[i] == skill for i, skill in draw)
    # without replacement within one draw of 5, with replacement across draws (8 a-questions, 15 a-draws)
    for k in range(5):
        assert len({i for i, _ in draw[5 * k : 5 * k + 5]}) == 5
    assert max(Counter(i for i, _ in draw[:15]).values()) >= 2
    assert sel_draw({"a": 3, "b": 1, "c": 1}, pool, per_skill=5, seed=0) == draw  # deterministic
    assert sel_draw({"a": 3, "b": 1, "c": 1}, pool, per_skill=5, seed=1) != draw
    assert sel_draw({"e": 2}, pool) == []  # a skill no pool question has draws nothing
    assert len(sel_draw({"d": 1}, pool, per_skill=9)) == 5  # fewer candidates than per_skill: all of them


# --- card test 3: final answers [4,4,7] keep 2; [4,5,7] drop; [4,4,4] keep 3
def test_card_consistency_filter():
    def extract(text):
        return text.rsplit(" ", 1)[-1]

    sols = ["so 4", "thus 4", "hence 7"]
    assert consistency_filter(sols, extract) == (True, ["so 4", "thus 4"])
    assert consistency_filter(["a 4", "b 5", "c 7"], extract) == (False, [])
    assert consistency_filter(["a 4", "b 4", "c 4"], extract) == (True, ["a 4", "b 4", "c 4"])
    assert consistency_filter([], extract) == (False, [])
    # unparseable answers form no group
    assert consistency_filter(["x", "y", "z 3"], lambda t: None if t in "xy" else "3") == (False, [])


def _student(wrong_skill: str | None):
    """A mock student: exact on every problem except those needing `wrong_skill` (off by one there)."""

    def generate(prompts):
        out = []
        for p in prompts:
            q = p[0]["content"].split("?")[0] + "?"
            value, _, skills = solve(q)
            out.append(f"The answer is {value + 1 if wrong_skill in skills else value}.")
        return out

    return generate


def _data():
    d = load_dataset("builtin:stat_skills")
    return d["train"], d["validation"]


# --- card test 4: no hard question -> empty MSP -> a clear error, never the full pool
def test_card_empty_msp_raises():
    train, val = _data()
    info = {}
    with pytest.raises(StatEmptyError, match="Missing-Skill-Profile is empty"):
        stat_build(train, val, _student(None), ArithTeacher(), info=info, progress=False)
    assert info["msp"] == {} and info["pairs"] == []


# --- card test 5: subsampling never exceeds target_size and keeps <= answers_per_q per question
def test_card_subsample_bounds():
    pairs = [{"question": f"q{i % 7}", "k": i} for i in range(60)]
    for target in (0, 5, 13, 21, 100):
        for per_q in (1, 2, 3):
            out = subsample(pairs, target, per_q, seed=3)
            assert len(out) <= target
            assert max(Counter(p["question"] for p in out).values(), default=0) <= per_q
    assert len(subsample(pairs, 100, 3)) == 21  # 7 questions x 3
    assert [p["k"] for p in subsample(pairs, 100, 1)] == list(range(7))  # the first solution of each question
    train, val = _data()
    out = stat_build(train, val, _student("multiply"), ArithTeacher(), target_size=40, progress=False)
    assert len(out) == 40
    assert max(Counter(r["prompt"][0]["content"] for r in out).values()) <= 3


class MockTeacher:
    """Records every prompt; answers each kind of the plugin's prompts from the arithmetic rules."""

    def __init__(self):
        self.prompts = []
        self.rules = ArithTeacher()

    def __call__(self, prompt):
        self.prompts.append(prompt)
        if "Which skills" in prompt:  # one label outside the catalogue, rejected
            return self.rules(prompt) + ", Mental Magic"
        return self.rules(prompt)


# --- card test 6: mocked teacher/scorer, offline; calls = 1 catalogue + |D_tr| labels + n_hard diagnoses (+ syn)
def test_card_pipeline_teacher_calls():
    train, val = _data()
    pool = train.select(range(60)).remove_columns("skills")  # no labels: the teacher labels every question
    val = val.select(range(30))
    n_wrong = sum("multiply" in s for s in val["skills"])
    scored = []

    def scorer(problem, response):  # a PRM stand-in: every response's steps look fine
        scored.append(problem)
        return 0.9

    teacher = MockTeacher()
    info = {}
    out = stat_build(pool, val, _student("multiply"), teacher, scorer=scorer, answers_per_q=1, info=info,
                     progress=False)  # fmt: skip
    assert len(teacher.prompts) == 1 + 60 + n_wrong == info["teacher_calls"] == info["stats"]["stat/teacher_prompts"]
    assert len(scored) == 30
    assert info["stats"]["stat/n_hard"] == n_wrong
    assert info["stats"]["stat/rejected_labels"] == 60  # "mental_magic" is outside the catalogue
    assert all("mental_magic" not in lab for lab in info["labels"])
    assert info["catalogue"] == list(SKILLS)
    assert [lab for lab in info["labels"]] == [list(skills_of(p)) for p in pool["problem"]]
    assert set(out.column_names) >= {"prompt", "completion", "stat_skill", "stat_origin"}
    assert set(out["stat_origin"]) == {"sel"}

    # n_hard caps the diagnoses; syn adds one synthesis call per (hard question, skill) + 3 solutions per new question
    teacher = MockTeacher()
    info = {}
    out = stat_build(pool, val, _student("multiply"), teacher, mode="syn", n_hard=2, info=info, progress=False)
    n_pairs = sum(len(d["missing"]) for d in info["diagnoses"])
    n_new = info["stats"]["stat/syn_questions"]
    assert info["stats"]["stat/n_hard"] == 2
    assert len(teacher.prompts) == 1 + 60 + 2 + n_pairs + 3 * n_new
    assert 0 < n_new <= 2 * n_pairs  # 2 new questions per (q, s), minus repeats (of each other, pool, validation)
    assert set(out["stat_origin"]) == {"syn"} and info["stats"]["stat/syn_keep_rate"] == 1.0


def test_sel_targets_the_missing_skill_and_never_leaks_validation():
    train, val = _data()
    leaky = Dataset.from_list(train.to_list() + val.select(range(10)).to_list())
    info = {}
    out = stat_build(leaky, val, _student("fractions"), ArithTeacher(), target_size=10_000, info=info,
                     progress=False)  # fmt: skip
    n_fractions = sum("fractions" in s for s in val["skills"])
    assert info["msp"] == {"fractions": n_fractions}
    assert info["stats"]["stat/leaked_pool_questions_excluded"] == 10
    val_questions = set(val["problem"])
    assert not any(r["prompt"][0]["content"].split("?")[0] + "?" in val_questions for r in out)
    assert set(out["stat_skill"]) == {"fractions"}
    assert all("fractions" in skills_of(r["prompt"][0]["content"].split("?")[0] + "?") for r in out)
    # gold solution + 2 teacher wordings per question, each with the right answer
    assert len(out) == 3 * info["stats"]["stat/unique_questions"]
    assert all(r["completion"][0]["content"].endswith(f"answer is {r['answer']}.") for r in out)


def test_syn_consistency_filter_drops_disagreeing_questions():
    train, val = _data()
    info = {}
    out = stat_build(train, val, _student("fractions"), ArithTeacher(slip_rate=0.3), mode="syn", info=info,
                     progress=False)  # fmt: skip
    assert 0 < info["stats"]["stat/syn_keep_rate"] < 1
    for r in out:  # every kept solution agrees with the exact answer or with another solution
        assert r["stat_origin"] == "syn" and r["stat_source"] == -1
    by_q = Counter(r["prompt"][0]["content"] for r in out)
    assert min(by_q.values()) >= 2


def test_skill_names_are_normalised_and_checked():
    assert normalize_skill("  Carry / Borrow ") == "carry_borrow"
    assert parse_skills("1. Add\n- Multiply; fractions, add, Geometry", SKILLS) == (
        ["add", "multiply", "fractions"],
        ["geometry"],
    )


def test_teacher_calls_are_cached_on_disk(tmp_path):
    calls = []

    def teacher(prompt):
        calls.append(prompt)
        return prompt.upper()

    first = CachedTeacher(teacher, "t", tmp_path / "cache.jsonl")
    assert first.many(["a", "b", "a"]) == ["A", "B", "A"] and first.calls == 2
    again = CachedTeacher(teacher, "t", tmp_path / "cache.jsonl")
    assert again("b") == "B" and again.calls == 0 and len(calls) == 2
    assert CachedTeacher(teacher, "other", tmp_path / "cache.jsonl")("b") == "B" and len(calls) == 3


class Interrupt(RuntimeError):
    pass


class CountingStudent:
    def __init__(self, fail_after=None):
        self.batches, self.fail_after, self.inner = 0, fail_after, _student("multiply")

    def __call__(self, prompts):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise Interrupt("killed")
        self.batches += 1
        return self.inner(prompts)


def test_interrupted_build_resumes_to_the_same_output(tmp_path):
    train, val = _data()
    val = val.select(range(40))  # batches of 16: 3 batches
    ref = stat_build(train, val, CountingStudent(), ArithTeacher(), target_size=60, batch_size=16,
                     cache_dir=tmp_path / "ref", progress=False)  # fmt: skip
    with pytest.raises(Interrupt):
        stat_build(train, val, CountingStudent(fail_after=2), ArithTeacher(), target_size=60, batch_size=16,
                   cache_dir=tmp_path / "run", progress=False)  # fmt: skip
    resumed = CountingStudent()
    out = stat_build(train, val, resumed, ArithTeacher(), target_size=60, batch_size=16, cache_dir=tmp_path / "run",
                     progress=False)  # fmt: skip
    assert resumed.batches == 1, "only the unfinished batch is answered again"
    assert out.to_list() == ref.to_list()
    for name in ("scores.jsonl", "summary.json", "stat.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    records = [json.loads(line) for line in (tmp_path / "run" / "scores.jsonl").read_text().splitlines()]
    assert len(records) == 40 and all("difficulty_score" in r and "responses" in r for r in records)


def test_builtin_dataset_is_deterministic_and_labelled():
    a, b = load_dataset("builtin:stat_skills"), load_dataset("builtin:stat_skills")
    assert a["train"].to_list() == b["train"].to_list()
    assert (len(a["train"]), len(a["validation"]), len(a["test"])) == (700, 140, 140)
    splits = [set(a[s]["problem"]) for s in ("train", "validation", "test")]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert {s for row in a["train"]["skills"] for s in row} == set(SKILLS)
    # hand-checked labels and answers
    assert solve("What is 47 + 38?")[0] == 85 and skills_of("What is 47 + 38?") == ("add", "carry")
    assert skills_of("What is 42 + 13?") == ("add",)
    assert solve("What is 52 - 17?")[0] == 35 and skills_of("What is 52 - 17?") == ("subtract", "carry")
    assert solve("What is (12 - 5) * 3?")[0] == 21
    assert skills_of("What is (12 - 5) * 3?") == ("parentheses", "subtract", "multiply")
    assert solve("What is 3/4 of 48?")[0] == 36 and skills_of("What is 3/4 of 48?") == ("fractions",)
    assert solve("Who is there?") is None


def _val_file(tmp_path) -> Path:
    path = tmp_path / "val.jsonl"
    rows = load_dataset("builtin:stat_skills")["validation"].select(range(10)).to_list()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_transform_then_train(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "stat.jsonl"
    args = ["transform", "stat", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:stat_skills",
            "--split", "train", "--val_dataset", str(_val_file(tmp_path)), "--val_split", "train", "--target_size",
            "30", "--max_new_tokens", "4", "--batch_size", "4", "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30
    assert set(rows[0]) == {"prompt", "completion", "stat_skill", "stat_origin", "answer", "stat_source"}
    record = tmp_path / "stat.jsonl.curation" / "stat" / "train"
    scores = [json.loads(line) for line in (record / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 10 and all(s["kept"] for s in scores)  # a random tiny model solves nothing
    stat = json.loads((record / "stat.json").read_text())
    assert stat["stats"]["stat/n_hard"] == 10 and sum(stat["stats"]["stat/msp"].values()) >= 10
    printed = capsys.readouterr().out
    assert "stat/n_hard: 10" in printed and "stat/unique_questions" in printed
    # the same command again resumes: no batch rewritten, the same output
    stamps = {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()}
    first = out.read_text()
    assert main(args) == 0 and out.read_text() == first
    assert {p.name: p.stat().st_mtime_ns for p in (record / "batches").iterdir()} == stamps

    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", str(out), "--output_dir",
                 str(tmp_path / "run"), "--max_steps", "1", "--per_device_train_batch_size", "2", "--max_length", "64",
                 "--report_to", "none", "--save_strategy", "no"])  # fmt: skip
    assert code == 0


def test_cli_requires_a_validation_set(tiny_model_dir, tmp_path, capsys):
    code = main(["transform", "stat", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:stat_skills",
                 "--split", "train", "--output", str(tmp_path / "x.jsonl")])  # fmt: skip
    assert code != 0 and "--val_dataset" in capsys.readouterr().err


def _transform(model_dir: str, val: Path, out: Path, nproc: int) -> None:
    run_cli("transform", "stat", "--model_name_or_path", model_dir, "--dataset_name", "builtin:stat_skills",
            "--split", "train", "--val_dataset", val, "--val_split", "train", "--target_size", "30",
            "--max_new_tokens", "4", "--batch_size", "3", "--output", out, nproc=nproc)  # fmt: skip


@pytest.mark.slow
def test_torchrun_transform_equals_one_process(tiny_model_dir, tmp_path):
    val = _val_file(tmp_path)  # 10 rows: batches of 3, 3, 3, 1
    _transform(tiny_model_dir, val, tmp_path / "one" / "stat.jsonl", nproc=1)
    _transform(tiny_model_dir, val, tmp_path / "two" / "stat.jsonl", nproc=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "stat.jsonl").read_text() == (one / "stat.jsonl").read_text()
    record = Path("stat.jsonl.curation/stat/train")
    for name in ("scores.jsonl", "summary.json", "manifest.json", "stat.json"):
        assert (two / record / name).read_text() == (one / record / name).read_text(), name
    assert len(list((two / record / "batches").iterdir())) == 4


def test_a_shared_judge_receives_the_problem_and_decides_difficulty():
    from trl_ext.evaluation.judges import resolve_judge

    train, val = _data()
    seen = []

    def judge(problem, response, gold):  # the shared (prompt, candidate, gold) signature
        seen.append(problem)
        return resolve_judge("numeric_match")(problem, response, gold)

    info: dict = {}
    stat_build(
        train, val, _student("multiply"), ArithTeacher(), judge=judge, target_size=40, info=info, progress=False
    )
    # Every validation question is judged by its problem text (and Sel's teacher solutions by their pool question's).
    assert set(val["problem"]) <= set(seen) <= set(val["problem"]) | set(train["problem"])
    # Hard = exactly the validation questions that need multiplication (the mock student is off by one there).
    expected = sum("multiply" in skills_of(p) for p in val["problem"])
    assert info["stats"]["stat/n_hard"] == expected > 0
