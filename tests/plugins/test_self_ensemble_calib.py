"""self_ensemble_calib: the card's hand-computed strategy cases, K=1, the classifier's label scores against a second
simple implementation (full logits, log_softmax, softmax over the labels), determinism of the demo sets, the built-in
dataset, and the callback in a short SFT run and through `trl-ext evaluate` / compare's callback figure."""

from __future__ import annotations

import json

import pytest
import torch

from trl_ext.cli import main
from trl_ext.evaluation.calibration import calibration_report
from trl_ext_plugins.self_ensemble_calib import (
    TEMPLATES,
    CalibrationCallback,
    SelfEnsembleClassifier,
    ensemble,
    label_distributions,
)
from trl_ext_plugins.self_ensemble_calib.data import build

CARD_P = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.8, 0.2]], dtype=torch.float64)
POOL = [{"text": f"demo {i} was {'good' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"} for i in range(10)]
LABELS = {"pos": " good", "neg": " really bad"}  # a multi-token verbalizer


def test_card_strategies():
    pred, conf, dist = ensemble(CARD_P, "vote")  # argmaxes 0, 1, 0 -> class 0, conf mean(0.7, 0.4, 0.8)
    assert pred.item() == 0 and conf.item() == pytest.approx(1.9 / 3)
    pred, conf, dist = ensemble(CARD_P, "mean")
    assert pred.item() == 0 and conf.item() == pytest.approx(1.9 / 3)
    assert dist.tolist() == pytest.approx([1.9 / 3, 1.1 / 3])
    pred, conf, dist = ensemble(CARD_P, "max")  # m = [0.8, 0.6]
    assert pred.item() == 0 and conf.item() == pytest.approx(0.8)
    assert ensemble(CARD_P, "max", renormalize=True)[1].item() == pytest.approx(0.8 / 1.4)  # 0.5714
    assert dist.tolist() == pytest.approx([0.8 / 1.4, 0.6 / 1.4])


def test_vote_tie_goes_to_the_higher_mean():
    # votes 1 : 1; means 0.55 (class 0) vs 0.45 -> class 0 ; swapped -> class 1
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    assert ensemble(p, "vote")[0].item() == 0 and ensemble(p.flip(-1), "vote")[0].item() == 1
    assert ensemble(p, "vote")[1].item() == pytest.approx(0.55)


def test_k1_every_strategy_is_the_single_prediction():
    p = torch.tensor([[[0.35, 0.15, 0.5]], [[0.6, 0.3, 0.1]]], dtype=torch.float64)  # (n=2, K=1, C=3)
    for strategy in ("max", "mean", "vote"):
        for renormalize in (False, True):
            pred, conf, dist = ensemble(p, strategy, renormalize)
            assert pred.tolist() == [2, 0] and conf.tolist() == pytest.approx([0.5, 0.6])
            torch.testing.assert_close(dist, p[:, 0])


def test_label_distributions_normalise_over_the_labels_only():
    logp = torch.tensor([[-1.0, -3.0]])  # p = e^-1 / (e^-1 + e^-3)
    assert label_distributions(logp)[0, 0].item() == pytest.approx(1 / (1 + torch.e**-2))


def reference_label_logprobs(model, tokenizer, prompt: str, verbalizers) -> list[float]:
    """Second implementation: full logits of prompt+verbalizer, log_softmax over the vocabulary, the verbalizer's
    token log-probs summed."""
    out = []
    for v in verbalizers:
        n = len(tokenizer(prompt)["input_ids"])
        ids = tokenizer(prompt + v)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        out.append(float(logp[n - 1 :].sum()))
    return out


@pytest.fixture(scope="module")
def tiny():
    from trl_ext.testing import tiny_model, tiny_tokenizer

    return tiny_model().eval(), tiny_tokenizer()


@pytest.mark.parametrize("variation", ["ic", "prompt", "both"])
def test_classifier_matches_full_logits(tiny, variation):
    model, tokenizer = tiny
    clf = SelfEnsembleClassifier(model, tokenizer, LABELS, demo_pool=POOL, n_demos=2, variation=variation, k=3,
                                 batch_size=5)  # fmt: skip
    texts = ["the soup was fine", "awful service"]
    got = clf.label_logprobs(texts)
    assert got.shape == (2, 3, 2)
    for i, text in enumerate(texts):
        for k, prompt in enumerate(clf.prompts(text)):
            assert got[i, k].tolist() == pytest.approx(reference_label_logprobs(model, tokenizer, prompt, LABELS.values()), abs=1e-5)  # fmt: skip
    p = torch.softmax(got, dim=-1)
    pred, conf, _ = ensemble(p, "max")
    labels, confidences = clf.predict(texts)
    assert labels == [clf.classes[i] for i in pred.tolist()] and confidences == pytest.approx(conf.tolist())
    assert clf.predict_proba(texts).sum(-1).tolist() == pytest.approx([1.0, 1.0])


def test_variants_and_rendering(tiny):
    model, tokenizer = tiny
    ic = SelfEnsembleClassifier(model, tokenizer, LABELS, demo_pool=POOL, n_demos=2, variation="ic", k=3)
    assert {v.template for v in ic.variants} == {TEMPLATES[0]} and len({str(v.demos) for v in ic.variants}) == 3
    pr = SelfEnsembleClassifier(model, tokenizer, LABELS, demo_pool=POOL, n_demos=2, variation="prompt", k=3)
    assert [v.template for v in pr.variants] == list(TEMPLATES[:3]) and len({str(v.demos) for v in pr.variants}) == 1
    both = SelfEnsembleClassifier(model, tokenizer, LABELS, ["{demos}A {input} =", "{demos}B {input} ->"],
                                  demo_pool=POOL, n_demos=1, variation="both", k=3)  # fmt: skip
    assert [v.template[7] for v in both.variants] == ["A", "B", "A"]
    demo = both.variants[0].demos[0]
    assert both.prompts("x")[0] == f"A {demo['text']} ={LABELS[demo['label']]}\n\nA x ="
    zero = SelfEnsembleClassifier(model, tokenizer, ["yes", "no"], k=1)  # zero-shot, verbalizers " yes" / " no"
    assert zero.prompts("hi") == ["Review: hi\nSentiment:"] and zero.labels == {"yes": " yes", "no": " no"}


