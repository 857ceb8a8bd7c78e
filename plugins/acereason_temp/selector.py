"""The rollout-temperature selector (AceReason-Nemotron 1.1, arXiv 2506.13284): pick the RL sampling temperature T
whose temperature-adjusted token entropy on the SFT model's own rollouts is closest to a target (0.3 in the paper).

    H(T) = (1/N) sum_{i,t} H(softmax(z_{i,t} / T)),   H(p) = -sum_v p_v log p_v   (nats)

over the N completion tokens of rollouts y_i ~ softmax(z / T) of a probe prompt set: the `entropy` GRPOTrainer
logs. Rollouts come from the core's batched generation, entropies from the chunked LM head
(`trl_ext.inference.scoring.token_entropies`): the (batch, seq, vocab) logits are never built.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

# The card's grid; the paper's own choice for its 7B SFT model was T = 0.85 (a reference point, not a default).
DEFAULT_GRID = (0.6, 0.7, 0.8, 0.85, 0.9, 1.0, 1.1)
PAPER_TEMPERATURE = 0.85


class NotMonotonicWarning(UserWarning):
    """H(T) measured on the probe set does not increase with T: sampling noise dominates (raise n_prompts)."""


@dataclass(frozen=True)
class TemperaturePoint:
    """One evaluated temperature: its entropy H(T) (nats per completion token) and mean rollout length (tokens)."""

    temperature: float
    entropy: float
    mean_len: float


def entropy_at_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """H(softmax(logits / T)) over the last axis, in nats (the card's per-token formula, for small inputs)."""
    log_p = torch.log_softmax(logits.double() / temperature, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def choose_temperature(
    measure: Callable[[float], tuple[float, float]],
    target_entropy: float = 0.3,
    t_min: float = 0.6,
    t_max: float = 1.2,
    method: str = "bisect",
    max_evals: int = 6,
    grid: Sequence[float] = DEFAULT_GRID,
    tol: float = 0.05,
) -> tuple[float, list[TemperaturePoint]]:
    """The evaluated T with |H(T) - target| smallest, and the table of every evaluation sorted by T.

    `measure(T) -> (H(T), mean_len)`. `bisect`: H is taken as increasing in T (the card: true in practice), so each
    evaluation halves [t_min, t_max] around the target, starting from the midpoint, `max_evals` times (6 evaluations
    leave an interval of (t_max - t_min) / 64). `grid`: every grid value inside [t_min, t_max]. Warns
    (`NotMonotonicWarning`) when the table's H does not increase with T, and (UserWarning) when the best point
    misses the target by more than `tol`."""
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    points: dict[float, TemperaturePoint] = {}

    def evaluate(t: float) -> TemperaturePoint:
        if t not in points:
            h, mean_len = measure(t)
            points[t] = TemperaturePoint(t, float(h), float(mean_len))
        return points[t]

    if method == "bisect":
        lo, hi = t_min, t_max
        for _ in range(max_evals):
            mid = round((lo + hi) / 2, 10)  # 0.9, not 0.8999999999999999
            if evaluate(mid).entropy > target_entropy:
                hi = mid
            else:
                lo = mid
    elif method == "grid":
        candidates = [float(t) for t in grid if t_min <= t <= t_max]
        if not candidates:
            raise ValueError(f"no grid temperature lies in [{t_min}, {t_max}]: {list(grid)}")
        for t in candidates:
            evaluate(t)
    else:
        raise ValueError(f"method must be 'bisect' or 'grid', got {method!r}")

    table = sorted(points.values(), key=lambda p: p.temperature)
    best = min(table, key=lambda p: (abs(p.entropy - target_entropy), p.temperature))
    check_monotonic(table)
    if abs(best.entropy - target_entropy) > tol:
        warnings.warn(
            f"No evaluated temperature in [{t_min}, {t_max}] brings the rollout entropy within {tol} of "
            f"{target_entropy}: the closest is T={best.temperature:.4g} with H={best.entropy:.4f}.",
            UserWarning,
            stacklevel=2,
        )
    return best.temperature, table


def check_monotonic(table: Sequence[TemperaturePoint]) -> bool:
    """True when H increases with T across `table` (sorted by T); else warns `NotMonotonicWarning` and returns
    False. A flat or falling step means the probe's sampling noise is larger than the effect of T."""
    bad = [(a, b) for a, b in zip(table[:-1], table[1:], strict=True) if not b.entropy > a.entropy]
    if bad:
        pairs = ", ".join(
            f"H({a.temperature:.4g})={a.entropy:.4f} >= H({b.temperature:.4g})={b.entropy:.4f}" for a, b in bad
        )
        warnings.warn(
            f"Rollout entropy does not increase with temperature ({pairs}): the probe is too noisy to rank "
            "temperatures; raise n_prompts (or max_new_tokens).",
            NotMonotonicWarning,
            stacklevel=3,
        )
        return False
    return True


def rollout_entropy(
    model,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    temperature: float,
    batch_size: int = 8,
    vocab_chunk_size: int = 8192,
) -> tuple[float, int]:
    """(token-mean entropy, N) of the next-token distributions at temperature T that produced each completion
    token: sum over every completion token of every rollout, divided by their number N (GRPOTrainer's `entropy`
    for one batch). Empty completions count no token."""
    from trl_ext.inference.scoring import token_entropies

    sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    masks = [[0] * len(p) + [1] * len(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    per_token = token_entropies(
        model,
        sequences,
        masks,
        temperature=temperature,
        batch_size=batch_size,
        vocab_chunk_size=vocab_chunk_size,
        prefix_lengths=[len(p) for p in prompt_ids],
    )
    n = sum(len(values) for values in per_token)
    total = math.fsum(v for values in per_token for v in values)
    return (total / n if n else 0.0), n


def measure_entropy(
    model,
    tokenizer,
    prompts: Sequence[Any],
    temperature: float,
    max_new_tokens: int = 512,
    num_generations: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    top_p: float = 1.0,
    top_k: int = 0,
    progress: bool = False,
) -> tuple[float, float]:
    """(H(T), mean rollout length) of `prompts`' rollouts sampled at `temperature` (seeded with `seed`, so each T
    sees the same random numbers and H(T) is smoother across T), as GRPOTrainer samples them: chat template for
    conversational prompts, top_p/top_k as given (TRL's defaults: no truncation; the entropy is of the full
    softmax either way)."""
    from trl_ext.inference.generation import generate_completions

    torch.manual_seed(seed)
    rollouts = generate_completions(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        do_sample=True,
        temperature=float(temperature),
        top_p=top_p,
        top_k=top_k,
        num_return_sequences=num_generations,
    )
    h, _ = rollout_entropy(
        model, [g.prompt_ids for g in rollouts], [g.token_ids for g in rollouts], temperature, batch_size
    )
    mean_len = sum(g.num_tokens for g in rollouts) / max(len(rollouts), 1)
    return h, mean_len


def select_rl_temperature(
    model,
    tokenizer,
    prompts: Sequence[Any],
    target_entropy: float = 0.3,
    t_min: float = 0.6,
    t_max: float = 1.2,
    method: str = "bisect",
    max_evals: int = 6,
    max_new_tokens: int = 512,
    seed: int = 0,
    n_prompts: int = 64,
    num_generations: int = 1,
    batch_size: int = 16,
    grid: Sequence[float] = DEFAULT_GRID,
    tol: float = 0.05,
    top_p: float = 1.0,
    top_k: int = 0,
    progress: bool = False,
) -> tuple[float, list[TemperaturePoint]]:
    """The RL rollout temperature whose rollouts' temperature-adjusted entropy is closest to `target_entropy`, and
    the table (T, H(T), mean_len) of every temperature evaluated. The probe is the first `n_prompts` prompts (use
    the RL prompt distribution: H depends on the prompt mix and on the length budget `max_new_tokens`), one
    rollout each (`num_generations`); see `choose_temperature` for `method`, `grid`, `max_evals`, `tol`."""
    probe = list(prompts)[:n_prompts]
    if not probe:
        raise ValueError("select_rl_temperature needs at least one prompt")

    def measure(t: float) -> tuple[float, float]:
        return measure_entropy(
            model, tokenizer, probe, t, max_new_tokens, num_generations, batch_size, seed, top_p, top_k, progress
        )

    return choose_temperature(measure, target_entropy, t_min, t_max, method, max_evals, grid, tol)


def table_rows(table: Sequence[TemperaturePoint]) -> list[dict[str, float]]:
    """The table as JSON-ready rows."""
    return [asdict(p) for p in table]


def format_table(table: Sequence[TemperaturePoint], chosen: float | None = None) -> str:
    """A plain-text table (T, H(T), mean_len), the chosen row marked."""
    lines = ["    T     H(T)  mean_len"]
    for p in table:
        mark = "  <- chosen" if chosen is not None and p.temperature == chosen else ""
        lines.append(f"{p.temperature:6.4f}  {p.entropy:6.4f}  {p.mean_len:8.1f}{mark}")
    return "\n".join(lines)
