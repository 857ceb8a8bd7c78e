"""RL-Struct rewards, transform and config. Expected values are the paper card's hand-computed ones (or computed by
hand in the comments), never produced by the code under test."""

from __future__ import annotations

import json
import pickle

import pytest

import trl_ext_plugins.rlstruct as rlstruct
from trl_ext.plugin.registry import Registry
from trl_ext_plugins.rlstruct.config import RLStructConfig
from trl_ext_plugins.rlstruct.rewards import (
    JSONContentReward,
    JSONFormatReward,
    JSONStructureReward,
    JSONValidityReward,
    R_content,
    R_format,
    R_struct,
    R_valid,
    RLStructReward,
    strip_fences,
    structure_metrics,
    type_matches,
)
from trl_ext_plugins.rlstruct.transforms import gsm8k_to_json_task

GSM_SCHEMA = {"reasoning": "str", "answer": "number"}

# The card's test cases: (completion, schema, gold, expected valid, format, struct, content).
CARD_CASES = {
    "1-clean": ('{"reasoning":"x","answer":42}', GSM_SCHEMA, 42, 1.0, 1.0, 1.0, 1.0),
    "2-fenced-missing-key": ('```json\n{"answer": 42}\n```', GSM_SCHEMA, 42, 1.0, 0.0, 0.75, 1.0),
    "3-wrong-type-extra-key": ('{"answer": "forty-two", "foo": 1}', GSM_SCHEMA, 42, 1.0, 1.0, 0.15, 0.0),
    "4-truncated": ('{"answer": 4', GSM_SCHEMA, 4, 0.0, 0.0, 0.0, 0.0),
}


@pytest.mark.parametrize("case", CARD_CASES.values(), ids=CARD_CASES.keys())
def test_card_cases_components(case):
    completion, schema, gold, valid, fmt, struct, content = case
    assert R_valid(completion) == valid
    assert R_format(completion) == fmt
    assert R_struct(completion, schema) == pytest.approx(struct, abs=1e-12)
    assert R_content(completion, gold, task="gsm8k_json") == content


@pytest.mark.parametrize("case", CARD_CASES.values(), ids=CARD_CASES.keys())
def test_card_cases_trl_reward_functions(case):
    completion, schema, gold, valid, fmt, struct, content = case
    kwargs = {"schema": [json.dumps(schema)], "gold": [json.dumps({"answer": gold})], "task": ["gsm8k_json"]}
    assert JSONValidityReward()(prompts=["p"], completions=[completion], **kwargs) == [valid]
    assert JSONFormatReward()(prompts=["p"], completions=[completion], **kwargs) == [fmt]
    assert JSONStructureReward()(prompts=["p"], completions=[completion], **kwargs) == [pytest.approx(struct)]
    assert JSONContentReward()(prompts=["p"], completions=[completion], **kwargs) == [content]


def test_card_case_5_nested_schema():
    # present 1; typed = child's R_struct = 0.5·1 + 0.5·0 = 0.5; R = 0.5·1 + 0.5·0.5 = 0.75.
    assert R_struct('{"a": {"b": "x"}}', {"a": {"b": int}}) == pytest.approx(0.75)
    assert R_struct('{"a": {"b": "x"}}', json.dumps({"a": {"b": "int"}})) == pytest.approx(0.75)
    assert R_struct('{"a": {"b": 3}}', {"a": {"b": "int"}}) == 1.0
    # A non-object where a sub-schema is declared gets no typed credit: 0.5·1 + 0.5·0.
    assert R_struct('{"a": 3}', {"a": {"b": "int"}}) == pytest.approx(0.5)


