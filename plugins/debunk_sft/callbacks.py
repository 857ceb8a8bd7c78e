"""Evaluation per environment variant: greedy answers on each variant's rows, checked by the verifier, logged as
`eval/success/<variant>` (the paper's success rate per instruction variant and per harder instance)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_ext.evaluation.callback import GenerationEvalCallback

from .rewards import action_success, last_answer, points_success
from .transforms import diversify_action_vocab

# Unseen vocabularies (Up, Down, Left, Right order). "fake" swaps the meanings (explained in the prompt).
VOCAB_VARIANTS: dict[str, tuple[str, ...]] = {
    "standard": ("Up", "Down", "Left", "Right"),
    "cardinal": ("North", "South", "West", "East"),
    "emoji": ("⬆️", "⬇️", "⬅️", "➡️"),
    "fake": ("Down", "Up", "Right", "Left"),
}
UNSEEN_POOL = ("alpha", "bravo", "charlie", "delta", "foxtrot", "hotel", "kilo", "lima", "oscar", "tango")


def vocab_variant(ds, variant: str):
    """A Sokoban split under a named instruction variant: one of VOCAB_VARIANTS, or "random" (words from a pool
    the default pool does not contain)."""
    if variant == "random":
        return diversify_action_vocab(ds, UNSEEN_POOL, seed=10_000)
    if variant not in VOCAB_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of: random, {', '.join(VOCAB_VARIANTS)}")
    return diversify_action_vocab(ds, fixed_words=VOCAB_VARIANTS[variant])


def row_success(text: str, row: Mapping[str, Any]) -> bool:
    """The verifier for one generated answer: actions through the row's own map, or a card expression."""
    answer = last_answer(text or "")
    if row.get("action_mapping") is not None:
        return action_success(answer, row["action_mapping"], row.get("actions"), row.get("grid"))
    return points_success(answer, row["card_values"], row.get("target", 24))


def success_rate(model, tokenizer, ds, max_new_tokens: int = 96, batch_size: int = 16) -> float:
    successes = row_successes(model, tokenizer, ds, max_new_tokens, batch_size)
    return sum(successes) / max(len(successes), 1)


def row_successes(model, tokenizer, ds, max_new_tokens: int = 96, batch_size: int = 16) -> list[float]:
    """1.0 or 0.0 per row: whether the verifier accepts its greedy answer (the items behind `success_rate`)."""
    from trl_ext.inference.generation import generate

    texts = generate(model, tokenizer, ds["prompt"], max_new_tokens, batch_size, progress=False)
    return [float(row_success(t, row)) for t, row in zip(texts, ds, strict=True)]


class VariantEvalCallback(GenerationEvalCallback):
    """Logs `eval/success/<variant>` for each dataset of `envs` (rows with `prompt` and the verifier's columns) at
    each evaluation and at the end of training."""

    label = "debunk_variant_eval"

    def __init__(self, envs: Mapping[str, Any], max_new_tokens: int = 96, batch_size: int = 16):
        super().__init__()
        self.envs = dict(envs)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def evaluate(self, model: Any, tokenizer: Any) -> dict[str, float]:
        return self.item_means(
            {
                f"eval/success/{name}": row_successes(model, tokenizer, ds, self.max_new_tokens, self.batch_size)
                for name, ds in self.envs.items()
            }
        )


def make_variant_eval_callback(variants: str = "standard,cardinal,random", split: str = "test", n: int = 50,
                               max_new_tokens: int = 96):  # fmt: skip
    """The registry's factory: variants of the built-in Sokoban `split` (first `n` rows), or "hard" / "two_boxes"
    for the harder instances under the standard vocabulary."""
    from .data import build_sokoban

    data = build_sokoban("grpo")
    names = [v for v in str(variants).replace("|", ",").split(",") if v]
    envs = {}
    for name in names:
        if name in ("hard", "two_boxes"):
            envs[name] = data[name].select(range(min(int(n), len(data[name]))))
        else:
            base = data[split].select(range(min(int(n), len(data[split]))))
            envs[name] = vocab_variant(base, name)
    return VariantEvalCallback(envs, int(max_new_tokens))
