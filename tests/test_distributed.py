"""Loss normalisation under gradient accumulation and 2 processes (torchrun, gloo on CPU): one optimizer step on
the same global batch gives the same loss and the same gradient (SGD, lr 1: the weight update) in every layout."""

from pathlib import Path

import pytest

from trl_ext.testing import check_same_step_in_every_layout

SCRIPT = Path(__file__).parent / "distributed" / "asft_ddp.py"


@pytest.mark.slow
def test_asft_same_gradient_on_one_and_two_processes(tmp_path):
    check_same_step_in_every_layout(SCRIPT, tmp_path)