def test_combined_reward_is_the_weighted_sum():
    reward = RLStructReward(task="gsm8k_json")
    completions = [CARD_CASES["1-clean"][0], CARD_CASES["2-fenced-missing-key"][0], CARD_CASES["4-truncated"][0]]
    kwargs = {"schema": [GSM_SCHEMA] * 3, "gold": [42, 42, 4]}
    # 1.0·1 + 0.5·1 + 1.0·1 + 1.0·1 = 3.5 ; 1.0·1 + 0.5·0 + 1.0·0.75 + 1.0·1 = 2.75 ; all zero when truncated.
    assert reward(prompts=["p"] * 3, completions=completions, **kwargs) == pytest.approx([3.5, 2.75, 0.0])
    # format weight 0 -> case 1 loses its 0.5: 3.0.
    no_format = RLStructReward(weights={"format": 0.0}, task="gsm8k_json")
    assert no_format(prompts=["p"], completions=completions[:1], schema=[GSM_SCHEMA], gold=[42]) == [3.0]


def test_combined_reward_reads_task_column_and_gates_content():
    reward = RLStructReward()
    # Row task overrides the default "generic"; '{"answer": "42"}' is numerically right for gsm8k_json
    # (content 1) though mistyped (struct 0.5·0.5 + 0.5·0 = 0.25): 1 + 0.5 + 0.25 + 1 = 2.75.
    out = reward(prompts=["p"], completions=['{"answer": "42"}'], schema=[GSM_SCHEMA], gold=[42], task=["gsm8k_json"])
    assert out == pytest.approx([2.75])
    # Under "generic", "42" != 42 (no cross-type equality): content 0 -> 1.75.
    out = reward(prompts=["p"], completions=['{"answer": "42"}'], schema=[GSM_SCHEMA], gold=[42], task=["generic"])
    assert out == pytest.approx([1.75])


def test_non_finite_numbers_are_rejected():
    for constant in ("NaN", "Infinity", "-Infinity"):
        completion = f'{{"reasoning": "x", "answer": {constant}}}'
        assert R_valid(completion) == 0.0
        assert R_format(completion) == 0.0
        assert R_struct(completion, GSM_SCHEMA) == 0.0
    # 1e400 is JSON syntax but overflows to inf: valid, yet not a finite number -> typed 1/2, R = 0.5 + 0.25.
    assert R_valid('{"reasoning": "x", "answer": 1e400}') == 1.0
    assert R_struct('{"reasoning": "x", "answer": 1e400}', GSM_SCHEMA) == pytest.approx(0.75)
    assert not type_matches(float("nan"), "number")
    assert not type_matches(float("inf"), "float")


def test_bool_is_not_a_number():
    # present 1, typed 1/2 (answer mistyped) -> 0.75; content 0 because true has no numeric value.
    completion = '{"reasoning": "x", "answer": true}'
    assert R_struct(completion, GSM_SCHEMA) == pytest.approx(0.75)
    assert R_content(completion, 1, task="gsm8k_json") == 0.0
    assert not type_matches(True, "int")
    assert not type_matches(False, "number")
    assert type_matches(True, "bool")
    assert type_matches(3, "number") and type_matches(3.5, "number")
    assert not type_matches(3, "float")


def test_duplicate_keys_are_invalid():
    assert R_valid('{"answer": "x", "answer": 42}') == 0.0
    assert R_format('{"answer": "x", "answer": 42}') == 0.0


def test_fences_prose_and_allow_fences_option():
    assert strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fences('```\n{"a": 1}\n```') == '{"a": 1}'
    assert R_valid('Here it is:\n```json\n{"a": 1}\n```') == 0.0
    assert R_valid('{"a": 1} Hope this helps!') == 0.0
    fenced = CARD_CASES["2-fenced-missing-key"][0]
    assert JSONValidityReward(allow_fences_for_valid=False)(prompts=["p"], completions=[fenced]) == [0.0]
    assert JSONStructureReward(allow_fences_for_valid=False)(
        prompts=["p"], completions=[fenced], schema=[GSM_SCHEMA]
    ) == [0.0]
    # A JSON scalar is not an object: not valid, though it is raw JSON (the card's R_format only asks that it parse).
    assert R_valid("42") == 0.0
    assert R_format("42") == 1.0


