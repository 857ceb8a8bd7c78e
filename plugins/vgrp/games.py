"""Every implemented VGRP-Bench game by name: puzzles.py's Sudoku, Binairo and Futoshiki and the games of the modules
imported here, which register themselves with `puzzles.register_game`. Look games up through this module, so the
registry is complete wherever a name is resolved."""

from __future__ import annotations

from . import (  # noqa: F401
    games_clue_grids,
    games_field_explore,
    games_placement,
    games_sudoku_variants,
    games_sums_and_shading,
)
from .puzzles import GAMES, get_game

__all__ = ["GAMES", "get_game"]
