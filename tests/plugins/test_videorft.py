"""VideoRFT's rewards: the card's hand-computed cases (with a stub encoder whose similarities are set by hand), the
official code's quirks, adversarial completions, a tiny random SigLIP/CLIP loaded by path, and GRPO through the CLI."""

import math
import pickle

import numpy as np
import pytest
import torch

import trl_ext
from trl_ext.cli import main
from trl_ext.rewards import RewardSetupError
from trl_ext.testing import save_tiny_dual_encoder
from trl_ext_plugins.videorft import VideoRFTRewardConfig
from trl_ext_plugins.videorft import rewards as rewards_module
from trl_ext_plugins.videorft.scoring import (
    accuracy,
    drop_first_sentence,
    frame_reward,
    groups,
    length_bonus,
    reasoning_text,
    rouge_mean_f,
    word_error_rate,
)

GOOD = "<think>The question asks for the color. The picture shows a red square.</think><answer>A</answer>"


def reward(name, **options):
    return trl_ext.get("reward", name).build(**options)


class StubEncoder:
    """Text embedding e0 for every text; an image given as ("sim", s) embeds as s·e0 + sqrt(1 - s²)·e1, so
    u·t = s exactly."""

    def __init__(self):
        self.texts, self.image_calls = [], 0

    def encode_texts(self, texts, return_truncated=False):
        self.texts += list(texts)
        t = torch.zeros(len(texts), 2)
        t[:, 0] = 1
        return (t, [False] * len(texts)) if return_truncated else t

    def encode_images(self, images):
        self.image_calls += 1
        s = torch.tensor([float(np.asarray(img).flat[0]) / 1000 for img in images])
        return torch.stack([s, (1 - s**2).clamp(min=0).sqrt()], dim=1)


def sim_image(s):
    """An image the stub embeds at similarity s (the first pixel holds 1000·s)."""
    img = np.zeros((2, 2, 3), np.float32)
    img.flat[0] = 1000 * s
    return img


@pytest.fixture
def stub(monkeypatch):
    encoder = StubEncoder()
    monkeypatch.setattr(rewards_module.VRFTSemanticReward, "encoder", property(lambda self: encoder))
    monkeypatch.setattr(rewards_module.VRFTSemanticReward, "_check_encoder_option", lambda self: None)
    return encoder


def semantic(completions, solutions, types, logged=None, **columns):
    fn = reward("vrft_semantic_reward", encoder_name_or_path="stub")
    kwargs = {"log_metric": lambda k, v: logged.__setitem__(k, v)} if logged is not None else {}
    return fn(None, completions, solution=solutions, problem_type=types, **columns, **kwargs)


# --- card tests 1-3: clamp, video mean, gate ---------------------------------------------------------------------
def test_card_1_clamp():
    assert frame_reward(0.3) == pytest.approx(0.6) and frame_reward(0.7) == 1.0 and frame_reward(-0.2) == 0.0


def test_card_1_clamp_through_the_reward(stub):
    out = semantic(
        [GOOD] * 3,
        ["<answer>A</answer>"] * 3,
        ["multiple choice"] * 3,
        frames=[[sim_image(0.3)], [sim_image(0.7)], [sim_image(-0.2)]],
    )
    assert out == pytest.approx([0.6, 1.0, 0.0])


def test_card_2_video_mean_over_frames(stub):
    out = semantic([GOOD], ["<answer>A</answer>"], ["multiple choice"], frames=[[sim_image(0.1), sim_image(0.6)]])
    assert out == pytest.approx([(0.2 + 1.0) / 2])


def test_card_3_gate_zeroes_a_wrong_answer_and_logs_the_raw_value(stub):
    logged = {}
    wrong = GOOD.replace("<answer>A", "<answer>B")
    out = semantic(
        [wrong, GOOD],
        ["<answer>A</answer>"] * 2,
        ["multiple choice"] * 2,
        logged,
        image=[sim_image(0.9), sim_image(0.2)],
    )
    assert out == pytest.approx([0.0, 0.4])
    assert logged["vrft/semantic_raw_mean"] == pytest.approx((1.0 + 0.4) / 2)  # min(1, 1.8) before the gate
    assert logged["vrft/gate_zero_frac"] == 0.5
    ungated = reward("vrft_semantic_reward", encoder_name_or_path="stub", gate_on_accuracy=False)
    assert ungated(
        None, [wrong], solution=["<answer>A</answer>"], problem_type=["multiple choice"], image=[sim_image(0.9)]
    ) == [1.0]