def test_empty_object_gets_no_structure_credit():
    # present 0/2, typed 0 (no present keys) -> 0: '{}' only earns valid + format.
    assert R_struct("{}", GSM_SCHEMA) == 0.0
    assert RLStructReward()(prompts=["p"], completions=["{}"], schema=[GSM_SCHEMA], gold=[{"answer": 1}]) == [1.5]


def test_optional_keys_and_extra_key_penalty():
    schema = {"name": "str", "notes?": "str"}
    assert R_struct('{"name": "a", "notes": "b"}', schema) == 1.0
    assert R_struct('{"name": "a"}', schema) == 1.0
    # Without the "?" marker `notes` is required; with an undeclared key: 1 − 0.1 = 0.9, and 1 − 2·0.25 = 0.5.
    assert R_struct('{"name": "a", "x": 1}', {"name": "str"}) == pytest.approx(0.9)
    assert R_struct('{"name": "a", "x": 1, "y": 2}', {"name": "str"}, extra_key_penalty=0.25) == pytest.approx(0.5)
    # Clipped at 0: 0.5·1 + 0.5·0 − 0.1·6 < 0.
    assert R_struct('{"name": 1, "a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}', {"name": "str"}) == 0.0


def test_conversational_completions_score_like_strings():
    text = CARD_CASES["2-fenced-missing-key"][0]
    conversational = [[{"role": "assistant", "content": text}]]
    kwargs = {"schema": [GSM_SCHEMA], "gold": [42], "task": ["gsm8k_json"]}
    assert JSONValidityReward()(prompts=[[]], completions=conversational, **kwargs) == [1.0]
    assert JSONFormatReward()(prompts=[[]], completions=conversational, **kwargs) == [0.0]
    assert JSONStructureReward()(prompts=[[]], completions=conversational, **kwargs) == [0.75]
    assert JSONContentReward()(prompts=[[]], completions=conversational, **kwargs) == [1.0]
    assert RLStructReward()(prompts=[[]], completions=conversational, **kwargs) == [2.75]


def test_schema_and_gold_as_json_strings_or_dicts_are_identical():
    completions = ['{"reasoning": "r", "answer": 7, "extra": 1}', '{"answer": "7"}', '{"reasoning": 3}']
    as_dicts = {"schema": [GSM_SCHEMA] * 3, "gold": [{"answer": 7}] * 3, "task": ["gsm8k_json"] * 3}
    as_strings = {"schema": [json.dumps(GSM_SCHEMA)] * 3, "gold": ['{"answer": 7}'] * 3, "task": ["gsm8k_json"] * 3}
    as_scalars = {"schema": [GSM_SCHEMA] * 3, "gold": [7, "7", 7.0], "task": ["gsm8k_json"] * 3}
    for reward in (JSONStructureReward(), JSONContentReward(), RLStructReward()):
        expected = reward(prompts=["p"] * 3, completions=completions, **as_dicts)
        assert reward(prompts=["p"] * 3, completions=completions, **as_strings) == expected
        if not isinstance(reward, JSONStructureReward):
            assert reward(prompts=["p"] * 3, completions=completions, **as_scalars) == expected
    # By hand: 1 − 0.1 (one extra key) = 0.9; '{"answer": "7"}' and '{"reasoning": 3}': present 1/2, the present key
    # mistyped -> 0.5·0.5 + 0.5·0 = 0.25. Content: "7" and 7 are numerically 7; no answer -> 0.
    assert JSONStructureReward()(prompts=["p"] * 3, completions=completions, **as_dicts) == pytest.approx(
        [0.9, 0.25, 0.25]
    )
    assert JSONContentReward()(prompts=["p"] * 3, completions=completions, **as_dicts) == [1.0, 1.0, 0.0]


