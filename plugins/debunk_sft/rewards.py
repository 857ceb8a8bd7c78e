"""The verifier: parses the last <answer> ... </answer> of a completion, maps the words back through the row's own
`action_mapping` and checks the actions with the Sokoban solver, or checks a card expression's value. GRPO rewards
(TRL signature) and the success test the evaluation callback uses.

A row whose gold cannot be used (an `action_mapping` that is not four distinct words for the actions 1..4, `actions`
that are not action ids, a `grid` that is no board, `card_values` or a `target` that are not integers) scores None,
"not applicable" (ours), and counts in `debunk/gold_error_rate`; a completion that is not text scores 0.0."""

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


def _ints(values: Any, allowed: Sequence[int] | None = None) -> list[int] | None:
    """`values` as a non-empty list of integers (each `allowed` when given), or None when it is not one."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        return None
    out = []
    for value in values:
        if isinstance(value, bool):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if allowed is not None and number not in allowed:
            return None
        out.append(number)
    return out


def action_gold_ok(mapping: Any, actions: Any, grid: Any = None) -> bool:
    """Whether a row's gold can be used by `remapped_action_reward`: an `action_mapping` of four distinct, non-empty
    words for the actions 1..4; `actions` a non-empty list of action ids (with a `grid`, also None: any solving
    sequence); a `grid`, when given, a valid Sokoban board."""
    try:
        words = [w.strip().lower() for w in read_mapping(mapping).values()]
    except (ValueError, TypeError, AttributeError, RecursionError):
        return False
    if not all(words) or len(set(words)) != len(words):
        return False
    if grid:
        try:
            sokoban.Board(list(grid))
        except (ValueError, TypeError):
            return False
        return actions is None or _ints(actions, (1, 2, 3, 4)) is not None
    return _ints(actions, (1, 2, 3, 4)) is not None


def points_gold_ok(values: Any, target: Any = 24) -> bool:
    """Whether a row's `card_values` (a non-empty list of integers) and `target` (an integer; None: 24) are usable."""
    if _ints(values) is None:
        return False
    return target is None or _ints([target]) is not None


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


def _metrics(answer: str | None, ok: bool, gold_error: bool = False) -> dict[str, float]:
    return {
        "debunk/parsed_rate": float(answer is not None),
        "debunk/success_rate": float(ok),
        "debunk/gold_error_rate": float(gold_error),
    }


@reward_function(name="answer_tag_format_reward", max_chars=MAX_CHARS)
def answer_tag_format_reward(completion: str, **row: Any) -> Scored:
    """1.0 if the completion holds exactly one complete <answer> ... </answer> tag, else 0.0."""
    ok = len(answer_tags(completion)) == 1
    return Scored(float(ok), {"debunk/one_answer_tag_rate": float(ok)})


@reward_function(name="remapped_action_reward", columns=("action_mapping", "actions"), max_chars=MAX_CHARS)
def remapped_action_reward(completion: str, action_mapping: Any = None, actions: Any = None, grid: Any = None,
                           **row: Any) -> Scored:  # fmt: skip
    """1.0 if the last answer tag's words, read through the row's `action_mapping`, are a correct action (checked
    with the solver when the row has a `grid`, else against `actions`), else 0.0; None when the row's gold cannot be
    used (`action_gold_ok`)."""
    answer = last_answer(completion)
    if not action_gold_ok(action_mapping, actions, grid):
        return Scored(None, _metrics(answer, False, gold_error=True))
    ok = action_success(answer, action_mapping, actions, grid)
    return Scored(float(ok), _metrics(answer, ok))


@reward_function(name="points_answer_reward", columns=("card_values",), max_chars=MAX_CHARS)
def points_answer_reward(completion: str, card_values: Any = None, target: Any = 24, **row: Any) -> Scored:
    """1.0 if the last answer tag holds an expression using each of the row's `card_values` once and equal to its
    `target` (default 24), else 0.0; None when the row's `card_values` or `target` cannot be used."""
    answer = last_answer(completion)
    if not points_gold_ok(card_values, target):
        return Scored(None, _metrics(answer, False, gold_error=True))
    ok = points_success(answer, card_values, target)
    return Scored(float(ok), _metrics(answer, ok))
