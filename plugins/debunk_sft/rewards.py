"""The verifier: parses the last <answer> ... </answer> of a completion, maps the words back through the row's own
`action_mapping` and checks the actions with the Sokoban solver, or checks a card expression's value. GRPO rewards
(TRL signature) and the success test the evaluation callback uses."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trl_ext.rewards import Scored, reward_function

from . import cards as card_game
from . import sokoban
from .transforms import decode_actions, read_mapping

MAX_CHARS = 16_384  # completions are read up to this many characters; the regex below is linear
_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_MAX_ANSWER_CHARS = 512


def answer_tags(text: str) -> list[str]:
    """The contents of the complete <answer> ... </answer> tags, stripped, in order."""
    return [m.strip() for m in _TAG.findall(text)]


def last_answer(text: str) -> str | None:
    """The last complete answer tag's content ("<answer> cat </answer> <answer> dog </answer>" -> "dog")."""
    tags = answer_tags(text)
    return tags[-1] if tags else None


def action_success(answer: str | None, mapping: Any, actions: Sequence[int] | None, grid: Any = None) -> bool:
    """Whether an answer's words, mapped back through `mapping`, solve the row. With a `grid`: a one-step row
    (one gold action) accepts any first action of a shortest plan; a multi-step row any sequence solving the puzzle.
    Without one, the decoded actions must equal `actions`."""
    if answer is None or len(answer) > _MAX_ANSWER_CHARS:
        return False
    decoded = decode_actions(answer, read_mapping(mapping))
    if not decoded:
        return False
    if grid:
        board = sokoban.Board(list(grid))
        if actions is not None and len(actions) == 1:
            return len(decoded) == 1 and decoded[0] in board.optimal_first_actions()
        state = board.start
        for action in decoded:
            state = board.step(state, action)
        return board.solved(state)
    return actions is not None and decoded == [int(a) for a in actions]


def points_success(answer: str | None, values: Sequence[int], target: Any = 24) -> bool:
    """Whether an answer expression (an optional "= N" tail ignored) uses exactly `values` and equals the target."""
    if answer is None:
        return False
    expr = answer.split("=", 1)[0]
    return card_game.is_solution(expr, [int(v) for v in values], int(target if target is not None else 24))


@reward_function(name="answer_tag_format_reward", max_chars=MAX_CHARS)
def answer_tag_format_reward(completion: str, **row: Any) -> Scored:
    """1.0 if the completion holds exactly one complete <answer> ... </answer> tag, else 0.0."""
    ok = len(answer_tags(completion)) == 1
    return Scored(float(ok), {"debunk/one_answer_tag_rate": float(ok)})


@reward_function(name="remapped_action_reward", columns=("action_mapping", "actions"), max_chars=MAX_CHARS)
def remapped_action_reward(completion: str, action_mapping: Any = None, actions: Any = None, grid: Any = None,
                           **row: Any) -> Scored:  # fmt: skip
    """1.0 if the last answer tag's words, read through the row's `action_mapping`, are a correct action (checked
    with the solver when the row has a `grid`, else against `actions`), else 0.0."""
    answer = last_answer(completion)
    ok = action_success(answer, action_mapping, actions, grid)
    return Scored(float(ok), {"debunk/parsed_rate": float(answer is not None), "debunk/success_rate": float(ok)})


@reward_function(name="points_answer_reward", columns=("card_values",), max_chars=MAX_CHARS)
def points_answer_reward(completion: str, card_values: Any = None, target: Any = 24, **row: Any) -> Scored:
    """1.0 if the last answer tag holds an expression using each of the row's `card_values` once and equal to its
    `target` (default 24), else 0.0."""
    answer = last_answer(completion)
    ok = points_success(answer, card_values, target)
    return Scored(float(ok), {"debunk/parsed_rate": float(answer is not None), "debunk/success_rate": float(ok)})
