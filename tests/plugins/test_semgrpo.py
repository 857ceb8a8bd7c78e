"""semgrpo: the card's tests (shared/papers/semgrpo.md, tests 1-6) with expected values computed independently
(numpy cosines of given vectors, a tiny random BERT whose identical inputs embed identically, hand-read spans),
adversarial completions, batching and caching of the encoder calls, the built-in data and the CLI."""

import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

import trl_ext
from trl_ext.cli import main
from trl_ext.inference.text_encoder import EncodedBatch, TextEncoder
from trl_ext.models import ModelLoadError
from trl_ext.rewards import RewardSetupError
from trl_ext.testing import tiny_encoder_model, tiny_grpo_flags, train_argv
from trl_ext_plugins.semgrpo import (
    SemanticRewardConfig,
    SemanticSimilarityReward,
    build_explanations,
    explanation,
    explanation_format_reward,
    format_ok,
    make_semgrpo_rewards,
    mcq_accuracy_reward,
)
from trl_ext_plugins.semgrpo.data import MAX_PROMPT_CHARS

REF = "7 + 5 = 12 because adding 5 to 7 gives 12."


class FixedEncoder(TextEncoder):
    """Returns given vectors for given texts (L2-normalised, as the real encoder does); records every encode call."""

    def __init__(self, vectors: dict[str, tuple[float, ...]], normalize: bool = True):
        self.vectors = vectors
        self.normalize = normalize
        self.calls: list[list[str]] = []
        self.cache_size = 4096
        self._cache = OrderedDict()
        self.__dict__["dim"] = len(next(iter(vectors.values())))

    def encode(self, texts):
        texts = list(texts)
        self.calls.append(texts)
        rows = torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32).reshape(len(texts), self.dim)
        if self.normalize:
            rows = torch.nn.functional.normalize(rows, dim=-1)
        return EncodedBatch(rows, [False] * len(texts))


def tiny_encoder():
    model, tokenizer = tiny_encoder_model()
    return TextEncoder(model, tokenizer)


def call(reward, completions, refs=None, **columns):
    logged = {}
    n = len(completions)
    refs = [REF] * n if refs is None else refs
    out = reward(["p"] * n, completions, reference_explanation=refs, log_metric=logged.__setitem__, **columns)
    return out, logged


