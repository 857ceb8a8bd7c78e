"""trl_ext.training.rng: one stream per (seed, step, process, micro-batch, mode, stream), the same on every call."""

import hashlib

import pytest
import torch

from trl_ext.training.rng import MicroStepCounter, step_generator, step_seed

COORDS = dict(seed=0, global_step=3, process_index=1, micro_step=2, mode="train")


def _draw(**overrides) -> list[int]:
    coords = {**COORDS, **overrides}
    return torch.randint(0, 2**31 - 1, (8,), generator=step_generator(**coords)).tolist()


def test_the_same_coordinates_give_the_same_stream():
    assert _draw() == _draw()
    assert _draw(stream="otr") == _draw(stream="otr")


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"global_step": 4},
        {"process_index": 0},
        {"micro_step": 3},
        {"mode": "eval"},
        {"stream": "lfu_aux"},
    ],
)
def test_each_coordinate_changes_the_stream(change):
    assert _draw(**change) != _draw()


def test_seed_is_the_sha256_of_the_coordinates():
    # OTR's rollouts before the helper existed: the first 8 bytes of sha256("otr:seed:step:rank:micro:mode"), 63 bits
    digest = hashlib.sha256(b"otr:0:3:1:2:train").digest()
    assert step_seed(0, 3, 1, 2, "train", "otr") == int.from_bytes(digest[:8], "little") & (2**63 - 1)


def test_micro_step_counter_counts_within_a_step_and_restarts():
    counter = MicroStepCounter()
    train, evaluation = ("draw", "train"), ("draw", "eval")
    assert [counter.next(0, train) for _ in range(3)] == [0, 1, 2]
    assert counter.next(0, evaluation) == 0  # each mode counts on its own
    assert [counter.next(1, train), counter.next(1, train)] == [0, 1]
