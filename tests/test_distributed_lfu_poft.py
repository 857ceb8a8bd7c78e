"""Loss normalisation of LfU (two forward/backward passes per step, a token-mean consistency term) and PoFT (a mean
over sequences) under gradient accumulation and 2 processes (torchrun, gloo on CPU): one optimizer step on the same
global batch gives the same loss and the same gradient (SGD, lr 1: the weight update) in every layout."""

from pathlib import Path

import pytest

from trl_ext.testing import check_same_step_in_every_layout

SCRIPTS = Path(__file__).parent / "distributed"


@pytest.mark.slow
def test_lfu_same_loss_and_gradient_on_one_and_two_processes(tmp_path):
    runs = check_same_step_in_every_layout(SCRIPTS / "lfu_ddp.py", tmp_path)
    single, ddp = runs["single"], runs["ddp"]
    assert single["lfu/cons_loss"] > 0.1 * single["loss"]  # the consistency term is a real part of the loss
    # logged metrics average the micro-batches of a step; with one micro-batch per process they are global
    assert ddp["lfu/cons_loss"] == pytest.approx(single["lfu/cons_loss"], rel=1e-5)


@pytest.mark.slow
def test_poft_same_loss_and_gradient_on_one_and_two_processes(tmp_path):
    # 6 sequences: one batch of 6; micro-batches of 4 and 2 (the short last one would weigh double under a
    # per-micro-batch mean); 2 processes of 3
    layouts = {"single": (1, 6, 1), "accumulated": (1, 4, 2), "ddp": (2, 3, 1)}
    runs = check_same_step_in_every_layout(SCRIPTS / "poft_ddp.py", tmp_path, layouts=layouts)
    assert {run["steps"] for run in runs.values()} == {1}