def test_frames_are_encoded_once_per_prompt_and_rows_without_visuals_are_not_applicable(stub):
    frames = [[sim_image(0.25)]] * 4 + [[]]
    out = semantic([GOOD] * 5, ["<answer>A</answer>"] * 5, ["multiple choice"] * 5, frames=frames)
    assert out[:4] == pytest.approx([0.5] * 4) and out[4] is None
    assert stub.image_calls == 1  # the G completions of one prompt share its frames
    assert stub.texts == ["The picture shows a red square."] * 4  # T': first sentence dropped


def test_a_video_path_is_read_once_into_evenly_spaced_frames(stub, monkeypatch):
    """A `video` column: the file is decoded once (transformers' load_video, asked for max_frames) for the G
    completions of its prompt, and the reward is the mean over its frames (card 2); a video that cannot be decoded
    (no backend installed, a bad file) makes the row not applicable, not a crash."""
    calls = []

    def fake_load_video(path, num_frames=None, **kwargs):
        calls.append((path, num_frames))
        return np.stack([sim_image(0.1), sim_image(0.6), sim_image(0.3)]), None

    monkeypatch.setattr("transformers.video_utils.load_video", fake_load_video)
    fn = reward("vrft_semantic_reward", encoder_name_or_path="stub", max_frames=2)
    out = fn(None, [GOOD] * 3, solution=["<answer>A</answer>"] * 3, problem_type=["multiple choice"] * 3,
             video=["clip.mp4"] * 3)  # fmt: skip
    # max_frames=2 of the 3 decoded frames: the first and the last (0.1 -> 0.2, 0.3 -> 0.6)
    assert out == pytest.approx([(0.2 + 0.6) / 2] * 3)
    assert calls == [("clip.mp4", 2)]

    def no_backend(path, num_frames=None, **kwargs):
        raise ImportError("no video decoding backend (av, decord, opencv or torchvision) is installed")

    monkeypatch.setattr("transformers.video_utils.load_video", no_backend)
    other = reward("vrft_semantic_reward", encoder_name_or_path="stub", max_frames=2)
    assert other(None, [GOOD], solution=["<answer>A</answer>"], problem_type=["multiple choice"],
                 video=["other.mp4"]) == [None]  # fmt: skip


def test_semantic_reward_without_encoder_or_visual_column(tmp_path):
    cols = {"solution": ["<answer>A</answer>"], "problem_type": ["multiple choice"]}
    with pytest.raises(RewardSetupError, match="encoder_name_or_path"):
        reward("vrft_semantic_reward")  # refused when built, before any batch
    with pytest.raises(RewardSetupError, match="/no/such/siglip"):
        reward("vrft_semantic_reward", encoder_name_or_path="/no/such/siglip")
    # A folder that exists passes the build-time check; a row without visual input never loads it.
    assert reward("vrft_semantic_reward", encoder_name_or_path=str(tmp_path))(None, [GOOD], **cols) == [None]


# --- card test 4 and the official text quirks --------------------------------------------------------------------
def test_card_4_first_sentence_drop():
    assert drop_first_sentence("The question asks X. The video shows a dog.") == "The video shows a dog."
    assert reasoning_text("<think>The question asks X. The video shows a dog.</think><answer>A</answer>") == (
        "The video shows a dog."
    )


def test_official_reasoning_text_quirks():
    assert drop_first_sentence("3.14159. R") == "14159. R"  # a decimal point counts as the sentence end
    assert drop_first_sentence("no period here") == "no period here"
    unclosed = "<think>no end tag. still thinking<answer>A</answer>"
    assert reasoning_text(unclosed) == unclosed  # the whole completion, tags included
    assert reasoning_text("<think>One. Two.</think>", drop_first=False) == "One. Two."


# --- card test 5 and the accuracy types --------------------------------------------------------------------------
def ans(x):
    return f"<think>t</think><answer>{x}</answer>"


