"""TLDR (arXiv:2505.07961): the card's hand-computed cases, adversarial completions, the length levels, the
temperature-scaling and budget-forcing processors, and a GRPO run through the CLI."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import trl_ext
from trl_ext.cli import main
from trl_ext.testing import tiny_grpo_flags, train_argv
from trl_ext_plugins.tldr.config import TLDRConfig
from trl_ext_plugins.tldr.data import build
from trl_ext_plugins.tldr.decoding import (
    BudgetForcingProcessor,
    ThinkStopTemperatureProcessor,
    budget_forcing,
    think_stop_temperature,
)
from trl_ext_plugins.tldr.rewards import TLDRReward, last_boxed, level_metrics, normalize_answer
from trl_ext_plugins.tldr.transforms import add_length_levels

EOS = 2
RIGHT = "<think>\n9 * 4 = 36. 36 + 5 = 41.\n</think>\nThe answer is \\boxed{41}."
WRONG = "<think>\n9 * 4 = 35.\n</think>\nThe answer is \\boxed{40}."


def ids(length: int, finished: bool = True) -> list[int]:
    """`length` completion ids, the last one the EOS when the completion finished (TRL keeps it)."""
    return [7] * (length - 1) + [EOS if finished else 7]


def call(reward, completions, levels, lengths, answer="41", finished=True, **extra):
    n = len(completions)
    return reward(
        prompts=["p"] * n,
        completions=completions,
        completion_ids=[ids(length, finished) for length in lengths],
        answer=[answer] * n,
        length_level=levels,
        **extra,
    )


# --- card test 1: R = 1[correct] − λ_ℓ · (L / L_max) · g ---------------------------------------------------------------
def test_card_case_correct_short_is_0_95_wrong_is_0_gated_or_minus_0_05_ungated():
    gated = TLDRReward(max_completion_length=1000, eos_token_ids=[EOS])
    ungated = TLDRReward(max_completion_length=1000, eos_token_ids=[EOS], gate_on_correct=False)
    # 1 − 0.5 · 100/1000 = 0.95; wrong: 0 − 0 (gated), 0 − 0.5 · 0.1 = −0.05 (ungated)
    assert call(gated, [RIGHT, WRONG], ["short", "short"], [100, 100]) == pytest.approx([0.95, 0.0])
    assert call(ungated, [RIGHT, WRONG], ["short", "short"], [100, 100]) == pytest.approx([0.95, -0.05])
    # medium 1 − 0.2 · 0.1 = 0.98, long 1 − 0.05 · 0.1 = 0.995
    assert call(gated, [RIGHT, RIGHT], ["medium", "long"], [100, 100]) == pytest.approx([0.98, 0.995])


# --- card test 2: same o, R_short <= R_medium <= R_long --------------------------------------------------------------
@pytest.mark.parametrize("gate", [True, False])
@pytest.mark.parametrize("completion", [RIGHT, WRONG])
@pytest.mark.parametrize("length", [1, 37, 400, 1000])
def test_level_ordering(gate, completion, length):
    reward = TLDRReward(max_completion_length=1000, eos_token_ids=[EOS], gate_on_correct=gate)
    short, medium, long_ = call(reward, [completion] * 3, ["short", "medium", "long"], [length] * 3)
    assert short <= medium <= long_
    if completion == RIGHT or not gate:  # a penalty applies: strictly ordered
        assert short < medium < long_


# --- card test 3: λ = 0 for every level -> plain correctness ----------------------------------------------------------
def test_zero_strengths_give_plain_correctness():
    reward = TLDRReward(
        levels={"short": 0, "medium": 0, "long": 0}, gate_on_correct=False, max_completion_length=64, eos_token_ids=2
    )
    completions = [RIGHT, WRONG, "\\boxed{41}", "41", "\\boxed{ 41 }.", "\\boxed{4 1}"]
    correct = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]  # by hand: a \boxed{} holding 41 (spaces ignored)
    assert call(reward, completions, ["short", "medium", "long"] * 2, [5, 60, 64, 3, 9, 12]) == correct


# --- truncation: a completion without the EOS was cut at L_max, so it is wrong ----------------------------------------
def test_truncated_completions_count_as_wrong():
    with_eos = TLDRReward(max_completion_length=50, eos_token_ids=[EOS])
    assert call(with_eos, [RIGHT], ["long"], [50], finished=False) == [0.0]
    # finished exactly at L_max: not truncated; 1 − 0.05 · 50/50
    assert call(with_eos, [RIGHT], ["long"], [50], finished=True) == pytest.approx([0.95])
    without_eos = TLDRReward(max_completion_length=50)  # then L >= L_max counts as truncated
    assert call(without_eos, [RIGHT, RIGHT], ["long", "long"], [50, 49], finished=False) == pytest.approx(
        [0.0, 1 - 0.05 * 49 / 50]
    )


def test_length_ratio_is_clipped_at_one_when_l_max_is_given_too_small():
    reward = TLDRReward(max_completion_length=10, eos_token_ids=[EOS])
    assert call(reward, [RIGHT], ["short"], [20]) == pytest.approx([0.5])  # 1 − 0.5 · min(20/10, 1)


def test_lengths_come_from_a_tokenizer_without_completion_ids():
    from trl_ext.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    reward = TLDRReward(max_completion_length=1000, tokenizer=tokenizer)
    length = len(tokenizer(RIGHT, add_special_tokens=False)["input_ids"])
    out = reward(prompts=["p"], completions=[RIGHT], answer=["41"], length_level=["short"])
    assert out == pytest.approx([1 - 0.5 * length / 1000])


# --- adversarial completions ------------------------------------------------------------------------------------------
ADVERSARIAL = {
    "empty": ("", 0.0),
    "unclosed_boxed": ("\\boxed{41", 0.0),
    "boxed_then_unclosed": ("\\boxed{41} and \\boxed{4", 1.0),  # the last closed box counts
    "two_boxes_last_wrong": ("\\boxed{41} no wait \\boxed{42}", 0.0),
    "boxed_in_think_only_answer_wrong": ("<think>\\boxed{41}</think>\\boxed{40}", 0.0),
    "nested_braces": ("\\boxed{\\text{41}}", 1.0),
    "dollar_and_period": ("\\boxed{$41$.}", 1.0),
    "float_form": ("\\boxed{41.0}", 1.0),
    "other_number": ("\\boxed{410}", 0.0),
    "boxed_empty": ("\\boxed{}", 0.0),
    "huge": ("x" * 2_000_000 + "\\boxed{41}", 0.0),  # past the 65,536-character cap: never read
    "many_open_braces": ("\\boxed{" + "{" * 100_000, 0.0),
    "null_bytes": ("\x00\\boxed{41}\x00", 1.0),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_completions(name):
    text, correct = ADVERSARIAL[name]
    reward = TLDRReward(max_completion_length=100, eos_token_ids=[EOS], levels={"short": 0.0})
    assert call(reward, [text], ["short"], [10]) == [correct]


def test_garbage_items_score_zero_without_spoiling_the_batch():
    reward = TLDRReward(max_completion_length=100, eos_token_ids=[EOS])
    completions = [None, 5, [{"role": "assistant", "content": "\\boxed{41}"}], RIGHT, RIGHT, RIGHT]
    levels = ["short", "short", "short", "gigantic", None, " Long "]  # unknown and missing levels: not applicable
    out = call(reward, completions, levels, [10] * 6)
    assert out == pytest.approx([0.0, 0.0, 1 - 0.5 * 0.1, None, None, 1 - 0.05 * 0.1])


def test_unusable_gold_scores_none_never_raises():
    answers = ["41", None, "", " $ ", ["41"], True, b"41", float("nan"), "41"]
    levels = ["short"] * 8 + [["short"]]
    n = len(answers)
    for gate in (True, False):
        logged = {}
        reward = TLDRReward(max_completion_length=100, eos_token_ids=[EOS], gate_on_correct=gate)
        out = reward(
            prompts=["p"] * n,
            completions=[RIGHT] * n,
            completion_ids=[ids(10)] * n,
            answer=answers,
            length_level=levels,
            log_metric=logged.__setitem__,
        )
        assert out == pytest.approx([1 - 0.5 * 0.1] + [None] * (n - 1))
        assert logged["tldr/gold_error_rate"] == pytest.approx((n - 1) / n)
    # "answer_is" reads only numbers: a word is no gold for it; numbers given as numbers are
    answer_is = TLDRReward(max_completion_length=100, eos_token_ids=[EOS], verifier="answer_is")
    out = answer_is(
        prompts=["p"] * 3,
        completions=["The answer is 41."] * 3,
        completion_ids=[ids(10)] * 3,
        answer=["forty-one", 41, "41.0"],
        length_level=["short"] * 3,
    )
    assert out == pytest.approx([None, 0.95, 0.95])


def test_answers_normalise():
    assert normalize_answer("1,000") == normalize_answer("1000") == "1000"
    assert normalize_answer("-0") == "0" and normalize_answer("3.50") == "3.5"
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"


# --- metrics ----------------------------------------------------------------------------------------------------------
def test_per_level_metrics_and_the_short_over_long_ratio():
    logged = {}
    reward = TLDRReward(max_completion_length=100, eos_token_ids=[EOS])
    call(
        reward,
        [RIGHT, WRONG, RIGHT, RIGHT],
        ["short", "short", "long", "long"],
        [10, 30, 40, 80],
        log_metric=logged.__setitem__,
    )
    # by hand: short mean length (10+30)/2 = 20, accuracy 1/2; long mean 60, accuracy 1; ratio 20/60
    assert logged == pytest.approx(
        {
            "tldr/length_short": 20.0,
            "tldr/accuracy_short": 0.5,
            "tldr/length_long": 60.0,
            "tldr/accuracy_long": 1.0,
            "tldr/length_ratio_short_over_long": 1 / 3,
            "tldr/gold_error_rate": 0.0,
        }
    )
    summary = level_metrics([RIGHT, WRONG], ["short", "long"], [10, 30], ["41", "41"])
    assert summary == pytest.approx(
        {"tldr/length_short": 10, "tldr/accuracy_short": 1, "tldr/length_long": 30, "tldr/accuracy_long": 0}
        | {"tldr/length_ratio_short_over_long": 1 / 3}
    )


def test_reward_pickles_and_is_named_after_its_options():
    reward = trl_ext.get("reward", "tldr_length_regularized_reward").build(max_completion_length=64)
    assert reward.__name__ == "tldr_length_regularized_reward_max_completion_length-64"
    copy = pickle.loads(pickle.dumps(reward))
    assert call(copy, [RIGHT], ["short"], [32]) == call(reward, [RIGHT], ["short"], [32]) == [0.75]


def test_one_level_strength_from_the_command_line():
    reward = trl_ext.get("reward", "tldr_length_regularized_reward").build(lambda_short=1.0, max_completion_length=10)
    assert reward.config.levels == {"short": 1.0, "medium": 0.2, "long": 0.05}
    assert reward.__name__ == "tldr_length_regularized_reward_lambda_short-1.0_max_completion_length-10"
    assert TLDRReward(levels={"brief": 0.3}, lambda_brief=0.4).config.levels == {"brief": 0.4}


def test_config_validation():
    assert TLDRConfig().levels == {"short": 0.5, "medium": 0.2, "long": 0.05}
    assert TLDRConfig(levels='{"Brief": 1}').levels == {"brief": 1.0}
    with pytest.raises(ValueError, match=r"levels\['short'\]=-1"):
        TLDRConfig(levels={"short": -1})
    with pytest.raises(ValueError, match="must be a string containing"):
        TLDRConfig(level_template="Budget")
    with pytest.raises(ValueError, match="max_completion_length=0"):
        TLDRReward(max_completion_length=0)
    with pytest.raises(ValueError, match="verifier='nope' is unknown"):
        TLDRReward(verifier="nope")


# --- levels: transform and built-in dataset ---------------------------------------------------------------------------
def test_add_length_levels_is_seeded_uniform_and_appends_one_line():
    from datasets import Dataset

    rows = [{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"}]} for i in range(300)]
    out = add_length_levels(seed=3)(Dataset.from_list(rows))
    again = add_length_levels(seed=3)(Dataset.from_list(rows))
    assert out["length_level"] == again["length_level"]
    counts = {level: out["length_level"].count(level) for level in ("short", "medium", "long")}
    assert all(70 <= c <= 130 for c in counts.values()), counts  # ~100 each
    first = out[0]
    assert first["prompt"][0] == {"role": "system", "content": "s"}
    assert first["prompt"][1]["content"] == f"q0\nReasoning budget: {first['length_level']}."
    plain = add_length_levels(level="long")(Dataset.from_list([{"prompt": "2+2?"}]))
    assert plain[0] == {"prompt": "2+2?\nReasoning budget: long.", "length_level": "long"}
    with pytest.raises(ValueError, match="level='huge' is not one of levels"):
        add_length_levels(level="huge")


def test_builtin_dataset_forms():
    grpo, sft = build("grpo"), build("sft")
    assert (len(grpo["train"]), len(grpo["test"])) == (200, 60)
    assert set(grpo["train"].column_names) == {"prompt", "answer", "length_level"}
    assert set(sft["train"].column_names) == {"prompt", "completion", "answer"}
    row = grpo["train"][0]
    assert row["prompt"][-1]["content"].endswith(f"Reasoning budget: {row['length_level']}.")
    assert "Reasoning budget" not in sft["train"][0]["prompt"][-1]["content"]
    assert build("grpo")["test"][:] == grpo["test"][:]  # deterministic
    assert set(grpo["train"]["length_level"]) == {"short", "medium", "long"}
    # every SFT trace ends its thinking and boxes its row's answer
    for example in sft["train"]:
        text = example["completion"][0]["content"]
        assert text.startswith("<think>\n") and "\n</think>\n" in text
        assert text.endswith(f"\\boxed{{{example['answer']}}}.")
    lengths = {len(example["completion"][0]["content"]) for example in sft["train"]}
    assert max(lengths) > 1.5 * min(lengths)  # traces of varying length for GRPO to shape


# --- card test 4: temperature scaling of the end-of-think logit ------------------------------------------------------
E = 3


def scores_with(e_logit: float) -> torch.Tensor:
    return torch.tensor([[0.5, -1.0, 1.5, e_logit, 0.0]])


@pytest.mark.parametrize(
    "e_logit, tau, expected",
    [(2.0, 0.5, 4.0), (-2.0, 0.5, -1.0), (2.0, 1.0, 2.0), (-2.0, 1.0, -2.0), (2.0, 2.0, 1.0), (-2.0, 2.0, -4.0)],
)
def test_think_stop_temperature_rescales_only_e(e_logit, tau, expected):
    processor = ThinkStopTemperatureProcessor(E, tau_stop=tau)
    out = processor(torch.tensor([[1, 1]]), scores_with(e_logit))
    assert out[0, E].item() == pytest.approx(expected)
    others = [0, 1, 2, 4]
    assert torch.equal(out[0, others], scores_with(e_logit)[0, others])


def test_think_stop_temperature_is_inactive_after_e_per_row():
    processor = ThinkStopTemperatureProcessor(E, tau_stop=0.5)
    prompt = torch.tensor([[1, E], [1, 1]])  # an e in the prompt does not end thinking
    scores = torch.cat([scores_with(2.0), scores_with(2.0)])
    assert processor(prompt, scores)[:, E].tolist() == [4.0, 4.0]
    step = torch.cat([prompt, torch.tensor([[E], [4]])], dim=1)  # row 0 emits e
    assert processor(step, scores)[:, E].tolist() == [2.0, 4.0]
    step = torch.cat([step, torch.tensor([[4], [4]])], dim=1)
    assert processor(step, scores)[:, E].tolist() == [2.0, 4.0]  # and stays done
    # a new generate call (another length) starts over
    assert processor(torch.tensor([[1, 1, 1, 1, 1, 1, 1]]), scores_with(2.0))[0, E].item() == 4.0


def test_think_stop_temperature_global_mode_and_multi_token_marker():
    scores = scores_with(2.0)
    out = ThinkStopTemperatureProcessor(E, tau_stop=0.5, mode="global")(torch.tensor([[1]]), scores)
    assert torch.allclose(out, scores * 2)
    marker = ThinkStopTemperatureProcessor([E, 4], tau_stop=0.5)
    marker(torch.tensor([[1]]), scores)
    out = marker(torch.tensor([[1, E]]), scores)  # the marker begun: its next token is the one rescaled
    assert out[0, 4].item() == 0.0 and out[0, E].item() == 2.0
    scores4 = torch.tensor([[0.5, -1.0, 1.5, 2.0, 3.0]])
    assert marker(torch.tensor([[1, E, 1]]), scores4)[0, E].item() == 4.0  # broken off: back to the first token
    marker(torch.tensor([[1, E, 1, E]]), scores4)
    done = marker(torch.tensor([[1, E, 1, E, 4]]), scores4)  # whole marker generated: inactive
    assert torch.equal(done, scores4)


def test_processor_options_are_checked():
    with pytest.raises(ValueError, match="tau_stop=0"):
        ThinkStopTemperatureProcessor(E, tau_stop=0)
    with pytest.raises(ValueError, match="mode='warm'"):
        ThinkStopTemperatureProcessor(E, mode="warm")
    with pytest.raises(ValueError, match="budget=-1"):
        BudgetForcingProcessor(-1, E)
    with pytest.raises(ValueError, match="give end_think_token_id, or a tokenizer"):
        think_stop_temperature(tau_stop=0.5)


# --- card test 5: budget forcing, greedy on a tiny model --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from trl_ext.testing import tiny_model, tiny_tokenizer

    return tiny_model(), tiny_tokenizer()


def greedy(model, tokenizer, processors=(), new=8):
    from transformers import LogitsProcessorList

    enc = tokenizer(["Ann has 3 apples"], return_tensors="pt")
    out = model.generate(
        **enc,
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        logits_processor=LogitsProcessorList(list(processors)),
    )
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_budget_forcing_makes_the_sixth_thinking_token_e(tiny):
    model, tokenizer = tiny
    free = greedy(model, tokenizer)
    e = next(t for t in range(5, 50) if t not in free)  # a token plain greedy decoding never picks here
    forced = greedy(model, tokenizer, [BudgetForcingProcessor(5, e)])
    assert forced[:5] == free[:5] and forced[5] == e
    marker = [e, e + 1]
    forced = greedy(model, tokenizer, [BudgetForcingProcessor(5, marker)])
    assert forced[5:7] == marker
    # the same processor, reused for a second generate call, starts over
    processor = BudgetForcingProcessor(5, e)
    assert greedy(model, tokenizer, [processor]) == greedy(model, tokenizer, [processor])


def test_registered_factories_encode_the_marker_with_the_tokenizer(tiny):
    _, tokenizer = tiny
    marker = tokenizer.encode("</think>", add_special_tokens=False)
    assert think_stop_temperature(tokenizer, tau_stop=0.5).marker == marker
    assert budget_forcing(tokenizer, budget=3, end_think_token_id=9).marker == [9]
    record = trl_ext.get("logits_processor", "budget_forcing")
    assert record.build(tokenizer=tokenizer, budget=4).budget == 4


def test_generation_config_refuses_a_logits_processor():
    """The card's TRL note, checked against the installed transformers: GRPOTrainer turns `generation_kwargs` into a
    GenerationConfig, which refuses a logits processor, so TS is offered for evaluation and `trl-ext generate`."""
    from transformers import GenerationConfig

    with pytest.raises(ValueError, match="logits_processor"):
        GenerationConfig(logits_processor=[ThinkStopTemperatureProcessor(E, 0.5)])


# --- through the CLI --------------------------------------------------------------------------------------------------
def test_cli_transform_adds_levels(tmp_path):
    out = tmp_path / "levels.jsonl"
    args = [
        "transform",
        "add_length_levels",
        "--seed",
        "1",
        "--dataset_name",
        "builtin:arith",
        "--dataset_config",
        "grpo",
    ]
    assert main([*args, "--split", "test", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 200 and {r["length_level"] for r in rows} == {"short", "medium", "long"}
    assert all(r["prompt"][-1]["content"].endswith(f"Reasoning budget: {r['length_level']}.") for r in rows)


def test_cli_grpo_with_the_tldr_reward(tiny_model_dir, tmp_path, capfd):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:tldr_arith",
            "--rewards",
            "tldr_length_regularized_reward:max_completion_length=8",
            *tiny_grpo_flags(2),
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    assert "rewards/tldr_length_regularized_reward_max_completion_length-8/mean" in out
    assert "tldr/length_" in out and "tldr/accuracy_" in out


def test_cli_refuses_a_dataset_without_length_levels(tmp_path, capfd, no_model_load):
    args = ["train", "grpo", "--dataset_name", "builtin:arith", "--dataset_config", "grpo"]
    code = main([*args, "--rewards", "tldr_length_regularized_reward", "--output_dir", str(tmp_path / "x")])
    assert code != 0
    assert "length_level" in "".join(capfd.readouterr())
