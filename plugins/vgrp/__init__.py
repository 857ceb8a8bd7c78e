"""VGRP-Bench (arXiv:2503.23064): grid puzzles with exact verifiers, as GRPO rewards and S-SFT / R-SFT data.

Adds text-grid puzzles generated in code (`builtin:vgrp`: 4x4 Sudoku; `builtin:vgrp_mixed`: 4x4 Sudoku, Binairo and
Futoshiki), the verifier rewards `vgrp_solve_reward`, `vgrp_perception_reward`, `vgrp_partial_reward`,
`vgrp_format_reward` and their total `vgrp_reward` (ours: the paper does no RL), and the transforms `vgrp_s_sft` and
`vgrp_r_sft` that build the paper's two SFT datasets. Training is TRL's SFTTrainer / GRPOTrainer. See README.md.
"""

from trl_ext import Callback, Dataset, Reward, Transform, hookimpl
from trl_ext.plugin.lazy import lazy_exports

from .paper import PAPER

# These import `datasets` or the solver: named by path here, imported on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VGRPConfig": ".config",
        "Puzzle": ".verify",
        "verify": ".verify",
        "parse_official": ".verify",
        "parse_strict": ".verify",
        "partial_score": ".verify",
        "make_vgrp_dataset": ".data",
        "load_official": ".data",
        "to_s_sft": ".transforms",
        "to_r_sft": ".transforms",
        "solve": ".puzzles",
    },
)

__all__ = [
    "PAPER",
    "Puzzle",
    "VGRPConfig",
    "load_official",
    "make_vgrp_dataset",
    "parse_official",
    "parse_strict",
    "partial_score",
    "solve",
    "to_r_sft",
    "to_s_sft",
    "verify",
]

_COLUMNS = ("init_board", "game", "side_info")
_VERIFIER = "strict (default, ours: normalised parsing + value-range checks) or official (VGRP-Bench's evaluator)."
_GATED = "Count a solved answer only with a correct perception, as the official accuracy (default true)."
_REWARDS = (
    (
        "vgrp_solve_reward",
        "SolveReward",
        _COLUMNS,
        "R_solve = 1 if the Answer grid keeps every given and satisfies the rules (any valid solution; gated on a "
        "correct perception). Logs vgrp/solve_rate, vgrp/perception_acc and vgrp/solve/<game><n>x<n>_c<clues>.",
    ),
    ("vgrp_perception_reward", "PerceptionReward", _COLUMNS, "R_percept = 1 if the Perception grid equals the board."),
    (
        "vgrp_partial_reward",
        "PartialReward",
        _COLUMNS,
        "R_partial = satisfied constraint units / all units (Sudoku rows/cols/boxes; Binairo rows/cols; Futoshiki "
        "rows/cols/inequalities); a cell contradicting a given breaks its units; 0 for a wrong shape.",
    ),
    ("vgrp_format_reward", "FormatReward", (), "R_fmt = 1 if both the Perception and the Answer sections parse."),
    (
        "vgrp_reward",
        "TotalReward",
        _COLUMNS,
        "1.0·R_solve + 0.2·R_percept + 0.2·R_partial + 0.1·R_fmt (weights ours) as one reward; logs like solve.",
    ),
)


@hookimpl
def register_rewards(register):
    for name, cls, columns, description in _REWARDS:
        options = {"verifier": _VERIFIER}
        if name in ("vgrp_solve_reward", "vgrp_reward"):
            options["gated"] = _GATED
        if name == "vgrp_reward":
            options["weights"] = "Weights {solve, percept, partial, fmt}; default 1.0/0.2/0.2/0.1 (ours)."
        register(
            Reward(
                name=name,
                example=f"trl-ext train grpo --rewards {name} --dataset_name builtin:vgrp --max_steps 5",
                factory=f"trl_ext_plugins.vgrp.rewards:{cls}.from_options",
                required_columns=columns,
                options=options,
                description=description,
                family="grpo-reward",
                paper=PAPER,
            )
        )


_PUZZLE_COLUMNS = ("init_board", "solution", "game")
_SFT_OPTIONS = {
    "render": "Board rendering for rows without a prompt: rows or csv (default rows).",
    "keep_columns": "Keep the puzzle columns next to prompt/completion (default false).",
}


@hookimpl
def register_transforms(register):
    register(
        Transform(
            name="vgrp_s_sft",
            factory="trl_ext_plugins.vgrp.transforms:make_s_sft_transform",
            family="data",
            paper=PAPER,
            required_columns=_PUZZLE_COLUMNS,
            options=_SFT_OPTIONS,
            example="trl-ext transform vgrp_s_sft --dataset_name builtin:vgrp --output s_sft.jsonl --split train",
            description="VGRP S-SFT: puzzle rows -> prompt/completion pairs whose target is "
            '"Perception\\n<initial board>\\nAnswer\\n<solution>" (official one-line grids).',
        )
    )
    register(
        Transform(
            name="vgrp_r_sft",
            factory="trl_ext_plugins.vgrp.transforms:make_r_sft_transform",
            family="data",
            paper=PAPER,
            required_columns=_PUZZLE_COLUMNS,
            options={
                **_SFT_OPTIONS,
                "max_steps": "Drop puzzles whose solver trace has more steps (default 200; never truncated).",
                "max_target_chars": "Drop puzzles whose target has more characters (default 6000).",
            },
            example="trl-ext transform vgrp_r_sft --dataset_name builtin:vgrp --output r_sft.jsonl --split train",
            description="VGRP R-SFT: puzzle rows -> prompt/completion pairs whose target is a rule-based solver's "
            "steps (naked singles, try/undo guesses; cell, value, rule per line) then the S-SFT block.",
        )
    )


@hookimpl
def register_datasets(register):
    columns = {"grpo": ("prompt", "init_board", "solution", "side_info", "game", "size", "num_clues")}
    register(
        Dataset(
            name="vgrp",
            factory="trl_ext_plugins.vgrp.data:build",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="VGRP puzzles generated in code: 4x4 Sudoku with 8-10 clues (unique solution), 400 train / 50 "
            "test (val: solutions disjoint from train). For the vgrp rewards and the vgrp_s_sft / vgrp_r_sft "
            "transforms.",
            columns=columns,
        )
    )
    register(
        Dataset(
            name="vgrp_mixed",
            factory="trl_ext_plugins.vgrp.data:build_mixed",
            forms=("grpo",),
            family="builtin",
            paper=PAPER,
            description="VGRP puzzles generated in code: 4x4 Sudoku, Binairo and Futoshiki cycled (random clue counts), "
            "120 train / 30 test (solutions disjoint).",
            columns=columns,
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        Callback(
            name="vgrp_metrics",
            factory="trl_ext_plugins.vgrp.callbacks:make_metrics_callback",
            family="grpo-reward",
            paper=PAPER,
            example="trl-ext train grpo --rewards vgrp_reward --callbacks vgrp_metrics --dataset_name builtin:vgrp",
            description="Averages the vgrp rewards' solve rate per (game, size, clues) bucket and the perception "
            "accuracy over the run; prints them at the end and writes <output_dir>/vgrp_metrics.json.",
        )
    )
