"""The built-in datasets: deterministic, splits disjoint, answers right (checked independently of the generator)."""

from __future__ import annotations

import json
import operator
import re

import pytest

from trl_ext.data import arith, candidates, json_extract

EQUATION = re.compile(r"(\d+) ?([-+*/]) ?(\d+) ?= ?(\d+)")
PY_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
TYPES = {"str": str, "int": int, "float": float, "number": (int, float), "bool": bool, "list": list, "dict": dict}


def _user_text(prompt: list[dict]) -> str:
    return next(m["content"] for m in prompt if m["role"] == "user")


def _check_equations(question: str, text: str) -> int:
    """Every equation in `text` holds, uses numbers from the question or earlier results, and chains to the end."""
    given = {int(n) for n in re.findall(r"\d+", question)}
    equations = EQUATION.findall(text)
    assert equations, text
    for a, op, b, c in equations:
        a, b, c = int(a), int(b), int(c)
        assert PY_OPS[op](a, b) == c, text
        assert a in given and b in given, (question, text)
        given.add(c)
    return int(equations[-1][3])


@pytest.mark.parametrize(
    "build,form",
    [
        (arith.build, "sft"),
        (arith.build, "grpo"),
        (arith.build, "dpo"),
        (arith.build_preferences, "dpo"),
        (json_extract.build, "grpo"),
        (json_extract.build, "sft"),
        (candidates.build, "grouped"),
        (candidates.build, "long"),
    ],
)
def test_deterministic_and_splits_disjoint(build, form):
    first = build(form=form, seed=3, n_train=120, n_test=40)
    assert first["train"].to_list() == build(form=form, seed=3, n_train=120, n_test=40)["train"].to_list()
    assert first["test"].to_list() == build(form=form, seed=3, n_train=120, n_test=40)["test"].to_list()
    assert first["train"].to_list() != build(form=form, seed=4, n_train=120, n_test=40)["train"].to_list()
    train = {_user_text(p) for p in first["train"]["prompt"]}
    test = {_user_text(p) for p in first["test"]["prompt"]}
    assert test and not train & test
    if form != "long":
        assert (len(first["train"]), len(first["test"])) == (120, 40)


def test_arith_sft_answers_are_right():
    ds = arith.build("sft", n_train=2000, n_test=200)
    assert ds["train"].column_names == ["prompt", "completion", "answer"]
    for row in ds["train"].to_list() + ds["test"].to_list():
        text = row["completion"][0]["content"]
        assert row["completion"][0]["role"] == "assistant" and row["prompt"][0]["role"] == "user"
        assert row["prompt"][0]["content"].endswith(arith.INSTRUCTION)
        assert arith.extract_answer(text) == row["answer"]
        assert _check_equations(row["prompt"][0]["content"], text) == int(row["answer"])
        assert 0 <= int(row["answer"]) < 1000
    assert {len(EQUATION.findall(c[0]["content"])) for c in ds["train"]["completion"]} == {1, 2}  # one and two steps


def test_arith_dpo_rejected_is_wrong():
    ds = arith.build("dpo", n_train=300, n_test=10)
    assert ds["train"].column_names == ["prompt", "chosen", "rejected"]
    for row in ds["train"]:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        assert arith.extract_answer(rejected) != arith.extract_answer(chosen)
        assert int(arith.extract_answer(rejected)) >= 0
        assert _check_equations(row["prompt"][0]["content"], chosen) == int(arith.extract_answer(chosen))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("So 1,000 + 250 = 1250. The answer is 1,250.", "1250"),
        ("x = 3.0", "3"),
        ("The answer is 2.50", "2.5"),
        ("The answer is 4. Wait, the answer is 5.", "5"),
        ("I got 12, then 40", "40"),
        ("The answer is -7.", "-7"),
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert arith.extract_answer(text) == expected


def test_is_correct():
    assert arith.is_correct("3 + 4 = 7. The answer is 7.", "7")
    assert arith.is_correct("The answer is 7.0", "7")
    assert not arith.is_correct("3 + 4 = 8. The answer is 8.", "7")
    assert not arith.is_correct("I don't know.", "7")