def test_same_seed_same_demos_and_predictions(tiny):
    model, tokenizer = tiny
    make = lambda seed: SelfEnsembleClassifier(model, tokenizer, LABELS, demo_pool=POOL, n_demos=3, seed=seed)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    assert a.variants == b.variants and a.variants != c.variants
    texts = ["fine", "bad"]
    assert a.predict(texts) == b.predict(texts)


def test_bad_settings():
    with pytest.raises(ValueError, match="strategy"):
        SelfEnsembleClassifier(None, None, LABELS, demo_pool=POOL, strategy="median")
    with pytest.raises(ValueError, match="demo_pool"):
        SelfEnsembleClassifier(None, None, LABELS, variation="ic", k=3)
    with pytest.raises(ValueError, match="needs k templates"):
        SelfEnsembleClassifier(None, None, LABELS, variation="prompt", k=6)
    with pytest.raises(ValueError, match="outside the label set"):
        SelfEnsembleClassifier(None, None, {"a": " a", "b": " b"}, demo_pool=POOL)
    with pytest.raises(ValueError, match="self_ensemble_calib: k=0"):
        CalibrationCallback(k=0)


def test_builtin_calib_sentiment():
    data = build("cls")
    train, test = data["train"].to_list(), data["test"].to_list()
    assert len(train) == len(test) == 200
    assert sum(r["label"] == "positive" for r in train) == 100  # balanced by construction
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    assert build("cls")["test"].to_list() == test  # generated, deterministic
    assert any(" not " in r["text"] for r in test) and any(", but " in r["text"] for r in test)
    sft = build("sft")["train"][0]
    assert sft["prompt"] == f"Review: {sft['text']}\nSentiment:" and sft["completion"] == f" {sft['label']}"


def test_callback_figures_are_the_report_of_its_predictions(tiny):
    model, tokenizer = tiny
    cb = CalibrationCallback(num_rows=6, k=3, n_demos=2, progress=False)
    figures = cb.evaluate(model, tokenizer)
    rows, pool = cb.data()
    y_true = [r["label"] for r in rows]
    clf = SelfEnsembleClassifier(model, tokenizer, ["negative", "positive"], demo_pool=pool, k=3, n_demos=2)
    labels, conf = clf.predict([r["text"] for r in rows])
    assert cb.last_predictions == labels
    assert figures["calib/acc"] == pytest.approx(calibration_report(y_true, labels, conf)["accuracy"])
    assert figures["calib/ece"] == pytest.approx(calibration_report(y_true, labels, conf)["ece"])
    single = SelfEnsembleClassifier(model, tokenizer, ["negative", "positive"], demo_pool=pool, k=1, n_demos=2)
    single_labels, single_conf = single.predict([r["text"] for r in rows])  # k=1 draws the first demo set only
    assert figures["calib/single_ece"] == pytest.approx(calibration_report(y_true, single_labels, single_conf)["ece"])
    assert figures["calib/n"] == 6 and figures["calib/k"] == 3 and figures["calib/n_bins"] == 10


@pytest.mark.slow
def test_callback_during_sft_writes_metrics_and_plot(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", "builtin:calib_sentiment",
                 "--max_steps", "2", "--per_device_train_batch_size", "2", "--report_to", "none",
                 "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1", "--output_dir", str(out),
                 "--callbacks", "self_ensemble_calib:num_rows=8:k=3:every_n_steps=1:progress=false"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "self_ensemble_calib at step 1: calib/acc=" in printed and "self_ensemble_calib at step 3" not in printed
    logs = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    logged = [e for e in logs if "calib/ece" in e]
    assert [e["step"] for e in logged] == [1, 2]
    assert all(0 <= e["calib/ece"] <= 1 and e["calib/n"] == 8 for e in logged)
    assert (out / "plots" / "self_ensemble_calib.png").stat().st_size > 1000


@pytest.mark.slow
def test_evaluate_cli_and_compare_figure(tiny_model_dir, tmp_path, capsys):
    from trl_ext.compare.metrics import _callback_figure
    from trl_ext.models import load_model, load_tokenizer

    spec = "self_ensemble_calib:num_rows=6:k=2:n_demos=2:progress=false"
    assert main(["evaluate", "--callbacks", spec, "--model_name_or_path", tiny_model_dir,
                 "--output_dir", str(tmp_path)]) == 0  # fmt: skip
    (result,) = json.loads((tmp_path / "evaluate.json").read_text())["results"]
    figures = result["figures"]["self_ensemble_calib"]
    model, tokenizer = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    direct = CalibrationCallback(num_rows=6, k=2, n_demos=2, progress=False).evaluate(model, tokenizer)
    assert figures == pytest.approx(direct)
    assert (tmp_path / "plots" / "evaluate_self_ensemble_calib.png").stat().st_size > 1000
    options = {"num_rows": 6, "k": 2, "n_demos": 2, "progress": False, "figure": "calib/ece"}
    values, figures = _callback_figure("self_ensemble_calib", options, model, tokenizer)
    assert figures == {"self_ensemble_calib/calib/ece": pytest.approx(direct["calib/ece"])}
    assert values == []  # the ECE is not a mean over items: no interval
