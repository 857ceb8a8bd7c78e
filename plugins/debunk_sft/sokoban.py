"""A tiny pure-python Sokoban (grids up to about 7x7, any number of boxes) with a BFS solver: what the debunk_sft
transforms, rewards and built-in data need, since TRL ships no Sokoban environment.

A grid is a tuple of strings in the paper's symbols: `#` wall, `_` floor, `O` target, `X` box, `√` box on a target,
`P` player, `S` player on a target. Actions are ints 1..4: 1 Up, 2 Down, 3 Left, 4 Right (the official env's order).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

ACTION_NAMES = {1: "Up", 2: "Down", 3: "Left", 4: "Right"}
MOVES = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
MAX_STATES = 200_000  # BFS bound: a 7x7 grid with two boxes stays far below it

Pos = tuple[int, int]
State = tuple[Pos, tuple[Pos, ...]]


class Board:
    """The static part of a puzzle (walls, targets) and its start state."""

    def __init__(self, grid: Sequence[str]):
        rows = [str(r) for r in grid]
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError("a Sokoban grid must be a non-empty list of equally long rows")
        self.height, self.width = len(rows), len(rows[0])
        self.walls: set[Pos] = set()
        self.targets: set[Pos] = set()
        boxes, player = [], None
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if ch == "#":
                    self.walls.add((r, c))
                if ch in "O√S":
                    self.targets.add((r, c))
                if ch in "X√":
                    boxes.append((r, c))
                if ch in "PS":
                    if player is not None:
                        raise ValueError("a Sokoban grid has exactly one player")
                    player = (r, c)
                if ch not in "#_OX√PS":
                    raise ValueError(f"unknown Sokoban symbol {ch!r}")
        if player is None or not boxes or len(boxes) != len(self.targets):
            raise ValueError("a Sokoban grid needs one player and as many boxes as targets")
        self.start: State = (player, tuple(sorted(boxes)))

    def inside(self, pos: Pos) -> bool:
        return 0 <= pos[0] < self.height and 0 <= pos[1] < self.width and pos not in self.walls

    def step(self, state: State, action: int) -> State:
        """The state after `action` (a blocked move leaves the state unchanged, as in the official env)."""
        (pr, pc), boxes = state
        dr, dc = MOVES[action]
        nxt = (pr + dr, pc + dc)
        if not self.inside(nxt):
            return state
        if nxt in boxes:
            beyond = (nxt[0] + dr, nxt[1] + dc)
            if not self.inside(beyond) or beyond in boxes:
                return state
            boxes = tuple(sorted(beyond if b == nxt else b for b in boxes))
        return (nxt, boxes)

    def solved(self, state: State) -> bool:
        return set(state[1]) == self.targets

    def plan(self, state: State | None = None) -> list[int] | None:
        """A shortest action sequence solving the puzzle from `state` (ties: the lowest action first), or None."""
        start = self.start if state is None else state
        if self.solved(start):
            return []
        parent: dict[State, tuple[State, int] | None] = {start: None}
        queue = deque([start])
        while queue and len(parent) < MAX_STATES:
            cur = queue.popleft()
            for action in (1, 2, 3, 4):
                nxt = self.step(cur, action)
                if nxt in parent:
                    continue
                parent[nxt] = (cur, action)
                if self.solved(nxt):
                    actions = []
                    node: State = nxt
                    while parent[node] is not None:
                        node, a = parent[node]  # type: ignore[misc]
                        actions.append(a)
                    return actions[::-1]
                queue.append(nxt)
        return None

    def optimal_first_actions(self, state: State | None = None) -> set[int]:
        """Every action that starts some shortest solution from `state` (the one-step task accepts any of them)."""
        start = self.start if state is None else state
        best = self.plan(start)
        if not best:
            return set()
        good = set()
        for action in (1, 2, 3, 4):
            nxt = self.step(start, action)
            if nxt == start:
                continue
            rest = self.plan(nxt)
            if rest is not None and len(rest) == len(best) - 1:
                good.add(action)
        return good

    def render(self, state: State | None = None) -> tuple[str, ...]:
        player, boxes = self.start if state is None else state
        rows = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                pos = (r, c)
                if pos in self.walls:
                    row.append("#")
                elif pos == player:
                    row.append("S" if pos in self.targets else "P")
                elif pos in boxes:
                    row.append("√" if pos in self.targets else "X")
                else:
                    row.append("O" if pos in self.targets else "_")
            rows.append("".join(row))
        return tuple(rows)


def random_puzzle(rng: random.Random, size: int = 5, boxes: int = 1, max_tries: int = 1000) -> tuple[str, ...]:
    """A solvable, unsolved `size` x `size` puzzle (border walls) with `boxes` boxes, none starting on a target."""
    inner = [(r, c) for r in range(1, size - 1) for c in range(1, size - 1)]
    for _ in range(max_tries):
        cells = rng.sample(inner, 2 * boxes + 1)
        targets, box_cells, player = cells[:boxes], cells[boxes : 2 * boxes], cells[-1]
        grid = [["#" if r in (0, size - 1) or c in (0, size - 1) else "_" for c in range(size)] for r in range(size)]
        for r, c in targets:
            grid[r][c] = "O"
        for r, c in box_cells:
            grid[r][c] = "X"
        grid[player[0]][player[1]] = "P"
        rows = tuple("".join(row) for row in grid)
        if Board(rows).plan():
            return rows
    raise RuntimeError(f"no solvable {size}x{size} puzzle with {boxes} boxes in {max_tries} tries")


def plan_text(grid: Sequence[str], words: Sequence[str] | None = None) -> str:
    """The BFS plan as step-by-step reasoning, the actions written with `words` (w_up, w_down, w_left, w_right)."""
    words = list(words or ACTION_NAMES.values())
    board = Board(grid)
    (pr, pc), boxes = board.start
    plan = board.plan() or []
    box_text = ", ".join(f"({r}, {c})" for r, c in boxes)
    target_text = ", ".join(f"({r}, {c})" for r, c in sorted(board.targets))
    moves = " ".join(words[a - 1] for a in plan)
    return (
        f"The player is at ({pr}, {pc}); the box is at {box_text}; the target is at {target_text}. "
        f"A shortest plan takes {len(plan)} moves: {moves}. The first move is {words[plan[0] - 1] if plan else 'none'}."
    )