def test_recipe_token_f1_and_generic_exact_match():
    gold = {"name": "Tomato soup", "ingredients": ["tomato", "salt"]}
    completion = '{"name": "tomato SOUP", "ingredients": ["tomato", "pepper"]}'
    # name F1 = 1; ingredients: overlap 1 of 2 predicted and 2 gold tokens -> P = R = F1 = 0.5; mean 0.75.
    assert R_content(completion, gold, task="recipe") == pytest.approx(0.75)
    # A missing gold field scores 0: (1 + 0) / 2.
    assert R_content('{"name": "Tomato soup"}', gold, task="recipe") == pytest.approx(0.5)
    gold = {"name": "Ann", "age": 31, "city": "Oslo"}
    # name equal after strip/lower, age within 1e-6, city wrong -> 2/3.
    completion = '{"name": "  ann ", "age": 31.0000001, "city": "Bergen"}'
    assert R_content(completion, gold, task="generic") == pytest.approx(2 / 3)
    assert R_content(completion, json.dumps(gold), task="generic", numeric_tol=0.0) == pytest.approx(1 / 3)
    # Content is gated on validity.
    assert R_content('{"name": "Ann", "age": 31, "city": "Oslo"', gold, task="generic") == 0.0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="'schema'"):
        JSONStructureReward()(prompts=["p"], completions=["{}"], gold=[1])
    with pytest.raises(ValueError, match="'gold'"):
        JSONContentReward()(prompts=["p"], completions=["{}"], schema=[{}])
    with pytest.raises(ValueError, match="unknown task 'sql'"):
        JSONContentReward()(prompts=["p"], completions=["{}"], gold=[1], task=["sql"])
    with pytest.raises(ValueError, match="task='sql'"):
        RLStructReward(task="sql")
    with pytest.raises(ValueError, match="unknown type 'decimal'"):
        R_struct('{"a": 1}', {"a": "decimal"})


def test_struct_metrics_and_log_metric():
    completions = [case[0] for case in CARD_CASES.values()]
    # valid: cases 1-3 (3/4); R_struct == 1: case 1 only (1/4).
    metrics = structure_metrics(completions, [GSM_SCHEMA] * 4)
    assert metrics == {"rlstruct/valid_rate": 0.75, "rlstruct/struct_acc": 0.25}
    logged = {}
    JSONStructureReward()(
        prompts=["p"] * 4, completions=completions, schema=[GSM_SCHEMA] * 4, log_metric=logged.__setitem__
    )
    assert logged == {"rlstruct/valid_rate": 0.75, "rlstruct/struct_acc": 0.25, "rlstruct/gold_error_rate": 0.0}


def test_reward_functions_are_named_and_picklable():
    reward = RLStructReward(weights={"format": 0.25}, task="gsm8k_json")
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == "rlstruct_reward"
    assert clone.config.weights == {"valid": 1.0, "format": 0.25, "struct": 1.0, "content": 1.0}
    names = [JSONValidityReward().__name__, JSONFormatReward().__name__, JSONStructureReward().__name__]
    assert names == ["json_validity_reward", "json_format_reward", "json_structure_reward"]
    assert JSONContentReward().__name__ == "json_content_reward"


def test_gsm8k_transform():
    from datasets import Dataset

    rows = [
        {
            "question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
            "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72",
        },
        {"question": "A farm has 1,000 hens and buys 234 more. How many hens?", "answer": "#### 1,234"},
        {"question": "What is 2.5 + 2.5?", "answer": "5"},
    ]
    out = gsm8k_to_json_task()(Dataset.from_list(rows))
    assert "question" not in out.column_names
    assert {"prompt", "schema", "gold", "task"} <= set(out.column_names)
    first = out[0]
    system, user = first["prompt"]
    assert system["role"] == "system" and "JSON" in system["content"]
    assert '{"reasoning": "<steps>", "answer": <number>}' in system["content"]
    assert user == {"role": "user", "content": rows[0]["question"]}
    assert json.loads(first["schema"]) == {"reasoning": "str", "answer": "number"}
    assert [json.loads(g) for g in out["gold"]] == [{"answer": 72}, {"answer": 1234}, {"answer": 5}]
    assert out["task"] == ["gsm8k_json"] * 3
    # The transformed rows feed the rewards directly: a right answer scores 1 + 0.5 + 1 + 1.
    reward = RLStructReward()
    score = reward(
        prompts=[first["prompt"]],
        completions=['{"reasoning": "48 + 24", "answer": 72}'],
        schema=[first["schema"]],
        gold=[first["gold"]],
        task=[first["task"]],
    )
    assert score == [3.5]


