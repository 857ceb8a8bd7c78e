"""Transfer Q* decoding for users: `generate(model, tokenizer, prompts, ...)`, the card's `TransferQStarDecoder`, the
`trl-ext generate --logits_processors tq_star:...` factory, and the card's evaluation figures (mean reward, KL
estimate to pi_sft, distinct-n)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from trl_ext.evaluation.diversity import distinct_n

from .decoding import MODES, Step, TransferQStarProcessor, check_settings


@dataclass(frozen=True)
class TQStarGeneration:
    """One completion with its trace: per generated token, the candidates Z, l(z), Qhat, score and the chosen token.

    `kl` is the sum over the chosen tokens of log pi_dec(y_t|s_t) - log pi_sft(y_t|s_t), with pi_dec =
    softmax(score / temperature) over Z: the card's KL estimate (0 up to the top-k renormalisation when alpha = 0)."""

    text: str
    num_tokens: int
    token_ids: tuple[int, ...]
    trace: tuple[dict[str, Any], ...]
    kl: float


def generate(
    model,
    tokenizer,
    prompts: Sequence[Any],
    baseline_model: Any = None,
    reward: str | Callable[..., Sequence[float | None]] | None = None,
    alpha: float = 1.0,
    top_k: int = 10,
    horizon: int = 20,
    mode: Literal["greedy", "sample"] = "greedy",
    temperature: float = 1.0,
    transfer: Literal["direct", "indirect"] = "direct",
    baseline_reward: str | Callable[..., Sequence[float | None]] | None = None,
    dpo_beta: float | None = None,
    importance_beta: float = 2.0,
    exponent_clip: float = 20.0,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    batch_candidates: int = 10,
    skip_special_tokens: bool = True,
    progress: bool = True,
) -> list[TQStarGeneration]:
    """Transfer Q* completions of chat (messages) or plain prompts, decoded by `model` (pi_sft, the candidate
    scorer) in left-padded batches with `TransferQStarProcessor` inside its `generate`.

    `baseline_model` (rho_BL, default `model` itself, as the official scripts run) continues each candidate for
    `horizon` tokens; `reward` (a registered reward name, a reward model folder or Hub id, a dotted path, or a
    callable with TRL's reward signature) scores the text. `mode="sample"` samples softmax(score / temperature)
    over the top-k; seed torch for reproducible samples. With alpha = 0 or no reward this is `model.generate` with
    `top_k=k`, token for token."""
    from trl_ext.inference.generation import generate_completions

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    check_settings(alpha, top_k, horizon, transfer, batch_candidates, importance_beta)
    reward_fn = resolve_reward_fn(reward)
    baseline_reward_fn = resolve_reward_fn(baseline_reward)
    processors: list[TransferQStarProcessor] = []

    def make() -> list[TransferQStarProcessor]:
        processor = TransferQStarProcessor(
            baseline_model if baseline_model is not None else model,
            reward_fn,
            tokenizer,
            alpha=alpha,
            top_k=top_k,
            horizon=horizon,
            transfer=transfer,
            baseline_reward_fn=baseline_reward_fn,
            dpo_beta=dpo_beta,
            sft_model=model,
            importance_beta=importance_beta,
            exponent_clip=exponent_clip,
            batch_candidates=batch_candidates,
            skip_special_tokens=skip_special_tokens,
            progress=progress,
        )
        processors.append(processor)
        return [processor]

    # Sampling is softmax(score / T) over Z: the processor leaves -inf outside Z; no other top-k/top-p filter.
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if mode == "sample" else {}
    outputs = generate_completions(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        logits_processors=make,
        **sampling,
    )
    steps = [row for p in processors for row in (p.call.steps if p.call else [])]
    for p in processors:
        p.close()
    kl_temperature = temperature if mode == "sample" else 1.0
    return [
        _with_trace(out, row_steps, kl_temperature)
        for out, row_steps in zip(outputs, steps or [[]] * len(outputs), strict=True)
    ]


def _with_trace(out: Any, steps: list[Step | None], temperature: float) -> TQStarGeneration:
    trace, kl = [], 0.0
    for token, step in zip(out.token_ids, steps, strict=False):
        if step is None:
            continue
        logprob = step.logprobs[step.candidates.index(token)] if token in step.candidates else -math.inf
        kl += step.decoding_logprob(token, temperature) - logprob
        trace.append(
            {
                "token": token,
                "candidates": step.candidates,
                "logprobs": step.logprobs,
                "q": step.q,
                "scores": step.scores,
            }  # fmt: skip
        )
    return TQStarGeneration(out.text, out.num_tokens, tuple(out.token_ids), tuple(trace), kl)


def resolve_reward_fn(reward: Any, reward_tokenizer: Any = None) -> Callable[..., Sequence[float | None]] | None:
    """A reward function from a name (through the core's reward names), a loaded sequence classifier (with its
    tokenizer), or a callable as it is."""
    if reward is None or callable(reward) and not hasattr(reward, "config"):
        return reward
    if isinstance(reward, str):
        from trl_ext.rewards.resolve import build_reward

        return build_reward(reward)
    if reward_tokenizer is None:
        raise ValueError("a reward model object needs its reward_tokenizer (it may tokenize differently)")
    from trl_ext.rewards.model import RewardModelScorer

    return RewardModelScorer(reward, reward_tokenizer)


