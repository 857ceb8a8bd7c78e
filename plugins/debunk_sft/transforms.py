"""The paper's data recipe as dataset transforms (arXiv:2510.00237).

- A `diversify_action_vocab`: per example, 4 distinct words from a pool name the actions Up/Down/Left/Right; the
  prompt's answer-format block, an explanation line and the target are rewritten with them (stored in
  `action_mapping`, `action_words`).
- B `diversify_rule_values`: per example, a preset value map for the face cards J/Q/K is stated in the prompt and the
  target expression is recomputed under it.
- C `to_cot_target`: the response becomes "<think> {reasoning} </think> <answer> {answer} </answer>" (or answer only),
  the reasoning re-rendered with the example's own action words.

Apply C after A or B (`--transforms debunk_action_vocab,debunk_cot_target`): C reads the words and values they chose.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from . import cards as card_game
from . import sokoban
from .words import DEFAULT_POOL

STANDARD_WORDS = ("Up", "Down", "Left", "Right")
# The standard names of each action (action id -> names): a word list naming every action by one of its own names
# needs no explanation line; anything else (pool words, emoji, swapped directions) gets one.
DIRECTION_NAMES = {1: {"up", "north"}, 2: {"down", "south"}, 3: {"left", "west"}, 4: {"right", "east"}}
BLOCK_PREFIX = "Answer format: "
EXPLAIN_PREFIX = "where "
RULE_PREFIX = "Face cards: "
PRESETS: dict[str, list[tuple[int, int, int]]] = {
    # The official GP default (all face cards 10) and the paper's diversified rules.
    "standard": [(10, 10, 10)],
    "diverse": [(10, 10, 10), (11, 11, 11), (9, 10, 11), (8, 10, 12), (7, 9, 11), (11, 12, 13)],
}
_BLOCK_LINE = re.compile(r"^" + re.escape(BLOCK_PREFIX) + r".*$", re.MULTILINE)
_EXPLAIN_LINE = re.compile(r"\n" + re.escape(EXPLAIN_PREFIX) + r"\S.* is Up, .* is Right$", re.MULTILINE)
_RULE_LINE = re.compile(r"^" + re.escape(RULE_PREFIX) + r".*$", re.MULTILINE)


# --- prompt pieces -----------------------------------------------------------------------------------------------
def answer_block(words: Sequence[str]) -> str:
    """The answer-format block: `Answer format: <answer> w_up </answer> | ... | <answer> w_right </answer>`."""
    return BLOCK_PREFIX + " | ".join(f"<answer> {w} </answer>" for w in words)


def explanation(words: Sequence[str]) -> str:
    return EXPLAIN_PREFIX + ", ".join(f"{w} is {name}" for w, name in zip(words, STANDARD_WORDS, strict=True))


def needs_explanation(words: Sequence[str]) -> bool:
    """False iff every word is one of its own action's standard direction names (Up/North, Down/South, ...)."""
    return any(str(w).strip().lower() not in DIRECTION_NAMES[i + 1] for i, w in enumerate(words))


def rule_line(face_values: dict[str, int]) -> str:
    j, q, k = (int(face_values[f]) for f in card_game.FACES)
    if j == q == k:
        return f"{RULE_PREFIX}J, Q and K count as {j}."
    return f"{RULE_PREFIX}J counts as {j}, Q counts as {q} and K counts as {k}."


def prompt_text(prompt: Any) -> str:
    """The instruction text of a prompt: a string, or the content of its (last) user message."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        return str(prompt[-1].get("content") or "")
    raise ValueError(f"a prompt must be a string or a list of messages, got {type(prompt).__name__}")


def with_prompt_text(prompt: Any, text: str) -> Any:
    if isinstance(prompt, str):
        return text
    return [*[dict(m) for m in prompt[:-1]], {**prompt[-1], "content": text}]


def as_completion(prompt: Any, text: str) -> Any:
    """A completion of the prompt's kind: an assistant message after a conversational prompt, else text."""
    return text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]