def test_gsm8k_transform_conversational_prompt_and_bad_answer():
    from datasets import Dataset

    rows = [{"prompt": [{"role": "user", "content": "1 + 1?"}], "answer": 2}]
    out = gsm8k_to_json_task(system_prompt="JSON only.")(Dataset.from_list(rows))
    assert out[0]["prompt"] == [{"role": "system", "content": "JSON only."}, {"role": "user", "content": "1 + 1?"}]
    assert json.loads(out[0]["gold"]) == {"answer": 2}
    with pytest.raises(ValueError, match="numeric answer"):
        gsm8k_to_json_task()(Dataset.from_list([{"question": "q", "answer": "#### many"}]))


def test_registry_exposes_the_components():
    registry = Registry()
    info = registry.add_plugin(rlstruct, "rlstruct")
    assert info.status == "ok", info.error
    structure = registry.get("reward", "json_structure")
    assert structure.required_columns == ("schema",)
    assert structure.paper.arxiv == "2512.00319"
    reward = structure.build()
    assert reward.__name__ == "json_structure_reward"
    assert reward(prompts=["p"], completions=['{"answer": 42}'], schema=[GSM_SCHEMA]) == [0.75]
    assert registry.get("reward", "json_content").required_columns == ("gold",)
    assert registry.get("reward", "json_validity").required_columns == ()
    assert registry.get("reward", "json_format").required_columns == ()
    combined = registry.get("reward", "rlstruct").build(task="gsm8k_json", extra_key_penalty=0.2)
    assert combined.config.extra_key_penalty == 0.2
    assert {r.name for r in registry.components("reward", family="grpo-reward")} == {
        "json_validity",
        "json_format",
        "json_structure",
        "json_content",
        "rlstruct",
    }
    transform = registry.get("transform", "gsm8k_to_json_task")
    assert callable(transform.build())
    assert "Hu, Ruike" in rlstruct.PAPER.citation


def test_config_defaults_and_validation():
    config = RLStructConfig()
    assert config.weights == {"valid": 1.0, "format": 0.5, "struct": 1.0, "content": 1.0}
    assert (config.extra_key_penalty, config.allow_fences_for_valid, config.numeric_tol) == (0.1, True, 1e-6)
    assert RLStructConfig(weights='{"struct": 2}').weights["struct"] == 2.0
    with pytest.raises(ValueError, match=r"weights has unknown key\(s\) 'structure'.*allowed keys: valid"):
        RLStructConfig(weights={"structure": 1.0})
    with pytest.raises(ValueError, match=r"weights\['format'\]=-1"):
        RLStructConfig(weights={"format": -1})
    with pytest.raises(ValueError, match=r"extra_key_penalty=-0.1 must be a finite number >= 0"):
        RLStructConfig(extra_key_penalty=-0.1)
    with pytest.raises(ValueError, match=r"numeric_tol=nan"):
        RLStructConfig(numeric_tol=float("nan"))
    with pytest.raises(ValueError, match=r"allow_fences_for_valid='yes' must be True or False"):
        RLStructConfig(allow_fences_for_valid="yes")
    with pytest.raises(ValueError, match="weights=.*not valid JSON"):
        RLStructConfig(weights="{bad")
    with pytest.raises(ValueError, match="extra_key_penalty"):
        JSONStructureReward(extra_key_penalty=-1)