class TransferQStarDecoder:
    """The card's surface: `TransferQStarDecoder(sft_model, baseline_model, reward_model, ...)`, then
    `.generate(prompt) -> (text, trace)` or `.generate_batch(prompts)`. `candidate_model` (default `sft_model`)
    proposes Z and gives l(z); the official scripts use the baseline for both."""

    def __init__(
        self,
        sft_model,
        baseline_model,
        reward_model: Any,
        reward_tokenizer: Any = None,
        tokenizer: Any = None,
        alpha: float = 1.0,
        top_k: int = 10,
        horizon: int = 20,
        mode: Literal["greedy", "sample"] = "greedy",
        sample_temperature: float = 1.0,
        transfer: Literal["direct", "indirect"] = "direct",
        baseline_reward_model: Any = None,
        dpo_beta: float | None = None,
        importance_beta: float = 2.0,
        max_new_tokens: int = 128,
        batch_candidates: int = 10,
        candidate_model: Any = None,
        skip_special_tokens: bool = True,
    ):
        if tokenizer is None:
            raise ValueError("tokenizer is required: the one the SFT and baseline models share")
        self.model = candidate_model if candidate_model is not None else sft_model
        self.tokenizer = tokenizer
        self.options = {
            "baseline_model": baseline_model,
            "reward": resolve_reward_fn(reward_model, reward_tokenizer),
            "alpha": alpha,
            "top_k": top_k,
            "horizon": horizon,
            "mode": mode,
            "temperature": sample_temperature,
            "transfer": transfer,
            "baseline_reward": resolve_reward_fn(baseline_reward_model, reward_tokenizer),
            "dpo_beta": dpo_beta,
            "importance_beta": importance_beta,
            "max_new_tokens": max_new_tokens,
            "batch_candidates": batch_candidates,
            "skip_special_tokens": skip_special_tokens,
        }
        if dpo_beta is not None and candidate_model is not None and candidate_model is not sft_model:
            raise ValueError("dpo_beta's implicit reward uses pi_sft: give no separate candidate_model with it")

    def generate_batch(self, prompts: Sequence[Any], batch_size: int = 8, progress: bool = True):
        return generate(self.model, self.tokenizer, prompts, batch_size=batch_size, progress=progress, **self.options)

    def generate(self, prompt: Any) -> tuple[str, list[dict[str, Any]]]:
        (out,) = self.generate_batch([prompt], batch_size=1, progress=False)
        return out.text, list(out.trace)


def tq_star_processor(
    tokenizer: Any = None,
    model: Any = None,
    baseline_model: str | None = None,
    reward: str | None = None,
    alpha: float = 1.0,
    top_k: int = 10,
    horizon: int = 20,
    transfer: Literal["direct", "indirect"] = "direct",
    baseline_reward: str | None = None,
    dpo_beta: float | None = None,
    importance_beta: float = 2.0,
    batch_candidates: int = 10,
    skip_special_tokens: bool = True,
    progress: bool = True,
) -> TransferQStarProcessor:
    """`trl-ext generate --logits_processors tq_star:baseline_model=...:reward=...:alpha=...`: the baseline is
    loaded frozen once per process through the core (`load_scorer`; default: the generating model), the reward
    through the core's reward names (a reward model is loaded by `load_reward_model`)."""
    if tokenizer is None:
        raise ValueError("tq_star needs the model's tokenizer")
    if baseline_model is None:
        if model is None:
            raise ValueError("give baseline_model (a model folder, Hub id or built-in alias)")
        baseline = model
    else:
        from trl_ext.inference.scoring import load_scorer

        baseline, baseline_tokenizer = load_scorer(baseline_model)
        if baseline_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(
                f"baseline_model {baseline_model!r} has another tokenizer than the model; they must share"
            )
    return TransferQStarProcessor(
        baseline,
        resolve_reward_fn(reward),
        tokenizer,
        alpha=alpha,
        top_k=top_k,
        horizon=horizon,
        transfer=transfer,
        baseline_reward_fn=resolve_reward_fn(baseline_reward),
        dpo_beta=dpo_beta,
        sft_model=model,
        importance_beta=importance_beta,
        batch_candidates=batch_candidates,
        skip_special_tokens=skip_special_tokens,
        progress=progress,
    )


def summarize(
    generations: Sequence[TQStarGeneration], prompts: Sequence[Any], reward_fn: Callable[..., Sequence[Any]]
) -> dict[str, float]:
    """The card's evaluation figures: mean reward of the completions, mean KL estimate to pi_sft, distinct-1/2."""
    texts = [g.text for g in generations]
    rewards = [float(r) for r in reward_fn(prompts=list(prompts), completions=texts)]
    return {
        "reward": sum(rewards) / len(rewards),
        "kl": sum(g.kl for g in generations) / len(generations),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "tokens": sum(g.num_tokens for g in generations) / len(generations),
    }