def test_card_5_accuracy_cases():
    assert accuracy("numerical", ans("3"), "<answer>3.0</answer>") == 0.0  # decimal mismatch
    assert accuracy("numerical", ans("3.141"), "<answer>3.14</answer>") == 1.0
    assert accuracy("OCR", ans("a b"), "<answer>a b c</answer>") == pytest.approx(1 - 1 / 3)
    assert accuracy("regression", ans("12"), "<answer>10</answer>") == pytest.approx(0.8)


def test_official_accuracy_quirks_and_other_types():
    assert accuracy("regression", ans("0"), "<answer>0</answer>") == 0.0  # relative error (1e-9)/(1e-9) = 1
    assert accuracy("multiple choice", "B", "<answer>B</answer>") == 0.0  # no answer span: the empty answer
    assert accuracy("multiple choice", ans(" B \n"), "<answer>B</answer>") == 1.0
    assert accuracy("numerical", ans("1,000"), "<answer>1,000</answer>") == 1.0
    assert accuracy("numerical", ans("1,000"), "<answer>1000</answer>") == 0.0  # a comma counts as a decimal mark
    assert accuracy("numerical", ans("nan"), "<answer>nan</answer>") == 0.0
    assert accuracy("OCR", ans("x y z w v u"), "<answer>a b c</answer>") == 0.0
    assert accuracy("unknown type", ans("A"), "<answer>A</answer>") == 0.0
    # ROUGE by hand: gold "the cat sat", answer "the cat": R1 F = 0.8, R2 F = 2/3, RL F = 0.8
    assert accuracy("free-form", ans("the cat"), "<answer>the cat sat</answer>") == pytest.approx(
        (0.8 + 2 / 3 + 0.8) / 3
    )
    assert rouge_mean_f("a b", "") == 0.0 and rouge_mean_f("Same words!", "same WORDS") == pytest.approx(1.0)


def test_word_error_rate_by_hand():
    assert word_error_rate("a b c", "a x c") == pytest.approx(1 / 3)
    assert word_error_rate("a b c", "a b c d") == pytest.approx(1 / 3)
    assert word_error_rate("", "a b") == 2.0 and word_error_rate("", "") == 0.0
    assert word_error_rate("a b", "a " * 50_000) >= 1.0  # bounded: no 2 x 50k table


def test_accuracy_per_item_problem_type():
    # the official code uses the first item's type for the whole batch; here each row's own
    out = reward("vrft_accuracy_reward")(
        None,
        [ans("3"), ans("A")],
        solution=["<answer>3</answer>", "<answer>A</answer>"],
        problem_type=["numerical", "multiple choice"],
    )
    assert out == [1.0, 1.0]


# --- card test 6: length bonus -----------------------------------------------------------------------------------
def test_card_6_length_bonus():
    assert length_bonus([400, 600, 350], [1, 1, 0]) == [0.2, 0.0, 0.0]
    assert length_bonus([400, 350], [1, 0]) == [0.0, 0.0]  # a single qualifying completion gets no bonus
    assert length_bonus([320, 512, 319, 513], [1, 1, 1, 1]) == [0.2, 0.2, 0.0, 0.0]  # inclusive edges


def test_length_bonus_reward_is_per_group():
    right, wrong = ans("A"), ans("B")
    prompts = ["p1"] * 3 + ["p2"] * 3
    completions = [right, right, wrong, right, wrong, wrong]
    ids = [[0] * 400, [0] * 600, [0] * 350, [0] * 400, [0] * 400, [0] * 400]
    kwargs = {"solution": ["<answer>A</answer>"] * 6, "problem_type": ["multiple choice"] * 6}
    out = reward("vrft_length_bonus")(prompts, completions, ids, **kwargs)
    assert out == [0.2, 0.0, 0.0, 0.0, 0.0, 0.0]  # group 2 has one qualifying completion only
    # as one group of 6 (num_generations=6) the 4th completion qualifies too
    assert reward("vrft_length_bonus", num_generations=6)(prompts, completions, ids, **kwargs) == [
        0.2,
        0,
        0,
        0.2,
        0,
        0,
    ]
    assert groups(["a", "a", "b", "a"]) == [range(0, 2), range(2, 3), range(3, 4)]