def test_long_digit_strings_are_rejected_in_linear_time():
    # A regex that splits the digit run two ways (`\d+\.?\d*`) backtracks quadratically: on 200k digits that do not end
    # like a number it would run for tens of minutes instead of failing at once.
    from trl_ext_plugins.rlstruct.rewards import numeric_value

    assert numeric_value("1" * 200_000 + "x") is None
    assert numeric_value("1" * 300) == float("1" * 300) and numeric_value("1" * 400) is None  # 1.1e299; inf
    assert numeric_value("-1.5e3") == -1500.0 and numeric_value("2.") == 2.0 and numeric_value(".5") == 0.5
    completion = '{"answer": "' + "1" * 200_000 + 'x"}'  # capped by the toolkit, then rejected: content 0
    assert JSONContentReward(task="gsm8k_json")(prompts=["p"], completions=[completion], gold=[5]) == [0.0]


def test_builds_with_options_log_under_their_own_names():
    registry = Registry()
    registry.add_plugin(rlstruct, "rlstruct")
    validity = registry.get("reward", "json_validity")
    names = [validity.build().__name__, validity.build(allow_fences_for_valid=False).__name__]
    assert names == ["json_validity_reward", "json_validity_reward_no_allow_fences_for_valid"]
    content = registry.get("reward", "json_content").build(task="recipe")
    assert content.__name__ == "json_content_reward_task-recipe" and content.task == "recipe"
    # Garbage completions score 0.0 and a malformed schema row (None: not applicable) does not stop the batch; the
    # last row has no required keys (present = typed = 1) and one extra key: 1 - 0.1 = 0.9.
    out = JSONStructureReward()(prompts=["p"] * 3, completions=[None, '{"a": 1}', '{"a": 1}'], schema=[{}, 3, {}])
    assert out == [0.0, None, pytest.approx(0.9)]


def test_unusable_schema_or_gold_scores_none_never_raises():
    good = '{"reasoning": "add", "answer": 42}'
    bad_schemas = [None, 3, "", "{not json", '{"a": "decimal"}', ["str"], "[" * 100_000 + "]" * 100_000]
    bad_golds = [None, "", "   ", "null", "[1, 2]", ["a"], b"42", float("nan"), "[" * 100_000 + "]" * 100_000]
    n_schema, n_gold = 1 + len(bad_schemas), 1 + len(bad_golds)
    trl = {"log_metric": lambda k, v: logged.__setitem__(k, v)}
    logged = {}
    out = JSONStructureReward()(
        prompts=["p"] * n_schema, completions=[good] * n_schema, schema=[GSM_SCHEMA, *bad_schemas], **trl
    )
    assert out == [1.0] + [None] * len(bad_schemas)
    assert logged["rlstruct/gold_error_rate"] == pytest.approx(len(bad_schemas) / n_schema)
    out = JSONContentReward()(prompts=["p"] * n_gold, completions=[good] * n_gold, gold=[42, *bad_golds], **trl)
    assert out == [1.0] + [None] * len(bad_golds)
    # gsm8k_json needs a numeric answer; a dict without one, or a word, is no gold for it
    gsm = JSONContentReward(task="gsm8k_json")
    assert gsm(prompts=["p"] * 4, completions=[good] * 4, gold=["42", {"x": 1}, "forty", {"answer": "?"}]) == [
        1.0,
        None,
        None,
        None,
    ]
    total = RLStructReward()
    schemas = [GSM_SCHEMA, 3, GSM_SCHEMA, None]
    golds = [42, 42, None, None]
    assert total(prompts=["p"] * 4, completions=[good] * 4, schema=schemas, gold=golds, **trl) == [3.5] + [None] * 3
    assert logged["rlstruct/gold_error_rate"] == pytest.approx(3 / 4)
