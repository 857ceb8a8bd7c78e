"""CLS-RL / No-Thinking-CLS-RL: the card's hand-computed cases, adversarial completions, the prompt transform, the
CLIP zero-shot baseline on a tiny random CLIP loaded by path, and GRPO runs through the CLI."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset

import trl_ext
from trl_ext.cli import main
from trl_ext.rewards import RewardSetupError
from trl_ext.testing import save_tiny_dual_encoder
from trl_ext_plugins.clsrl import ClsRLConfig, build_cls_prompts
from trl_ext_plugins.clsrl.scoring import think_answer_mismatch

ROOT = Path(__file__).resolve().parents[2]
THINK_SUFFIX = "\n Please output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
NO_THINK_SUFFIX = "\n Please directly output the answer."


def reward(name, **options):
    return trl_ext.get("reward", name).build(**options)


def call(name, completions, solutions, options=None, **columns):
    return reward(name, **(options or {}))(None, completions, solution=solutions, **columns)


# --- card tests 1-4 ------------------------------------------------------------------------------------------------
def test_card_1_accuracy_and_format_of_a_good_completion_total_two():
    o = "<think>x</think><answer> Golden Retriever </answer>"
    acc = call("cls_accuracy_reward", [o], ["golden retriever"])
    fmt = reward("cls_format_reward")(None, [o])
    assert acc == [1.0] and fmt == [1.0] and acc[0] + fmt[0] == 2.0


def test_card_2_format_order_and_whitespace():
    fmt = reward("cls_format_reward")
    assert fmt(None, ["<answer>a</answer><think>b</think>", "<think>a</think>\n\n<answer>b</answer>"]) == [0.0, 1.0]


def test_card_3_no_think_equality_official_and_normalized():
    assert call("cls_equality_reward", ["cat", "cat ", "Cat"], ["cat"] * 3) == [1.0, 0.0, 0.0]
    assert call("cls_equality_reward", ["cat", "cat ", "Cat"], ["cat"] * 3, {"eq_normalize": True}) == [1.0] * 3


def test_card_4_wrapped_solution_is_unwrapped():
    assert call("cls_equality_reward", ["cat", "dog"], ["<answer>cat</answer>"] * 2) == [1.0, 0.0]
    assert call(
        "cls_accuracy_reward", ["<answer>CAT</answer>", "<answer>dog</answer>"], ["<answer> cat </answer>"] * 2
    ) == [
        1.0,
        0.0,
    ]


# --- card test 5: advantages in TRL's GRPOTrainer as configured for the official run --------------------------------
def test_card_5_advantages_of_one_correct_in_four(tmp_path, tiny_model_dir):
    from trl import GRPOConfig, GRPOTrainer

    seen = []

    class Recording(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            seen.append(inputs["advantages"].detach().clone())
            return super().compute_loss(model, inputs, *args, **kwargs)

    def first_of_group(completions, **kwargs):
        return [1.0 if i % 4 == 0 else 0.0 for i in range(len(completions))]

    config = GRPOConfig(
        output_dir=str(tmp_path),
        loss_type="grpo",
        beta=0.04,
        scale_rewards="group",
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=4,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
    )
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "Pick one: cat or dog?"}]}] * 4)
    Recording(
        model=tiny_model_dir,
        reward_funcs=first_of_group,
        args=config,
        train_dataset=data,
    ).train()
    # by hand: mean 0.25, unbiased std sqrt((0.75² + 3·0.25²)/3) = 0.5, A = (r - 0.25)/(0.5 + 1e-4)
    expected = torch.tensor([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])
    advantages = seen[0].flatten().sort(descending=True).values  # TRL shuffles the batch after scoring it
    assert torch.allclose(advantages, expected, atol=1e-5)
    assert advantages[0] == pytest.approx(1.5, abs=1e-3)


# --- card test 6: the transform ------------------------------------------------------------------------------------
def test_card_6_transform_appends_the_official_suffixes():
    rows = Dataset.from_list([{"class_names": ["golden retriever", "tabby cat"], "label": 1}])
    question = "What type of object is in the photo? Please choose one from list [ golden retriever, tabby cat]"
    think = build_cls_prompts()(rows)[0]
    no_think = build_cls_prompts(mode="no_think")(rows)[0]
    assert think["prompt"] == [{"role": "user", "content": question + THINK_SUFFIX}]
    assert no_think["prompt"] == [{"role": "user", "content": question + NO_THINK_SUFFIX}]
    assert think["solution"] == no_think["solution"] == "<answer>tabby cat</answer>"


def test_transform_uses_question_context_label_names_and_bounds_the_prompt():
    by_name = Dataset.from_list([{"class_names": ["a", "b"], "label": "b", "context": "It barks."}])
    by_index = Dataset.from_list([{"class_names": ["a", "b"], "label": 0, "question": "Own question?"}])
    transform = build_cls_prompts(mode="no_think", question_template="Pick {classes}!")
    out = [transform(by_name)[0], transform(by_index)[0]]
    assert out[0]["prompt"][0]["content"] == "It barks.\nPick a, b!" + NO_THINK_SUFFIX
    assert out[1]["prompt"][0]["content"] == "Own question?" + NO_THINK_SUFFIX
    assert [row["solution"] for row in out] == ["<answer>b</answer>", "<answer>a</answer>"]
    with pytest.raises(ValueError, match="max_prompt_chars"):
        build_cls_prompts(max_prompt_chars=50)(Dataset.from_list([{"class_names": ["x" * 60], "label": 0}]))
    with pytest.raises(ValueError, match="not an index"):
        build_cls_prompts()(Dataset.from_list([{"class_names": ["x"], "label": 3}]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "thinking"),
        ("eq_normalize", "yes"),
        ("question_template", "no placeholder"),
        ("answer_tag", "a b"),
        ("max_prompt_chars", 0),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ClsRLConfig(**{field: value})


# --- the official regexes and adversarial completions -----------------------------------------------------------
def test_answer_span_is_single_line_as_official():
    # no DOTALL: a multi-line answer span is not found, so the whole stripped completion is compared
    assert call("cls_accuracy_reward", ["<answer>cat\n</answer>", "<answer>\ncat</answer>"], ["cat"] * 2) == [0.0, 0.0]
    assert call("cls_accuracy_reward", ["  cat\n", "<answer>cat</answer><answer>dog</answer>"], ["cat"] * 2) == [
        1.0,
        1.0,
    ]
    assert call("cls_accuracy_reward", ["<answer>dog</answer><answer>cat</answer>"], ["cat"]) == [0.0]  # first span


def test_format_needs_the_whole_completion():
    fmt = reward("cls_format_reward")
    cases = {
        "<think>a\nb</think> <answer>c\nd</answer>": 1.0,  # DOTALL: spans may hold newlines
        "x<think>a</think><answer>b</answer>": 0.0,
        "<think>a</think><answer>b</answer>\n": 0.0,
        "<think>a</think>text<answer>b</answer>": 0.0,
        "<think></think><answer></answer>": 1.0,
        "<think>a</think><answer>b</answer><answer>c</answer>": 1.0,  # non-greedy spans, as the official regex
    }
    assert fmt(None, list(cases)) == list(cases.values())


def test_garbage_completions_score_zero_without_raising():
    garbage = [
        "",
        None,
        5,
        b"cat",
        [{"role": "user", "content": "cat"}],
        "<answer>" * 10_000,
        "\x00" * 100_000,
        [{"role": "assistant", "content": "cat"}],
    ]
    for name in ("cls_accuracy_reward", "cls_equality_reward"):
        out = call(name, garbage, ["cat"] * len(garbage))
        assert out == [0.0] * 7 + [1.0], name  # the last is a conversational completion whose text is "cat"
    assert reward("cls_format_reward")(None, garbage) == [0.0] * len(garbage)
    assert call("cls_equality_reward", ["cat"], [None]) == [None]  # a solution that is not text: not applicable


def test_unusable_gold_scores_none_never_raises():
    # TRL-style call: a valid row, then rows whose gold cannot be used (not text, empty, a class not in class_names)
    bad = [None, 5, ["cat"], "", "<answer> </answer>", "lion"]
    solutions = ["cat", *bad]
    completions = ["<think>x</think><answer>cat</answer>"] * len(solutions)
    classes = [["cat", "dog"]] * len(solutions)
    for name in ("cls_accuracy_reward", "cls_equality_reward"):
        logged = {}
        out = reward(name)(
            prompts=["p"] * len(solutions),
            completions=completions if name == "cls_accuracy_reward" else ["cat"] * len(solutions),
            completion_ids=[[1, 2]] * len(solutions),
            solution=solutions,
            class_names=classes,
            log_metric=lambda k, v, logged=logged: logged.__setitem__(k, v),
        )
        assert out == [1.0] + [None] * len(bad), name
        assert logged["cls/gold_error_rate"] == pytest.approx(len(bad) / len(solutions))
    # without class names any non-empty class is usable gold
    assert call("cls_accuracy_reward", ["<answer>lion</answer>"], ["lion"]) == [1.0]


def test_missing_solution_column_is_a_setup_error():
    with pytest.raises(RewardSetupError, match="solution"):
        reward("cls_equality_reward")(None, ["cat"])


def test_custom_answer_tag_and_symbolic_verify_option():
    assert call("cls_accuracy_reward", ["<label>cat</label>"], ["<label>cat</label>"], {"answer_tag": "label"}) == [
        1.0
    ]
    assert reward("cls_format_reward", answer_tag="label")(None, ["<think>a</think><label>b</label>"]) == [1.0]
    # R1-V's symbolic check first: 1/2 and 0.5 are the same number, which the string rule alone misses
    assert call("cls_accuracy_reward", ["$\\frac{1}{2}$"], ["$0.5$"]) == [0.0]
    assert call("cls_accuracy_reward", ["$\\frac{1}{2}$"], ["$0.5$"], {"use_symbolic_verify": True}) == [1.0]


def test_think_answer_mismatch_by_hand():
    names = ["golden retriever", "retriever", "cat"]
    assert think_answer_mismatch("<think>it is a cat</think><answer>cat</answer>", names) == 0.0
    assert think_answer_mismatch("<think>cat? no, a golden retriever</think><answer>cat</answer>", names) == 1.0
    # the longer name wins where two end together
    assert think_answer_mismatch("<think>a golden retriever</think><answer>golden retriever</answer>", names) == 0.0
    assert think_answer_mismatch("<think>a concatenation</think><answer>cat</answer>", names) is None  # word bounds
    assert think_answer_mismatch("<answer>cat</answer>", names) is None
    assert think_answer_mismatch("<think>cat</think><answer>lion</answer>", names) is None


def test_metrics_are_logged():
    logged = {}
    out = reward("cls_accuracy_reward")(
        None,
        ["<think>a cat</think><answer>dog</answer>", "<think>a dog</think><answer>dog</answer>", "lion"],
        completion_ids=[[1, 2, 3], [1], [1, 2]],
        solution=["dog"] * 3,
        class_names=[["cat", "dog"]] * 3,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [1.0, 1.0, 0.0]
    assert logged["cls/think_answer_mismatch"] == 0.5  # 1 of the 2 completions it applies to
    assert logged["cls/completion_tokens"] == 2.0 and logged["cls/answer_in_classes"] == pytest.approx(2 / 3)


def test_rewards_are_picklable_with_distinct_names():
    plain, normalized = reward("cls_equality_reward"), reward("cls_equality_reward", eq_normalize=True)
    assert plain.__name__ == "cls_equality_reward" and normalized.__name__ != plain.__name__
    copy = pickle.loads(pickle.dumps(normalized))
    assert copy(None, ["Cat "], solution=["cat"]) == [1.0]


# --- the built-in dataset ----------------------------------------------------------------------------------------
def test_builtin_cls_animals_is_4_shot_deterministic_and_gold_scores_one():
    data = trl_ext.get("dataset", "cls_animals").build()
    train, test = data["train"], data["test"]
    assert len(train) == 40 and len(test) == 20
    assert sorted(np.bincount(train["label"])) == [4] * 10 and sorted(np.bincount(test["label"])) == [2] * 10
    assert not set(train["context"]) & set(test["context"])
    assert data["train"]["prompt"] == trl_ext.get("dataset", "cls_animals").build()["train"]["prompt"]
    golds = [row["class_names"][row["label"]] for row in train]
    assert call("cls_equality_reward", golds, list(train["solution"])) == [1.0] * 40
    assert all(p[0]["content"].endswith(THINK_SUFFIX) for p in train["prompt"])
    no_think = build_cls_prompts(mode="no_think")(data)
    assert no_think["test"]["prompt"][0][0]["content"] == test["question"][0] + NO_THINK_SUFFIX


# --- the image path: CLIP zero-shot with a user-supplied (tiny, random) encoder ----------------------------------
def test_clip_zero_shot_agrees_with_a_direct_computation(tmp_path):
    from transformers import AutoTokenizer, CLIPModel

    from trl_ext.inference.image_encoder import CLIP_MEAN, CLIP_STD

    path = str(save_tiny_dual_encoder(tmp_path / "clip", kind="clip", seed=3))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    images += [np.full((32, 32, 3), color, np.uint8) for color in ([255, 0, 0], [0, 0, 0])]
    names = ["cat", "dog", "school bus", "tree"]
    data = Dataset.from_dict({"image": images, "class_names": [names] * 6, "label": [0, 1, 2, 3, 0, 1]})
    transform = trl_ext.get("transform", "cls_clip_zero_shot").build(encoder_name_or_path=path)
    out = transform(data)

    model, tok = CLIPModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        t = model.get_text_features(**tok([f"a photo of a {n}." for n in names], padding=True, return_tensors="pt"))
        t = t.pooler_output / t.pooler_output.norm(dim=-1, keepdim=True)
        expected = []
        for img in images:
            pixels = (img / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
            u = model.get_image_features(pixel_values=torch.tensor(pixels.transpose(2, 0, 1)[None]).float())
            u = u.pooler_output[0] / u.pooler_output[0].norm()
            expected.append(names[int(torch.argmax(t @ u))])
    assert out["clip_prediction"] == expected
    correct = [float(p == names[g]) for p, g in zip(expected, [0, 1, 2, 3, 0, 1], strict=True)]
    assert out["clip_correct"] == correct and len(set(expected)) > 1  # a random encoder still tells images apart
    assert transform.summary == {"zero-shot accuracy": sum(correct) / 6}
    with pytest.raises(ValueError, match="encoder_name_or_path"):
        trl_ext.get("transform", "cls_clip_zero_shot").build()


# --- the CLI: both variants as shipped recipes, on SmolLM2-135M -------------------------------------------------
def _recipe(name, tmp_path, **overrides):
    recipe = yaml.safe_load((ROOT / "examples" / "recipes" / name).read_text())
    recipe.update(
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        output_dir=str(tmp_path / "out"),
        **overrides,
    )
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "metrics"),
    [
        ("clsrl_think.yaml", ("rewards/cls_accuracy_reward/mean", "rewards/cls_format_reward/mean")),
        ("clsrl_no_think.yaml", ("rewards/cls_equality_reward/mean", "cls/completion_tokens")),
    ],
)
def test_cli_grpo_recipes_on_smollm2(recipe, metrics, tmp_path, capfd):
    assert main(["train", "--config", str(_recipe(recipe, tmp_path, max_completion_length=8))]) == 0
    out = "".join(capfd.readouterr())
    assert all(m in out for m in metrics), out[-3000:]
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_cli_transform_builds_no_think_prompts(tmp_path, capfd):
    out = tmp_path / "no_think.jsonl"
    argv = ["transform", "build_cls_prompts", "--dataset_name", "builtin:cls_animals", "--mode", "no_think"]
    assert main([*argv, "--split", "test", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 20 and all(r["prompt"][0]["content"].endswith(NO_THINK_SUFFIX) for r in rows)


def test_cli_refuses_the_reward_without_its_column(tiny_model_dir, tmp_path, no_model_load):
    code = main(
        [
            "train",
            "grpo",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:arith",
            "--rewards",
            "cls_equality_reward",
            "--max_steps",
            "1",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert code != 0