# --- format, adversarial, config -------------------------------------------------------------------------------
def test_format_reward():
    fmt = reward("vrft_format_reward")
    assert fmt(
        None, [GOOD, "<think>a</think>\n<answer>b</answer>", "<answer>b</answer><think>a</think>", GOOD + "x"]
    ) == [1.0, 1.0, 0.0, 0.0]


def test_garbage_completions_score_zero(stub):
    garbage = ["", None, 7, [{"role": "user", "content": GOOD}], "<answer>" * 20_000, "\x00" * 70_000]
    n = len(garbage)
    cols = {"solution": ["<answer>A</answer>"] * n, "problem_type": ["OCR"] * n}
    assert reward("vrft_accuracy_reward")(None, garbage, **cols) == [0.0] * n
    assert reward("vrft_format_reward")(None, garbage) == [0.0] * n
    assert reward("vrft_length_bonus")(None, garbage, None, **cols) == [0.0] * n
    out = semantic(garbage, cols["solution"], cols["problem_type"], frames=[[sim_image(0.5)]] * n)
    assert out == [0.0] * n
    bad_frames = [["not an image"], [np.zeros((2, 2, 2, 2))], None]
    assert semantic([GOOD] * 3, ["<answer>A</answer>"] * 3, ["multiple choice"] * 3, frames=bad_frames) == [None] * 3


def test_unusable_gold_scores_none_never_raises(stub):
    # a valid row, then rows whose gold cannot be used: not text, an unknown type, an empty answer, no number
    solutions = ["<answer>3</answer>", None, 3, "<answer>3</answer>", "<answer>3</answer>", "<answer> </answer>", "",
                 "<answer>three</answer>", "<answer>nan</answer>"]  # fmt: skip
    types = ["numerical", "numerical", "numerical", "unknown type", None, "OCR", "multiple choice", "numerical",
             "regression"]  # fmt: skip
    n = len(solutions)
    completion = "<think>It is three. So 3.</think><answer>3</answer>"
    cols = {"solution": solutions, "problem_type": types}
    logged = {}
    out = reward("vrft_accuracy_reward")(["p"] * n, [completion] * n, [[1]] * n, **cols, log_metric=logged.__setitem__)
    assert out == [1.0] + [None] * (n - 1)
    assert logged["vrft/gold_error_rate"] == pytest.approx((n - 1) / n)
    bonus = reward("vrft_length_bonus", num_generations=n)(["p"] * n, [completion] * n, [[0] * 400] * n, **cols)
    assert bonus == [0.0] + [None] * (n - 1)  # one qualifying completion: no bonus; the others not applicable
    frames = {"frames": [[sim_image(0.5)]] * n}
    assert semantic([completion] * n, solutions, types, **frames) == [1.0] + [None] * (n - 1)
    ungated = reward("vrft_semantic_reward", encoder_name_or_path="stub", gate_on_accuracy=False)
    assert ungated(None, [completion] * n, **cols, **frames) == [1.0] * n  # R_sem alone needs no gold