def np_cos(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- card test 1: identity --------------------------------------------------------------------------------------------
def test_identical_explanation_scores_one_with_a_tiny_random_bert():
    reward = SemanticSimilarityReward(encoder=tiny_encoder())
    completions = [
        f"<answer>B</answer><explanation>{REF}</explanation>",
        f"<answer>B</answer> {REF}",  # no explanation tag: the text minus the answer span
        "<answer>B</answer><explanation>Something else entirely, about cats.</explanation>",
    ]
    scores, logged = call(reward, completions)
    assert abs(scores[0] - 1.0) < 1e-5 and abs(scores[1] - 1.0) < 1e-5
    assert scores[2] < 1.0 - 1e-4
    assert logged["semantic/empty_explanation_frac"] == 0.0


# --- card test 2: permutation / padding invariance ---------------------------------------------------------------------
def test_scores_do_not_depend_on_batch_order_or_padding():
    encoder = tiny_encoder()
    a = "<answer>A</answer><explanation>Tom has 3 apples.</explanation>"
    b = "<answer>C</answer><explanation>A box holds 12 pens. 5 are taken out. 12 - 5 = 7, so 7 are left.</explanation>"
    ab, _ = call(SemanticSimilarityReward(encoder=encoder), [a, b])
    ba, _ = call(SemanticSimilarityReward(encoder=encoder), [b, a])
    alone_a, _ = call(SemanticSimilarityReward(encoder=encoder), [a])
    padded, _ = call(SemanticSimilarityReward(encoder=encoder), [a, b + " " + "and more words " * 20, b])
    assert ab == pytest.approx([ba[1], ba[0]], abs=1e-5)
    assert alone_a[0] == pytest.approx(ab[0], abs=1e-5)
    assert padded[0] == pytest.approx(ab[0], abs=1e-5) and padded[2] == pytest.approx(ab[1], abs=1e-5)


# --- card test 3: hand-computed cosine --------------------------------------------------------------------------------
@pytest.mark.parametrize("sim_transform", ["raw", "clip0"])
def test_cosine_of_fixed_vectors(sim_transform):
    vectors = {"mine": (1.0, 0.0), "opposite": (-1.0, 0.0), "scaled": (3.0, 4.0), "ref": (0.6, 0.8)}
    reward = SemanticSimilarityReward(encoder=FixedEncoder(vectors), sim_transform=sim_transform)
    completions = [f"<explanation>{t}</explanation>" for t in ("mine", "opposite", "scaled")]
    scores, _ = call(reward, completions, refs=["ref"] * 3)
    expected = [np_cos((1, 0), (0.6, 0.8)), np_cos((-1, 0), (0.6, 0.8)), np_cos((3, 4), (0.6, 0.8))]
    assert expected[:2] == pytest.approx([0.6, -0.6])  # the card's values, by numpy
    if sim_transform == "clip0":
        expected = [max(0.0, e) for e in expected]
    assert scores == pytest.approx(expected, abs=1e-6)


def test_unnormalised_embeddings_give_the_dot_product():
    vectors = {"mine": (2.0, 0.0), "ref": (0.6, 0.8)}
    reward = SemanticSimilarityReward(encoder=FixedEncoder(vectors, normalize=False), normalize=False)
    assert call(reward, ["<explanation>mine</explanation>"], refs=["ref"])[0] == pytest.approx([2 * 0.6])


# --- card test 4: fallback and empty -----------------------------------------------------------------------------------
def test_missing_explanation_tag_falls_back_and_empty_scores_zero():
    vectors = {"Because 7 + 5 is 12.": (1.0, 0.0), "ref": (0.6, 0.8)}
    encoder = FixedEncoder(vectors)
    reward = SemanticSimilarityReward(encoder=encoder)
    completions = [
        "<answer>B</answer> Because 7 + 5 is 12.",
        "",
        "<answer>B</answer>",
        "<answer>B</answer><explanation>  </explanation> text outside does not stand in",
    ]
    scores, logged = call(reward, completions, refs=["ref"] * 4)
    assert scores == pytest.approx([0.6, 0.0, 0.0, 0.0])
    assert all(isinstance(s, float) and not np.isnan(s) for s in scores)
    assert encoder.calls == [["Because 7 + 5 is 12.", "ref"]]
    assert logged["semantic/empty_explanation_frac"] == 0.75
    assert explanation("Intro. <ANSWER>c</Answer> and so on.") == "Intro. and so on."


# --- card test 5: MCQ accuracy ----------------------------------------------------------------------------------------
def test_mcq_accuracy():
    completions = [
        "<answer> b </answer>",
        "<answer>C</answer>",
        "<ANSWER>(B)</ANSWER>",
        "B",  # no answer span
        "<answer>A</answer><answer>B</answer>",  # hedging over options
        "<answer>B</answer> and later <answer>b</answer>",
        "<answer>B",  # unclosed
        "<answer></answer>",
    ]
    scores = mcq_accuracy_reward(None, completions, answer=["B"] * len(completions))
    assert scores == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert mcq_accuracy_reward(None, ["<answer>B</answer>"] * 3, answer=[None, "", 5]) == [None, None, 0.0]
    with pytest.raises(RewardSetupError, match="'answer'"):
        mcq_accuracy_reward(None, ["<answer>B</answer>"])


# --- card test 6: weights -----------------------------------------------------------------------------------------------
def test_zero_semantic_weight_leaves_accuracy_plus_format():
    config = SemanticRewardConfig()
    rewards, weights = make_semgrpo_rewards(config)
    rewards[0] = SemanticSimilarityReward(encoder=FixedEncoder({"why": (1.0, 0.0), "ref": (0.6, 0.8)}))
    assert weights == [1.0, 1.0, 0.5]
    completions = [
        "<answer>B</answer><explanation>why</explanation>",
        "<answer>C</answer><explanation>why</explanation>",
        "<explanation>why</explanation><answer>B</answer>",
    ]
    n = len(completions)
    columns = {"reference_explanation": ["ref"] * n, "answer": ["B"] * n}
    per_reward = torch.tensor([r(["p"] * n, completions, **columns) for r in rewards], dtype=torch.float32).T
    acc_fmt = [1.0 + 0.5, 0.0 + 0.5, 1.0 + 0.0]  # read by hand
    # TRL 1.16 combines rewards as (rewards * weights).nansum(dim=1).
    zero_sem = (per_reward * torch.tensor([0.0, 1.0, 0.5])).nansum(dim=1).tolist()
    assert zero_sem == acc_fmt
    full = (per_reward * torch.tensor(weights)).nansum(dim=1).tolist()
    assert full == pytest.approx([0.6 + a for a in acc_fmt])


# --- the format reward and adversarial completions --------------------------------------------------------------------
FORMAT_CASES = {
    "<answer>B</answer><explanation>why</explanation>": 1.0,
    "  <Answer> B </Answer>\n<EXPLANATION>why</EXPLANATION> ": 1.0,
    "Sure! <answer>B</answer> text <explanation>why</explanation> done": 1.0,
    "<explanation>why</explanation><answer>B</answer>": 0.0,  # wrong order
    "<answer>B</answer>": 0.0,
    "<answer>B</answer><explanation>why": 0.0,
    "<answer>B</answer><answer>B</answer><explanation>why</explanation>": 0.0,
    "<answer><explanation>B</answer>why</explanation>": 0.0,  # interleaved
    "<answer>B</explanation><explanation>why</answer>": 0.0,
    "": 0.0,
}


@pytest.mark.parametrize("text, expected", FORMAT_CASES.items())
def test_format_reward(text, expected):
    assert explanation_format_reward(None, [text]) == [expected]


def test_format_order_and_tags_are_options():
    assert format_ok("<explanation>w</explanation><answer>B</answer>", explanation_first=True)
    custom = explanation_format_reward.from_options(answer_tag="ans", explanation_tag="why")
    assert custom(None, ["<ans>B</ans><why>w</why>"]) == [1.0]
    assert custom.__name__ != explanation_format_reward.__name__


ADVERSARIAL = [
    "<answer>A</answer><answer>B</answer><answer>C</answer><answer>D</answer><explanation>x</explanation>",
    "<explanation>" * 5000 + "why",  # many unclosed tags: parsing stays linear
    "<answer>" * 20_000,
    "</answer></explanation><answer>",
    "<explanation></explanation>" * 1000,
    "\ud800 <answer>B</answer><explanation>\udfff</explanation>",
    "x" * 1_000_000,
    "<answer>B</answer><explanation>" + REF * 500 + "</explanation>",  # far past 256 tokens
]


def test_adversarial_completions_score_in_range_without_raising():
    reward = SemanticSimilarityReward(encoder=tiny_encoder())
    completions = ADVERSARIAL + [None, 5, [{"role": "assistant", "content": f"<explanation>{REF}</explanation>"}]]
    n = len(completions)
    sem, logged = call(reward, completions)
    acc = mcq_accuracy_reward(None, completions, answer=["B"] * n)
    fmt = explanation_format_reward(None, completions)
    assert all(-1.0 <= s <= 1.0 for s in sem)
    assert sem[-3:-1] == [0.0, 0.0] and abs(sem[-1] - 1.0) < 1e-5  # not text; a conversation is read
    assert sem[4] == 0.0  # empty explanation spans
    assert acc[0] == 0.0 and acc[5] == 1.0 and acc[-3:-1] == [0.0, 0.0]
    assert fmt[0] == 0.0 and fmt[5] == 1.0 and fmt[7] == 1.0
    assert 0.0 < logged["semantic/truncated_frac"] < 1.0


def test_truncation_is_logged():
    reward = SemanticSimilarityReward(encoder=tiny_encoder(), max_length=256)
    long = "<explanation>" + REF * 100 + "</explanation>"
    _, logged = call(reward, [long, f"<explanation>{REF}</explanation>"])
    assert logged["semantic/truncated_frac"] == 0.5


def test_missing_or_non_text_reference_is_not_applicable():
    reward = SemanticSimilarityReward(encoder=FixedEncoder({"w": (1.0, 0.0)}))
    scores, logged = call(reward, ["<explanation>w</explanation>"] * 3, refs=[None, "  ", 7])
    assert scores == [None, None, None] and logged["semantic/missing_reference_frac"] == 1.0
    with pytest.raises(RewardSetupError, match="'reference_explanation'"):
        reward(["p"], ["<explanation>w</explanation>"])


# --- batching and caching ---------------------------------------------------------------------------------------------
def test_one_encoder_call_per_batch_and_references_encoded_once():
    vectors = {"e1": (1.0, 0.0), "e2": (0.0, 1.0), "r1": (0.6, 0.8), "r2": (0.8, 0.6)}
    encoder = FixedEncoder(vectors)
    reward = SemanticSimilarityReward(encoder=encoder)
    completions = [f"<explanation>{e}</explanation>" for e in ("e1", "e2", "e1", "e2")]
    refs = ["r1", "r1", "r2", "r2"]  # two prompts, num_generations = 2
    first, _ = call(reward, completions, refs=refs)
    assert encoder.calls == [["e1", "e2", "e1", "e2", "r1", "r2"]]
    assert first == pytest.approx([0.6, 0.8, 0.8, 0.6])
    second, _ = call(reward, completions, refs=refs)
    assert encoder.calls[-1] == ["e1", "e2", "e1", "e2"] and second == first  # references from the cache


def test_reward_pickles_without_the_encoder_and_names_differ_by_options(tmp_path):
    model_dir = tmp_path / "bert"
    encoder = tiny_encoder()
    encoder.model.save_pretrained(model_dir)
    encoder.tokenizer.save_pretrained(model_dir)
    record = trl_ext.get("reward", "semantic_similarity_reward")
    reward = record.build(encoder_name_or_path=str(model_dir), device="cpu")
    completions = [f"<explanation>{REF}</explanation>", "<explanation>cats</explanation>"]
    before, _ = call(reward, completions)
    assert reward._encoder is not None
    clone = pickle.loads(pickle.dumps(reward))
    assert clone._encoder is None
    assert call(clone, completions)[0] == pytest.approx(before, abs=1e-6)
    assert reward.__name__.startswith("semantic_similarity_reward_") and reward.__name__ != record.build().__name__
    with pytest.raises(ModelLoadError, match="does not exist"):
        record.build(encoder_name_or_path=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="sim_transform"):
        record.build(sim_transform="square")


# --- the built-in data and the CLI -------------------------------------------------------------------------------------
def test_builtin_explanations_are_consistent():
    data = build_explanations()
    assert len(data["train"]) == 64 and len(data["test"]) == 16
    assert build_explanations()["train"].to_list() == data["train"].to_list()
    for row in [*data["train"], *data["test"]]:
        question = row["prompt"][-1]["content"]
        a, op, b = re.match(r"What is (\d+) ([-+*]) (\d+)\?", question).groups()
        result = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        options = dict(re.findall(r"^([A-D])\) (\d+)$", question, re.M))
        assert int(options[row["answer"]]) == result and list(options.values()).count(str(result)) == 1
        assert row["reference_explanation"].startswith(f"{a} {op} {b} = {result} because")
        assert sum(len(m["content"]) for m in row["prompt"]) <= MAX_PROMPT_CHARS
    questions = [r["prompt"][-1]["content"] for r in [*data["train"], *data["test"]]]
    assert len(set(questions)) == 80


def test_cli_grpo_with_semgrpo_rewards(tiny_model_dir, tmp_path, capfd):
    encoder = tiny_encoder()
    encoder.model.save_pretrained(tmp_path / "bert")
    encoder.tokenizer.save_pretrained(tmp_path / "bert")
    rewards = (
        "semantic_similarity_reward,mcq_accuracy_reward,explanation_format_reward,"
        f"semantic_similarity_reward:encoder_name_or_path={tmp_path / 'bert'}"
    )
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "grpo"),
            "--dataset_name",
            "builtin:explanations",
            "--rewards",
            rewards,
            "--reward_weights",
            "1.0",
            "1.0",
            "0.5",
            "0.0",
            *tiny_grpo_flags(2),
        )
    )
    out = "".join(capfd.readouterr())
    assert code == 0
    for metric in (
        "rewards/semantic_similarity_reward/mean",
        "rewards/mcq_accuracy_reward/mean",
        "rewards/explanation_format_reward/mean",
        "semantic/empty_explanation_frac",
    ):
        assert metric in out, metric
    # The second semantic reward (the tiny encoder) logs under its own name, the options folded into a hash.
    assert re.search(r"rewards/semantic_similarity_reward_[0-9a-f]{10}/mean", out)


def test_cli_refuses_a_dataset_without_the_reference_column(tiny_model_dir, tmp_path, no_model_load, capfd):
    code = main(
        train_argv(
            "grpo",
            tiny_model_dir,
            str(tmp_path / "x"),
            "--dataset_name",
            "builtin:text2sql",
            "--rewards",
            "semantic_similarity_reward",
            "--max_steps",
            "1",
        )
    )
    assert code != 0 and "reference_explanation" in "".join(capfd.readouterr())