def answer_tag(answer: str) -> str:
    return f"<answer> {answer} </answer>"


def mapping_json(words: Sequence[str]) -> str:
    """`action_mapping`: {"1": w_up, "2": w_down, "3": w_left, "4": w_right} as a JSON string."""
    return json.dumps({str(i + 1): w for i, w in enumerate(words)}, ensure_ascii=False)


def read_mapping(value: Any) -> dict[int, str]:
    """An `action_mapping` (a JSON string or a dict, keys 1..4) as {action id: word}."""
    mapping = json.loads(value) if isinstance(value, str) else value
    if not isinstance(mapping, dict):
        raise ValueError(f"action_mapping must be a dict or its JSON, got {type(mapping).__name__}")
    out = {int(k): str(v) for k, v in mapping.items()}
    if sorted(out) != [1, 2, 3, 4]:
        raise ValueError(f"action_mapping must map exactly the actions 1..4, got keys {sorted(out)}")
    return out


def encode_actions(actions: Sequence[int], mapping: dict[int, str]) -> str:
    """[1, 4, 4, 2] under {1: cat, 2: dog, 3: bird, 4: fish} -> "cat fish fish dog"."""
    return " ".join(mapping[int(a)] for a in actions)


def decode_actions(text: str, mapping: dict[int, str]) -> list[int] | None:
    """The inverse of `encode_actions`: the action ids of the words in `text`, or None when a word is unknown.
    Multi-word names (none in the default pool) are matched greedily, longest first."""
    inverse = {w.strip().lower(): a for a, w in mapping.items()}
    names = sorted(inverse, key=len, reverse=True)
    rest, actions = text.strip().lower(), []
    while rest:
        for name in names:
            if rest.startswith(name) and (
                len(rest) == len(name) or not rest[len(name)].isalnum() or not name[-1:].isalnum()
            ):
                actions.append(inverse[name])
                rest = rest[len(name) :].lstrip(" ,;|\t\n")
                break
        else:
            return None
    return actions


def standard_sokoban_prompt(grid: Sequence[str], multi_step: bool = False) -> str:
    """The built-in Sokoban instruction with the standard answer block (the "frozen prompt")."""
    ask = (
        "Give the whole action sequence that solves the puzzle, in one answer tag, words separated by spaces."
        if multi_step
        else "What is the next best action?"
    )
    return (
        "You are solving a Sokoban puzzle. Push every box onto a target. Symbols: # wall, _ floor, O target, X box, "
        "√ box on a target, P player, S player on a target.\n"
        "Grid:\n" + "\n".join(grid) + f"\n{ask}\n" + answer_block(STANDARD_WORDS)
    )


def standard_points_prompt(cards: Sequence[str], target: int = 24, face_values: dict[str, int] | None = None) -> str:
    """The built-in 24-style card instruction, with the official GP rule (all face cards 10) by default."""
    face_values = face_values or dict(zip(card_game.FACES, PRESETS["standard"][0], strict=True))
    return (
        f"Make {target} from the cards {', '.join(map(str, cards))} using + - * / and parentheses, using each card's "
        f"value exactly once.\n{rule_line(face_values)}\nAnswer format: <answer> expression </answer>"
    )


# --- transform A ---------------------------------------------------------------------------------------------------
def example_words(index: int, word_pool: Sequence[str] = DEFAULT_POOL, seed: int = 42) -> list[str]:
    """The 4 distinct words of example `index`: sampled without replacement with the seed `seed + index`."""
    pool = list(dict.fromkeys(word_pool))
    if len(pool) < 4:
        raise ValueError(f"word_pool needs at least 4 distinct words, got {len(pool)}")
    return random.Random(seed + index).sample(pool, 4)