def _conforms(value, schema) -> bool:
    if isinstance(schema, dict):
        return (
            isinstance(value, dict)
            and set(value) == set(schema)
            and all(_conforms(value[k], schema[k]) for k in schema)
        )
    return isinstance(value, TYPES[schema]) and (schema == "bool" or not isinstance(value, bool))


def test_json_extract_gold_matches_schema():
    ds = json_extract.build("sft", n_train=400, n_test=100)
    assert ds["train"].column_names == ["prompt", "schema", "gold", "task", "completion"]
    assert set(json_extract.build("grpo", n_train=8, n_test=4)["train"].column_names) == {
        "prompt",
        "schema",
        "gold",
        "task",
    }
    nested = False
    for split in ("train", "test"):
        assert set(ds[split]["task"]) == {"generic", "gsm8k_json"}
        for row in ds[split]:
            schema, gold = json.loads(row["schema"]), json.loads(row["gold"])
            completion = json.loads(row["completion"][0]["content"])
            assert row["prompt"][0] == {"role": "system", "content": json_extract.SYSTEM_PROMPT}
            assert f"Schema: {row['schema']}\nText: " in _user_text(row["prompt"])
            nested |= any(isinstance(v, dict) for v in schema.values())
            if row["task"] == "generic":
                assert _conforms(gold, schema) and completion == gold
            else:
                assert schema == {"reasoning": "str", "answer": "number"} and set(gold) == {"answer"}
                assert _conforms(completion, schema) and completion["answer"] == gold["answer"]
                question = _user_text(row["prompt"]).split("Text: ", 1)[1]
                assert _check_equations(question, completion["reasoning"]) == gold["answer"]
    assert nested


def test_candidates_one_wrong_per_question():
    grouped = candidates.build("grouped", n_train=100, n_test=20)
    for row in grouped["train"].to_list() + grouped["test"].to_list():
        assert sorted(row["candidate_sources"]) == sorted(candidates.SOURCES)
        for text, source in zip(row["candidates"], row["candidate_sources"], strict=True):
            assert (arith.extract_answer(text) == row["answer"]) == (source != "wrong"), (source, text)
            if source == "terse":
                assert len(text) < min(len(t) for t in row["candidates"] if t != text)
            if source == "verbose":
                assert len(text) > 2 * len(row["candidates"][row["candidate_sources"].index("gold")])


def test_candidates_long_matches_grouped():
    grouped = candidates.build("grouped", n_train=60, n_test=10)
    long = candidates.build("long", n_train=60, n_test=10)
    for split in ("train", "test"):
        pairs = {(_user_text(r["prompt"]), c) for r in grouped[split] for c in r["candidates"]}
        rows = long[split].to_list()
        assert len(rows) == len(pairs) == 4 * len(grouped[split])
        assert {(_user_text(r["prompt"]), r["completion"]) for r in rows} == pairs
        by_id = {}
        for r in rows:
            by_id.setdefault(r["prompt_id"], set()).add((_user_text(r["prompt"]), r["answer"]))
        assert len(by_id) == len(grouped[split]) and all(len(v) == 1 for v in by_id.values())


def test_unknown_form_is_an_error():
    with pytest.raises(ValueError, match="no form"):
        arith.build("ppo")


def test_load_through_registry():
    from trl_ext.data import load_dataset

    ds = load_dataset("builtin:arith", form="grpo")
    assert ds["train"].column_names == ["prompt", "answer"]
    assert (len(ds["train"]), len(ds["test"])) == (2000, 200)
    assert load_dataset("builtin:arith_prefs", form="sft")["train"].column_names == ["prompt", "chosen", "rejected"]
    assert "candidates" in load_dataset("builtin:arith_candidates")["train"].column_names
    assert load_dataset("builtin:json_extract", form="sft")["test"].column_names[-1] == "completion"
