"""VGRP's verifier as GRPO rewards (ours: the paper does no RL), on trl_ext's reward toolkit.

- `vgrp_solve_reward`: R_solve = 1[answer_ok], gated on a correct perception as the official accuracy (option
  `gated=false` drops the gate); never compares to the stored solution, so any valid solution scores 1.
- `vgrp_perception_reward`: R_percept = 1[perception_ok].
- `vgrp_partial_reward`: R_partial = fraction of the constraint units the answer satisfies; 0 if its shape is wrong.
- `vgrp_format_reward`: R_fmt = 1 if both sections parse.
- `vgrp_reward`: the total 1.0·R_solve + 0.2·R_percept + 0.2·R_partial + 0.1·R_fmt (weights ours, option `weights`).

Every reward takes `verifier` = "strict" (default for RL, ours: normalised parsing plus value-range checks, so the
policy cannot exploit the official checker's gaps) or "official" (VGRP-Bench's evaluator exactly). R_partial always
reads the answer with the strict parser. A row whose `init_board`/`game`/`side_info` describe no puzzle (a board cell
that is neither an integer nor text included) scores None (not applicable). The solve and total rewards log
`vgrp/solve_rate`, `vgrp/perception_acc`, `vgrp/format_rate`, `vgrp/gold_error_rate` (the rows that describe no
puzzle) and the solve rate per (game, size, number of clues) bucket, `vgrp/solve/<game><n>x<n>_c<k>`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from trl_ext.rewards import RewardFunction, Scored, cap_text, log_metric

from .config import DEFAULT_WEIGHTS, WEIGHT_KEYS
from .puzzles import EMPTY
from .verify import MODES, Puzzle, parse_strict, partial_score, verify

MAX_COLUMN_CHARS = 20_000  # a board of at most 32x32 small cells, with its side information
MAX_COMPLETION_CHARS = 20_000  # far above any answer block; bounds the parsing cost per completion


def _puzzle(row: dict[str, Any]) -> Puzzle | None:
    try:
        puzzle = Puzzle.from_row(
            row.get("game"),
            cap_text(row.get("init_board"), MAX_COLUMN_CHARS),
            cap_text(row.get("side_info"), MAX_COLUMN_CHARS),
        )
    except (ValueError, TypeError, RecursionError, AttributeError):
        return None
    # a cell is a value or its text (0 = empty); a list, a dict, None or a bool describes no puzzle
    cells_ok = all(
        isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool)) for r in puzzle.init for c in r
    )
    return puzzle if cells_ok else None


GOLD_ERROR = "vgrp/gold_error_rate"


def _bucket(puzzle: Puzzle) -> str:
    clues = sum(cell not in (EMPTY, "0", "e") for row in puzzle.init for cell in row)
    return f"vgrp/solve/{puzzle.game.name}{puzzle.size}x{puzzle.size}_c{clues}"


class VGRPReward(RewardFunction):
    """Base of the VGRP rewards: options `verifier` ("strict" or "official") and `gated` (solve only)."""

    columns: ClassVar[tuple[str, ...]] = ("init_board", "game", "side_info")
    max_chars = MAX_COMPLETION_CHARS
    log_buckets: ClassVar[bool] = False

    def __init__(self, verifier: str = "strict", gated: bool = True) -> None:
        if verifier not in MODES:
            raise ValueError(f"verifier={verifier!r} is not one of {', '.join(MODES)}")
        if not isinstance(gated, bool):
            raise ValueError(f"gated={gated!r} must be true or false")
        self.verifier, self.gated = verifier, gated

    def __call__(self, prompts: Any = None, completions: Any = (), completion_ids: Any = None, **kwargs: Any):
        self._buckets: dict[str, list[float]] = {}
        out = super().__call__(prompts, completions, completion_ids, **kwargs)
        for name, values in sorted(self._buckets.items()):  # only the buckets this batch holds
            log_metric(kwargs, name, sum(values) / len(values))
        return out

    def _verdict_metrics(self, solved: float, perceived: float, parsed: float, puzzle: Puzzle) -> dict[str, float]:
        if self.log_buckets and hasattr(self, "_buckets"):
            self._buckets.setdefault(_bucket(puzzle), []).append(solved)
        return {
            "vgrp/solve_rate": solved,
            "vgrp/perception_acc": perceived,
            "vgrp/format_rate": parsed,
            GOLD_ERROR: 0.0,
        }


class SolveReward(VGRPReward):
    """R_solve = 1[answer_ok] (gated on perception unless gated=false)."""

    name = "vgrp_solve_reward"
    log_buckets = True

    def score(self, completion: str, **row: Any) -> Scored:
        puzzle = _puzzle(row)
        if puzzle is None:
            return Scored(None, {GOLD_ERROR: 1.0})
        v = verify(completion, puzzle, self.verifier)
        solved = float(v.answer_ok if self.gated else v.answer_ok_ungated)
        return Scored(solved, self._verdict_metrics(solved, float(v.perception_ok), float(v.parsed), puzzle))


class PerceptionReward(VGRPReward):
    """R_percept = 1[perception_ok]: the Perception grid equals the initial board."""

    name = "vgrp_perception_reward"
    columns = ("init_board", "game", "side_info")

    def score(self, completion: str, **row: Any) -> float | None:
        puzzle = _puzzle(row)
        if puzzle is None:
            return None
        return float(verify(completion, puzzle, self.verifier).perception_ok)


class PartialReward(VGRPReward):
    """R_partial = satisfied constraint units / all units (strict parsing); 0 for a grid of the wrong shape."""

    name = "vgrp_partial_reward"

    def score(self, completion: str, **row: Any) -> float | None:
        puzzle = _puzzle(row)
        if puzzle is None:
            return None
        _, answer = parse_strict(completion)
        return partial_score(answer, puzzle)


class FormatReward(VGRPReward):
    """R_fmt = 1 if both the Perception and the Answer sections parse (under `verifier`)."""

    name = "vgrp_format_reward"
    columns = ()

    def score(self, completion: str, **row: Any) -> float:
        from .verify import parse_official

        perceived, answer = parse_official(completion) if self.verifier == "official" else parse_strict(completion)
        return float(perceived is not None and answer is not None)


class TotalReward(VGRPReward):
    """w_solve·R_solve + w_percept·R_percept + w_partial·R_partial + w_fmt·R_fmt (defaults 1.0/0.2/0.2/0.1, ours)."""

    name = "vgrp_reward"
    log_buckets = True

    def __init__(self, verifier: str = "strict", gated: bool = True, weights: Any = None) -> None:
        super().__init__(verifier, gated)
        from .config import VGRPConfig

        self.weights = VGRPConfig(reward_weights=dict(weights or DEFAULT_WEIGHTS)).reward_weights

    def score(self, completion: str, **row: Any) -> Scored:
        puzzle = _puzzle(row)
        if puzzle is None:
            return Scored(None, {GOLD_ERROR: 1.0})
        v = verify(completion, puzzle, self.verifier)
        _, answer = parse_strict(completion)
        parts = {
            "solve": float(v.answer_ok if self.gated else v.answer_ok_ungated),
            "percept": float(v.perception_ok),
            "partial": partial_score(answer, puzzle),
            "fmt": float(v.parsed),
        }
        total = sum(self.weights[k] * parts[k] for k in WEIGHT_KEYS)
        return Scored(total, self._verdict_metrics(parts["solve"], parts["percept"], parts["fmt"], puzzle))
