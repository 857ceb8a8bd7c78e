"""trl_ext.rewards.offline: GRPO rewards called outside a trainer as GRPOTrainer calls them (columns as lists,
conversational completions, async rewards awaited, None -> NaN, a wrong count refused)."""

import math

import pytest

from trl_ext.rewards.offline import as_completion, score_completions
from trl_ext.rewards.toolkit import completion_text


def length_reward(prompts, completions, completion_ids, answer, trainer_state, log_metric, **kwargs):
    log_metric("seen", len(completions))
    assert trainer_state.global_step == 0 and "prompt" not in kwargs
    return [float(len(completion_text(c))) if a != "skip" else None for c, a in zip(completions, answer, strict=True)]


async def match_reward(prompts, completions, answer, **kwargs):
    return [float(completion_text(c) == a) for c, a in zip(completions, answer, strict=True)]


def test_rewards_get_columns_and_messages_and_none_becomes_nan():
    prompts = [[{"role": "user", "content": "q"}], "plain"]
    completions = [as_completion(prompts[0], "abc"), as_completion(prompts[1], "skip")]
    assert completions == [[{"role": "assistant", "content": "abc"}], "skip"]
    rows = [{"prompt": prompts[0], "answer": "abc"}, {"prompt": prompts[1], "answer": "skip"}]
    metrics = {}
    values = score_completions([length_reward, match_reward], prompts, completions, rows, metrics=metrics)
    assert values[0] == [3.0, 1.0] and math.isnan(values[1][0]) and values[1][1] == 1.0
    assert metrics == {"seen": [2.0]}


def test_a_reward_returning_another_count_is_refused():
    def short(prompts, completions, **kwargs):
        return [1.0]

    with pytest.raises(ValueError, match="'short' returned 1 rewards for 2"):
        score_completions([short], ["a", "b"], ["x", "y"], [{}, {}])
