"""VGRP's SFT data builders: S-SFT (train on the solution) and R-SFT (train on synthetic solver reasoning).

S-SFT target: "Perception\\n<G0>\\nAnswer\\n<S>" with both grids in the official one-line form. R-SFT target: the
steps of a rule-based solver (naked singles, then guesses on the cell with the fewest candidates, with "try" / "undo"
lines), one per line, each naming the cell, the value and the rule that forces it, then the S-SFT block. A trace is
never cut: a puzzle whose trace has more than `max_steps` steps or whose target exceeds `max_target_chars`
characters (a bound on its tokens, see data.MAX_PROMPT_CHARS) is dropped, and the number dropped is reported.

Input rows need `init_board`, `solution` and `game` (JSON strings as in `builtin:vgrp`; `side_info` for Futoshiki);
`prompt` is built from the board when absent. Output rows are conversational prompt/completion pairs for SFT.
"""

from __future__ import annotations

import json
from typing import Any

from .puzzles import Step, solve
from .verify import Puzzle, format_grid

TRACE_HEADER = "Reasoning"
DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_TARGET_CHARS = 6000


def s_sft_target(init: Any, solution: Any) -> str:
    return f"Perception\n{format_grid(init)}\nAnswer\n{format_grid(solution)}"


def step_line(number: int, step: Step) -> str:
    cell = f"r{step.row + 1}c{step.col + 1}"
    if step.op == "set":
        return f"Step {number}: {cell} = {step.value} ({step.rule})"
    return f"Step {number}: {step.op} {cell} = {step.value} ({step.rule})"


def solver_trace(puzzle: Puzzle) -> tuple[list[Step], list[list[Any]]]:
    """The solver's steps from the initial board to its first solution, and that solution."""
    steps: list[Step] = []
    found = solve(puzzle.game, puzzle.init, puzzle.side, limit=1, trace=steps)
    if not found:
        raise ValueError("the puzzle has no solution")
    return steps, found[0]


def _prompt(example: dict[str, Any], render: str) -> Any:
    prompt = example.get("prompt")
    if prompt:
        return prompt if not isinstance(prompt, str) else [{"role": "user", "content": prompt}]
    from .data import prompt_text

    puzzle = Puzzle.from_row(example["game"], example["init_board"], example.get("side_info"))
    return [{"role": "user", "content": prompt_text(puzzle.game, puzzle.init, puzzle.side, render)}]


def to_s_sft(example: dict[str, Any], render: str = "rows") -> dict[str, Any]:
    """One puzzle row -> {prompt, completion}: the perception of the initial board and the stored solution."""
    init = json.loads(example["init_board"]) if isinstance(example["init_board"], str) else example["init_board"]
    solution = json.loads(example["solution"]) if isinstance(example["solution"], str) else example["solution"]
    return {
        "prompt": _prompt(example, render),
        "completion": [{"role": "assistant", "content": s_sft_target(init, solution)}],
    }


def to_r_sft(
    example: dict[str, Any], render: str = "rows", max_steps: int = DEFAULT_MAX_STEPS
) -> dict[str, Any] | None:
    """One puzzle row -> {prompt, completion} with the solver's step list before the S-SFT block; None when the
    trace has more than `max_steps` steps. The answer is the solver's solution, which is the stored one whenever the
    puzzle has a single solution (`builtin:vgrp` guarantees it; otherwise another valid solution may be given)."""
    puzzle = Puzzle.from_row(example["game"], example["init_board"], example.get("side_info"))
    steps, solution = solver_trace(puzzle)
    if len(steps) > max_steps:
        return None
    lines = [step_line(i, step) for i, step in enumerate(steps, 1)]
    target = "\n".join([TRACE_HEADER, *lines, s_sft_target(puzzle.init, solution)])
    return {"prompt": _prompt(example, render), "completion": [{"role": "assistant", "content": target}]}


_PUZZLE_COLUMNS = ("init_board", "solution", "game", "side_info", "size", "num_clues")


def _check_options(render: Any, keep_columns: Any) -> None:
    if render not in ("rows", "csv"):
        raise ValueError(f"render={render!r} is not one of rows, csv")
    if not isinstance(keep_columns, bool):
        raise ValueError(f"keep_columns={keep_columns!r} must be true or false")


def make_s_sft_transform(render: str = "rows", keep_columns: bool = False):
    """The `vgrp_s_sft` transform: fn(dataset) -> dataset of prompt/completion pairs (S-SFT)."""
    _check_options(render, keep_columns)

    def transform(dataset):
        from datasets import DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        drop = [c for c in dataset.column_names if c == "completion" or (not keep_columns and c != "prompt")]
        return dataset.map(to_s_sft, fn_kwargs={"render": render}, remove_columns=drop)

    return transform


def make_r_sft_transform(
    render: str = "rows",
    max_steps: int = DEFAULT_MAX_STEPS,
    max_target_chars: int = DEFAULT_MAX_TARGET_CHARS,
    keep_columns: bool = False,
):
    """The `vgrp_r_sft` transform: fn(dataset) -> dataset of prompt/completion pairs whose completions carry the
    solver's reasoning (R-SFT); puzzles over the step or character budget are dropped (counted in `summary`)."""
    _check_options(render, keep_columns)
    for name, value in (("max_steps", max_steps), ("max_target_chars", max_target_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1")

    def transform(dataset):
        from datasets import Dataset, DatasetDict

        if isinstance(dataset, DatasetDict):
            return DatasetDict({split: transform(part) for split, part in dataset.items()})
        rows, dropped, steps = [], 0, []
        for example in dataset:
            built = to_r_sft(example, render, max_steps)
            if built is None or len(built["completion"][0]["content"]) > max_target_chars:
                dropped += 1
                continue
            steps.append(built["completion"][0]["content"].count("\nStep "))
            extra = {c: example[c] for c in dataset.column_names if keep_columns and c not in ("prompt", "completion")}
            rows.append({**extra, **built})
        transform.summary = {
            "dropped (over max_steps or max_target_chars)": dropped,
            "mean steps": sum(steps) / len(steps) if steps else 0.0,
        }
        if not rows:
            raise ValueError(
                f"vgrp_r_sft dropped all {dropped} puzzles: every trace is over max_steps={max_steps} or "
                f"max_target_chars={max_target_chars}"
            )
        return Dataset.from_list(rows)

    transform.summary = {}
    return transform