def remap_prompt(prompt: Any, words: Sequence[str], explain: bool = True) -> Any:
    """The prompt with its answer-format block (and a previous explanation line) replaced by `words`' block, plus the
    meaning line when the words need one; the block is appended when the prompt has none."""
    text = prompt_text(prompt)
    block = answer_block(words)
    if explain and needs_explanation(words):
        block += "\n" + explanation(words)
    text = _EXPLAIN_LINE.sub("", text)
    if _BLOCK_LINE.search(text):
        text = _BLOCK_LINE.sub(lambda _: block, text, count=1)
    else:
        text = f"{text.rstrip()}\n{block}"
    return with_prompt_text(prompt, text)


def diversify_action_vocab(
    ds,
    word_pool: Sequence[str] = DEFAULT_POOL,
    seed: int = 42,
    explain: bool = True,
    fixed_words: Sequence[str] | None = None,
):
    """Transform A on a `datasets.Dataset` with `prompt` and `actions` (ints 1..4): per row i, words from
    `example_words(i)` (or `fixed_words` for every row), the prompt re-blocked, the completion
    "<answer> w_a1 w_a2 ... </answer>", and the columns `action_mapping` (JSON) and `action_words`."""
    fixed = _word_list(fixed_words) if fixed_words is not None else None
    if fixed is not None and (len(fixed) != 4 or len(set(fixed)) != 4):
        raise ValueError(f"fixed_words must be 4 distinct words (Up, Down, Left, Right order), got {fixed}")
    pool = _word_list(word_pool)

    def remap(row: dict[str, Any], index: int) -> dict[str, Any]:
        words = fixed or example_words(index, pool, seed)
        mapping = dict(enumerate(words, start=1))
        actions = [int(a) for a in row["actions"]]
        if any(a not in mapping for a in actions):
            raise ValueError(f"row {index}: actions must be ints 1..4, got {row['actions']}")
        answer = encode_actions(actions, mapping)
        if decode_actions(answer, mapping) != actions:  # the pitfall: a mismatch would silently teach noise
            raise AssertionError(f"row {index}: remapping {actions} with {words} does not round-trip")
        prompt = remap_prompt(row["prompt"], words, explain)
        return {
            "prompt": prompt,
            "completion": as_completion(prompt, answer_tag(answer)),
            "action_mapping": mapping_json(words),
            "action_words": list(words),
        }

    return _map(ds, remap, with_indices=True)


# --- transform B ---------------------------------------------------------------------------------------------------
def diversify_rule_values(ds, mappings: Sequence[Sequence[int]] | str = "diverse", seed: int = 42):
    """Transform B on rows with `prompt`, `cards` and optional `target` (default 24): per row i, a face-card map
    chosen with the seed `seed + i` from `mappings` (a PRESETS name or a list of (J, Q, K) triples); when the hand has
    no solution under it, the next maps in that row's order are tried, and a row solvable under none is dropped. The
    rule line is stated in the prompt; `face_values` (JSON), `card_values`, `answer` and `completion` recomputed."""
    options = [tuple(int(v) for v in m) for m in (PRESETS[mappings] if isinstance(mappings, str) else mappings)]
    if not options or any(len(m) != 3 for m in options):
        raise ValueError(f"mappings must be (J, Q, K) value triples, got {mappings!r}")

    def remap(row: dict[str, Any], index: int) -> dict[str, Any]:
        order = list(options)
        first = random.Random(seed + index).randrange(len(order))
        order = order[first:] + order[:first]
        target = int(row.get("target") or 24)
        for triple in order:
            faces = dict(zip(card_game.FACES, triple, strict=True))
            values = card_game.card_values(row["cards"], faces)
            expr = card_game.solve(values, target)
            if expr is not None:
                break
        else:  # no preset makes this hand solvable: dropped below
            return dict.fromkeys(("prompt", "completion", "face_values", "card_values", "answer")) | {"target": target}
        text = prompt_text(row["prompt"])
        line = rule_line(faces)
        text = _RULE_LINE.sub(lambda _: line, text, count=1) if _RULE_LINE.search(text) else f"{line}\n{text}"
        prompt = with_prompt_text(row["prompt"], text)
        return {
            "prompt": prompt,
            "completion": as_completion(prompt, answer_tag(expr)),
            "face_values": json.dumps(faces),
            "card_values": values,
            "target": target,
            "answer": expr,
        }

    out = _map(ds, remap, with_indices=True)
    return _filter(out, lambda row: row["prompt"] is not None)


