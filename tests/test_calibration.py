"""`trl_ext.evaluation.calibration`: ECE, MCE, macro-F1, Brier and NLL on cases small enough to check by hand."""

from __future__ import annotations

import math

import pytest

from trl_ext.evaluation.calibration import (
    bin_index,
    calibration_bins,
    calibration_report,
    expected_calibration_error,
    macro_f1,
)


def test_card_ece_hand_case():
    # bin 0.9: 2 items, acc 0.5, conf 0.9 -> gap 0.4, weight 0.5; bin 0.6: 2 items, acc 1, conf 0.6 -> gap 0.4
    conf, correct = [0.9, 0.9, 0.6, 0.6], [1, 0, 1, 1]
    assert expected_calibration_error(correct, conf, 10) == pytest.approx(0.4)
    bins = calibration_bins(correct, conf, 10)
    assert [(b["bin"], b["count"]) for b in bins] == [(6, 2), (9, 2)]
    assert [b["accuracy"] for b in bins] == [1.0, 0.5]
    report = calibration_report(["a", "b", "a", "a"], ["a", "a", "a", "a"], conf)
    assert report["ece"] == pytest.approx(0.4) and report["mce"] == pytest.approx(0.4)
    assert report["accuracy"] == 0.75 and report["conf_mean"] == pytest.approx(0.75)
    assert report["n"] == 4 and report["n_bins"] == 10


def test_bins_edges_and_one():
    assert bin_index(1.0, 10) == 9 and bin_index(0.0, 10) == 0 and bin_index(0.5, 10) == 5  # [0.5, 0.6)
    assert bin_index(0.49999, 10) == 4
    # 1.0 and 0.95 share the last bin: acc 0.5, conf 0.975 -> 0.475
    assert expected_calibration_error([1, 0], [1.0, 0.95]) == pytest.approx(0.475)
    # M=1: |overall accuracy - mean confidence|
    assert expected_calibration_error([1, 0, 0], [0.9, 0.6, 0.3], n_bins=1) == pytest.approx(abs(1 / 3 - 0.6))
    # different bins: 0.55 in bin 5 (acc 0, gap 0.55) and 0.75 in bin 7 (acc 1, gap 0.25), weights 1/2
    assert expected_calibration_error([0, 1], [0.55, 0.75]) == pytest.approx(0.4)
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match="outside"):
        bin_index(1.2, 10)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([1], [0.5], n_bins=0)


def test_macro_f1_by_hand():
    y_true, y_pred = ["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"]
    # a: tp 1 fp 1 fn 1 -> 2/4; b: tp 2 fp 1 fn 0 -> 4/5; c: tp 0 fp 0 fn 1 -> 0
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a class absent from both sides counts 0 when named
    assert macro_f1(["a"], ["a"], labels=["a", "z"]) == pytest.approx(0.5)


def test_brier_and_nll_by_hand():
    report = calibration_report(
        ["pos", "neg"], ["pos", "pos"], [0.8, 0.6], proba=[[0.8, 0.2], [0.6, 0.4]], labels=["pos", "neg"]
    )
    # item 1: (0.8-1)^2 + 0.2^2 = 0.08; item 2: 0.6^2 + (0.4-1)^2 = 0.72
    assert report["brier"] == pytest.approx((0.08 + 0.72) / 2)
    assert report["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)
    with pytest.raises(ValueError, match="needs labels"):
        calibration_report(["a"], ["a"], [0.5], proba=[[0.5, 0.5]])
