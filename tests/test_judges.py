"""The shared judges (`trl_ext.evaluation.judges`): each built-in on hand-computed cases, the sandboxed unit-test
judge never running code in this process, the model judge batched, and the name / import-path / callable
resolution the transforms use."""

import builtins

import pytest

from trl_ext.evaluation.judges import (
    JUDGES,
    JudgeError,
    LLMEquivalence,
    PythonUnittest,
    exact_match,
    extract_code,
    final_number,
    is_yes,
    judge_all,
    judge_name,
    normalize_text,
    numeric_match,
    resolve_judge,
)

# ---- numeric_match -------------------------------------------------------------------------------------------------


def test_numeric_match_card_cases():
    assert numeric_match("q", "The answer is 1,234.", "#### 1234") is True
    assert numeric_match("q", "12.5", "12.50") is True
    assert numeric_match("q", "13", "12") is False


@pytest.mark.parametrize(
    "text, number",
    [
        ("Step 1: 3 + 4 = 7\n#### 7", 7.0),  # GSM8K's gold marker
        ("#### 1,000,000", 1_000_000.0),
        ("It costs $1,234.50 in total.", 1234.5),  # $ and the comma dropped
        ("The answer is 7. Check: 7 + 1 = 8.", 7.0),  # "answer is" wins over the last number
        ("First 5, then 10, so 15", 15.0),  # else the last number
        ("The answer is -3.", -3.0),
        ("no digits here", None),
        (42, 42.0),
        (2.5, 2.5),
        ("", None),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_numeric_match_tolerance_and_missing_numbers():
    assert numeric_match("q", "0.1000001", "0.1") is True  # |diff| = 1e-7 <= 1e-6
    assert numeric_match("q", "0.100002", "0.1") is False  # |diff| = 2e-6
    assert numeric_match("q", "I don't know", "#### 3") is False
    assert numeric_match("q", "3", "no number") is False
    assert numeric_match("q", [{"role": "assistant", "content": "The answer is 12."}], 12) is True
    assert numeric_match("q", "1,2,3", "123") is False  # not a thousands separator: the last number is 3


# ---- exact_match ---------------------------------------------------------------------------------------------------


def test_exact_match_normalises_case_punctuation_and_articles():
    assert normalize_text("  The Eiffel   Tower! ") == "eiffel tower"
    assert exact_match("q", "The Eiffel Tower.", "eiffel tower") is True
    assert exact_match("q", "Paris", ["London", "paris"]) is True
    assert exact_match("q", "Paris, France", "Paris") is False
    assert exact_match("q", "", "Paris") is False


def test_contains_finds_the_gold_as_whole_words():
    from trl_ext.compare.metrics import parse_metric
    from trl_ext.evaluation.judges import contains

    assert contains("q", "The capital of Peru is Lima.", "Lima") is True
    assert contains("q", "I think it is the city of New  York!", "new york") is True  # normalised both sides
    assert contains("q", "Limassol", "Lima") is False  # whole words, not a substring
    assert contains("q", "Paris", ["London", "paris"]) is True
    assert contains("q", "anything", "") is False and contains("q", "", "Lima") is False
    assert resolve_judge("contains") is contains
    assert parse_metric("contains").name == "contains"  # --eval contains in trl-ext compare


# ---- python_unittest (sandboxed) -----------------------------------------------------------------------------------


def test_extract_code():
    assert extract_code("Here:\n```python\ndef f(x):\n    return x\n```\nDone.") == "def f(x):\n    return x"
    assert extract_code("def g(): pass") == "def g(): pass"


def test_python_unittest_runs_in_the_sandbox():
    judge = PythonUnittest(per_item_timeout=2.0)
    tests = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "def add(a, b):\n    return a - b"
    loops = "def add(a, b):\n    while True:\n        pass"
    # Code that would mark this process if it ran here, and passes its test in the sandbox.
    marker = "import builtins\nbuiltins.S3FT_JUDGE_RAN_HERE = 1\ndef add(a, b):\n    return a + b"
    verdicts = judge.batch(["q"] * 5, [good, wrong, loops, marker, good], [tests, tests, tests, tests, []])
    assert verdicts == [True, False, False, True, False]  # no tests: nothing verified it
    assert not hasattr(builtins, "S3FT_JUDGE_RAN_HERE")
    assert judge("q", good, "assert add(2, 2) == 4\nassert add(0, 0) == 0") is True  # tests as lines of a string


# ---- llm_equivalence -----------------------------------------------------------------------------------------------


def test_is_yes():
    assert [is_yes(r) for r in ["Yes.", " yes, they match", "YES", "No", "yesterday", "", "Maybe yes"]] == [
        True, True, True, False, False, False, False,
    ]  # fmt: skip


def test_llm_equivalence_with_a_callable_is_batched():
    calls = []

    def fake_judge(texts):
        calls.append(list(texts))
        return ["Yes" if "Paris" in t.split("Candidate answer:")[1] else "No" for t in texts]

    judge = LLMEquivalence(generate_fn=fake_judge)
    prompts = [[{"role": "user", "content": "Capital of France?"}]] * 3
    verdicts = judge_all(judge, prompts, ["It is Paris.", "Lyon", "paris? no: Paris"], ["Paris"] * 3)
    assert verdicts == [True, False, True]
    assert len(calls) == 1 and len(calls[0]) == 3  # one batched call
    assert "Capital of France?" in calls[0][0] and "Reference answer:\nParis" in calls[0][0]
    assert "Candidate answer:\nLyon" in calls[0][1]
    with pytest.raises(ValueError, match="needs a judge"):
        LLMEquivalence()


def test_llm_equivalence_with_a_model(tiny_model_dir):
    from trl_ext.models import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    judge = resolve_judge("llm_equivalence", model=model, tokenizer=tok, max_new_tokens=2, batch_size=2)
    verdicts = judge.batch(["q1", "q2", "q3"], ["a", "b", "c"], ["a", "x", "c"])
    assert len(verdicts) == 3 and all(isinstance(v, bool) for v in verdicts)


# ---- judge_all and resolve_judge -----------------------------------------------------------------------------------


def test_judge_all_uses_batch_when_present_and_checks_lengths():
    class Counting:
        def __init__(self):
            self.batches = self.single = 0

        def __call__(self, prompt, candidate, gold):
            self.single += 1
            return candidate == gold

        def batch(self, prompts, candidates, golds):
            self.batches += 1
            return [c == g for c, g in zip(candidates, golds, strict=True)]

    judge = Counting()
    assert judge_all(judge, ["p", "p"], ["a", "b"], ["a", "a"]) == [True, False]
    assert (judge.batches, judge.single) == (1, 0)
    assert judge_all(lambda p, c, g: c == g, ["p", "p"], ["a", "b"], ["a", "a"]) == [True, False]
    assert judge_all(judge, [], [], []) == []
    with pytest.raises(ValueError):
        judge_all(judge, ["p"], ["a", "b"], ["a", "a"])


def test_resolve_judge_names_paths_and_callables():
    assert resolve_judge("numeric_match") is numeric_match
    assert resolve_judge("exact_match") is exact_match
    assert resolve_judge("trl_ext.evaluation.judges:numeric_match") is numeric_match
    unittest = resolve_judge("python_unittest", per_item_timeout=1.5)
    assert isinstance(unittest, PythonUnittest) and unittest.per_item_timeout == 1.5
    built = resolve_judge("trl_ext.evaluation.judges:PythonUnittest", per_item_timeout=3.0)
    assert isinstance(built, PythonUnittest) and built.per_item_timeout == 3.0

    def mine(prompt, candidate, gold):
        return True

    assert resolve_judge(mine) is mine
    assert judge_name(resolve_judge("numeric_match")) == "numeric_match"
    assert judge_name(unittest) == "python_unittest"
    assert judge_name(mine).endswith(":test_resolve_judge_names_paths_and_callables.<locals>.mine")
    assert set(JUDGES) == {"exact_match", "contains", "numeric_match", "python_unittest", "llm_equivalence"}


def test_resolve_judge_refuses_what_it_cannot_use():
    with pytest.raises(JudgeError, match="Did you mean 'numeric_match'"):
        resolve_judge("numeric_matc")
    with pytest.raises(JudgeError, match="could not be imported"):
        resolve_judge("trl_ext.evaluation.judges:no_such_judge")
    with pytest.raises(JudgeError, match="takes no options"):
        resolve_judge("numeric_match", tolerance=1.0)
    with pytest.raises(JudgeError, match="Options"):
        resolve_judge(numeric_match, tolerance=1.0)