# --- transform C ---------------------------------------------------------------------------------------------------
def row_answer(row: dict[str, Any]) -> str:
    """The answer text of a row: its actions in its own words, or its `answer`."""
    if row.get("actions") is not None:
        mapping = (
            read_mapping(row["action_mapping"]) if row.get("action_mapping") else dict(enumerate(STANDARD_WORDS, 1))
        )
        return encode_actions(row["actions"], mapping)
    if row.get("answer") is not None:
        return str(row["answer"])
    raise ValueError("to_cot_target needs an `actions` or an `answer` column")


def default_reasoning(row: dict[str, Any]) -> str:
    """A row's reasoning: its `reasoning` column (placeholders {Up} {Down} {Left} {Right} filled with its words),
    else the BFS plan of its `grid` in its words, else the value rule and the expression of a card row."""
    words = list(row.get("action_words") or STANDARD_WORDS)
    if row.get("reasoning"):
        return str(row["reasoning"]).format_map(_Words(dict(zip(STANDARD_WORDS, words, strict=True))))
    if row.get("grid"):
        return sokoban.plan_text(row["grid"], words)
    if row.get("card_values") is not None and row.get("answer") is not None:
        faces = json.loads(row["face_values"]) if row.get("face_values") else {}
        rule = "; ".join(f"{c} counts as {faces[c]}" for c in row.get("cards") or [] if c in faces)
        values = ", ".join(map(str, row["card_values"]))
        target = int(row.get("target") or 24)
        return f"{rule + '. ' if rule else ''}The values are {values}. {row['answer']} = {target}."
    raise ValueError("no reasoning: give a `reasoning` column, a `grid`, card values or a reasoning_fn")


class _Words(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def to_cot_target(ds, reasoning_fn: Callable[[dict[str, Any]], str] | None = None, fmt: str = "think_answer"):
    """Transform C: `completion` = "<think> {reasoning} </think> <answer> {answer} </answer>" (fmt="think_answer") or
    "<answer> {answer} </answer>" (fmt="answer"). The reasoning is `reasoning_fn(row)` or `default_reasoning(row)`."""
    if fmt not in ("think_answer", "answer"):
        raise ValueError(f"fmt must be 'think_answer' or 'answer', got {fmt!r}")
    reason = reasoning_fn or default_reasoning

    def rewrite(row: dict[str, Any]) -> dict[str, Any]:
        answer = answer_tag(row_answer(row))
        text = answer if fmt == "answer" else f"<think> {reason(row)} </think> {answer}"
        return {"completion": as_completion(row["prompt"], text)}

    return _map(ds, rewrite)


# --- registry factories (CLI options arrive as YAML scalars) ---------------------------------------------------------
def _word_list(words: Sequence[str] | str) -> list[str]:
    if isinstance(words, str):
        words = [w for w in re.split(r"[,|\s]+", words) if w]
    return [str(w) for w in words]


def make_action_vocab_transform(word_pool=None, seed: int = 42, explain: bool = True, fixed_words=None):
    pool = DEFAULT_POOL if word_pool is None else _word_list(word_pool)
    return lambda ds: diversify_action_vocab(ds, pool, int(seed), bool(explain), fixed_words)


def make_rule_values_transform(mappings="diverse", seed: int = 42):
    return lambda ds: diversify_rule_values(ds, mappings, int(seed))


def make_cot_transform(fmt: str = "think_answer"):
    return lambda ds: to_cot_target(ds, None, fmt)


def _map(ds, fn, with_indices: bool = False):
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        return DatasetDict({k: _map(v, fn, with_indices) for k, v in ds.items()})
    return ds.map(fn, with_indices=with_indices, load_from_cache_file=False)


def _filter(ds, fn):
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        return DatasetDict({k: _filter(v, fn) for k, v in ds.items()})
    return ds.filter(fn, load_from_cache_file=False)
