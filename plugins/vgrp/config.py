"""Configuration of VGRP-Bench's puzzle data and rewards (arXiv:2503.23064).

VGRP is a benchmark with two SFT recipes, not a trainer: this is a plain dataclass for the puzzle generator, the
rendering and the weights of the (our) GRPO reward total. Training is TRL's SFTTrainer / GRPOTrainer as usual.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .games import GAMES, get_game

WEIGHT_KEYS = ("solve", "percept", "partial", "fmt")
DEFAULT_WEIGHTS = {"solve": 1.0, "percept": 0.2, "partial": 0.2, "fmt": 0.1}
RENDERS = ("rows", "csv")


def _clue_bounds(num_clues: Any) -> tuple[int, int] | None:
    """None for "random"; (k, k) for an int; (lo, hi) for [lo, hi] or "lo-hi"."""
    if num_clues == "random":
        return None
    if isinstance(num_clues, bool):
        raise ValueError(f"num_clues={num_clues!r} must be an int, 'random' or a range [lo, hi]")
    if isinstance(num_clues, int):
        return num_clues, num_clues
    if isinstance(num_clues, str) and "-" in num_clues:
        lo, _, hi = num_clues.partition("-")
        if lo.strip().isdigit() and hi.strip().isdigit():
            return int(lo), int(hi)
    if (
        isinstance(num_clues, (list, tuple))
        and len(num_clues) == 2
        and all(isinstance(k, int) and not isinstance(k, bool) for k in num_clues)
    ):
        return int(num_clues[0]), int(num_clues[1])
    raise ValueError(f"num_clues={num_clues!r} must be an int, 'random' or a range [lo, hi] / 'lo-hi'")


def default_clue_range(game: str, n: int) -> tuple[int, int]:
    """num_clues="random": a uniform draw in this range (ours; the official generator takes the count as an
    argument): the game's `clue_fraction` of the cells (Sudoku 40-75%, Binairo 35-65%, Futoshiki 20-50%, ...)."""
    lo, hi = get_game(game).clue_fraction
    return max(1, math.ceil(lo * n * n)), max(1, math.floor(hi * n * n))


@dataclass
class VGRPConfig:
    """Options of the [VGRP-Bench](https://arxiv.org/abs/2503.23064) puzzles: which games and sizes to generate,
    how many clues, how the board is rendered as text, and the weights of the GRPO reward total (ours)."""

    games: list[str] = field(
        default_factory=lambda: ["sudoku"],
        metadata={"help": f"Puzzle types to generate, cycled over the rows; implemented: {', '.join(GAMES)}."},
    )
    sizes: list[int] = field(
        default_factory=lambda: [4],
        metadata={
            "help": "Grid sizes, cycled with the games (Sudoku 4/9, Binairo even >= 4, Futoshiki 3-9; see the README)."
        },
    )
    num_clues: Any = field(
        default="random",
        metadata={
            "help": "Clues kept from the solution (the official `sample_hints` difficulty knob): an int, a range "
            "[lo, hi] (or 'lo-hi'), or 'random' (a per-game range, see default_clue_range; ours)."
        },
    )
    render: Literal["rows", "csv"] = field(
        default="rows",
        metadata={
            "help": "Text rendering of the board in the prompt: rows (cells split by spaces, '.' empty, Futoshiki "
            "signs drawn between cells) or csv (comma-separated, 0 empty, inequalities listed)."
        },
    )
    unique: bool = field(
        default=True,
        metadata={
            "help": "Resample the clue set (then add clues) until the puzzle has one solution, so R-SFT traces end "
            "at the stored solution (ours; the official generator does not check uniqueness)."
        },
    )
    futoshiki_density: float = field(
        default=0.35, metadata={"help": "Probability that each adjacent Futoshiki pair shows its inequality (ours)."}
    )
    reward_weights: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        metadata={
            "help": "Weights of the reward total, keys solve, percept, partial, fmt; defaults 1.0/0.2/0.2/0.1 (ours)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the generator; each puzzle is drawn from (seed, index)."})

    def __post_init__(self) -> None:
        if isinstance(self.games, str):
            self.games = [g.strip() for g in self.games.split(",") if g.strip()]
        if isinstance(self.sizes, int) and not isinstance(self.sizes, bool):
            self.sizes = [self.sizes]
        if isinstance(self.sizes, str):
            self.sizes = [int(s) for s in self.sizes.split(",") if s.strip()]
        if not isinstance(self.games, list) or not self.games:
            raise ValueError(f"games={self.games!r} must be a non-empty list of: {', '.join(GAMES)}")
        if not isinstance(self.sizes, list) or not self.sizes:
            raise ValueError(f"sizes={self.sizes!r} must be a non-empty list of ints")
        for game in self.games:
            get_game(game)
        for game, n in self.combos():
            if isinstance(n, bool) or not isinstance(n, int):
                raise ValueError(f"sizes: {n!r} is not an int")
            get_game(game).check_size(n)
        bounds = _clue_bounds(self.num_clues)
        if bounds is not None:
            lo, hi = bounds
            for _, n in self.combos():
                if not 0 <= lo <= hi <= n * n:
                    raise ValueError(f"num_clues={self.num_clues!r} must lie in 0..{n * n} for size {n}")
        if self.render not in RENDERS:
            raise ValueError(f"render={self.render!r} is not one of {', '.join(RENDERS)}")
        if not isinstance(self.unique, bool):
            raise ValueError(f"unique={self.unique!r} must be true or false")
        d = self.futoshiki_density
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 1.0:
            raise ValueError(f"futoshiki_density={d!r} must be a number in [0, 1]")
        if isinstance(self.reward_weights, str):
            self.reward_weights = json.loads(self.reward_weights)
        if not isinstance(self.reward_weights, dict) or set(self.reward_weights) - set(WEIGHT_KEYS):
            raise ValueError(f"reward_weights={self.reward_weights!r} must be a dict with keys among {WEIGHT_KEYS}")
        for key, value in self.reward_weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"reward_weights[{key!r}]={value!r} must be a finite number")
        self.reward_weights = {k: float(self.reward_weights.get(k, DEFAULT_WEIGHTS[k])) for k in WEIGHT_KEYS}
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed={self.seed!r} must be an int")

    def combos(self) -> list[tuple[str, int]]:
        """(game, size) pairs cycled over the rows: every game with every size it supports."""
        out = []
        for game in self.games:
            for n in self.sizes:
                try:
                    get_game(game).check_size(n)
                except ValueError:
                    continue
                out.append((game, n))
        if not out:
            raise ValueError(f"no size in sizes={self.sizes} fits any of games={self.games}")
        return out

    def clue_range(self, game: str, n: int) -> tuple[int, int]:
        bounds = _clue_bounds(self.num_clues)
        return bounds if bounds is not None else default_clue_range(game, n)