@pytest.mark.parametrize(
    ("field", "value"),
    [("w_scale", 0), ("len_range", (5, 1)), ("max_frames", 0), ("gate_on_accuracy", "no"), ("num_generations", 0)],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        VideoRFTRewardConfig(**{field: value})


def test_semantic_reward_pickles_without_its_cache(stub):
    fn = reward("vrft_semantic_reward", encoder_name_or_path="stub", w_scale=4.0)
    fn(None, [GOOD], solution=["<answer>A</answer>"], problem_type=["multiple choice"], image=[sim_image(0.1)])
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.__name__ == fn.__name__ != "vrft_semantic_reward" and not copy._frame_cache
    assert copy(
        None, [GOOD], solution=["<answer>A</answer>"], problem_type=["multiple choice"], image=[sim_image(0.1)]
    ) == pytest.approx([0.4])


# --- card test 7: a tiny random SigLIP (and CLIP) given by path -------------------------------------------------
@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_card_7_tiny_random_encoder_end_to_end(kind, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from trl_ext.inference.image_encoder import CLIP_MEAN, CLIP_STD

    path = str(save_tiny_dual_encoder(tmp_path / kind, kind=kind, seed=1))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    completions = [GOOD, "<think>First. A blue circle, round and blue.</think><answer>A</answer>"]
    logged = {}
    out = reward("vrft_semantic_reward", encoder_name_or_path=path, device="cpu")(
        None,
        completions,
        solution=["<answer>A</answer>"] * 2,
        problem_type=["multiple choice"] * 2,
        frames=[images, images[:1]],
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    # independently: the model on hand-normalised pixels and the reasoning text without its first sentence
    model, tok = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    mean, std = ((0.5,) * 3, (0.5,) * 3) if kind == "siglip" else (CLIP_MEAN, CLIP_STD)
    pixels = torch.tensor(np.stack([(im / 255 - mean) / std for im in images]).transpose(0, 3, 1, 2)).float()
    texts = ["The picture shows a red square.", "A blue circle, round and blue."]
    if kind == "siglip":
        enc = tok(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
        enc.pop("attention_mask")
    else:
        enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        u = model.get_image_features(pixel_values=pixels).pooler_output
        t = model.get_text_features(**enc).pooler_output
    u, t = u / u.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
    assert torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-4)  # card test 7: unit norm
    s = (t @ u.T).tolist()
    expected = [(frame_reward(s[0][0]) + frame_reward(s[0][1])) / 2, frame_reward(s[1][0])]
    assert out == pytest.approx(expected, abs=1e-5)
    assert math.isfinite(logged["vrft/semantic_raw_mean"]) and logged["vrft/gate_zero_frac"] == 0.0


# --- the built-in dataset and the CLI ----------------------------------------------------------------------------
def test_builtin_vrft_shapes_golds_score_one_and_pictures_match_descriptions():
    data = trl_ext.get("dataset", "vrft_shapes").build()
    train, test = data["train"], data["test"]
    assert len(train) == 32 and len(test) == 16
    golds = [ans(s.removeprefix("<answer>").removesuffix("</answer>")) for s in train["solution"]]
    out = reward("vrft_accuracy_reward")(
        None, golds, solution=list(train["solution"]), problem_type=list(train["problem_type"])
    )
    assert out == [1.0] * 32
    for row in list(train)[:6]:
        image = np.asarray(row["frames"][0], np.uint8)
        color = {"red": 0, "green": 1, "blue": 2}.get(row["description"].split()[5])
        centre = image[16, 16]
        if color is not None:  # the centre pixel is the shape's color, its strongest channel the named one
            assert int(np.argmax(centre)) == color
        assert (image[0, 0] == 255).all()  # white background


@pytest.mark.slow
def test_cli_grpo_with_all_four_rewards_on_smollm2(tmp_path, capfd):
    encoder = save_tiny_dual_encoder(tmp_path / "siglip", kind="siglip")
    code = main(
        [
            "train",
            "grpo",
            "--model_name_or_path",
            "smollm2-135m",
            "--dataset_name",
            "builtin:vrft_shapes",
            "--rewards",
            f"vrft_accuracy_reward,vrft_format_reward,vrft_semantic_reward:encoder_name_or_path={encoder}"
            ":gate_on_accuracy=false,vrft_length_bonus",
            "--loss_type",
            "grpo",
            "--beta",
            "0.04",
            "--scale_rewards",
            "group",
            "--num_generations",
            "2",
            "--per_device_train_batch_size",
            "2",
            "--max_completion_length",
            "8",
            "--max_steps",
            "1",
            "--logging_steps",
            "1",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    for key in (
        "rewards/vrft_accuracy_reward/mean",
        "vrft/semantic_raw_mean",
        "vrft/gate_zero_frac",
        "vrft/len_bonus_rate",
    ):
        assert key in out, key


def test_cli_refuses_the_semantic_reward_without_an_encoder(tiny_model_dir, tmp_path, capfd):
    code = main(
        [
            "train",
            "grpo",
            "--model_name_or_path",
            tiny_model_dir,
            "--dataset_name",
            "builtin:vrft_shapes",
            "--rewards",
            "vrft_semantic_reward",
            "--max_steps",
            "1",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert code != 0
